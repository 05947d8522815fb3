"""The collector: a thin ASGI app serving the Segment HTTP Tracking API, the tracking
snippet, signed email links and the SendGrid event webhook.

- `POST /v1/batch|track|page|screen|identify|alias|group`, and `/v1/forget` (server keys
  only: erase a contact): the write key as HTTP Basic username, or `writeKey` in the body.
  A 2xx means the broker acknowledged every accepted event (acks=all). Bad input gets a
  4xx with `{"error": reason}`; an unreachable broker a fast 503 with Retry-After; too
  many requests from one address a 429.
- `GET /t.js`: the snippet. `GET /e/o/<token>.gif`: email open pixel. `GET /e/c/<token>`:
  email click, 302 to the sealed URL. `POST /v1/esp/sendgrid`: SendGrid events (server key).
- `GET /openapi.json`, `/metrics`, `/healthz`.

The route table is `Collector.routes`; each endpoint group lives in `tracking/api/`.
"""

from __future__ import annotations

import time
from typing import Final

from config.settings import Settings
from runtime.asgi import (
    HTTPError,
    Receive,
    Scope,
    Send,
    respond,
    respond_error,
    run_lifespan,
)
from runtime.router import Request, Route, Router, operations_routes
from tracking import metrics
from tracking.api.email import EmailLinks
from tracking.api.esp import SendGridApi
from tracking.api.files import Files
from tracking.api.segment import BATCH_PATHS, CALL_PATHS, SegmentApi
from tracking.intake import Intake, limit
from tracking.producer import EventProducer
from tracking.ratelimit import RateLimiter

# Metric children bound once (a label look-up per request costs more than the count).
_REQUEST_TIMERS: Final = {
    path: metrics.REQUEST_SECONDS.labels(path) for path in (*CALL_PATHS, *BATCH_PATHS, "other")
}
_REASON_LABELS: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method",
    413: "too_large",
    429: "rate_limited",
    503: "broker_unavailable",
}
# Request headers a page may send (asked in a preflight): the SDKs' own, and nothing else.
# analytics.js 2.0 adds X-Retry-Count to retries; RudderStack v3 sends AnonymousId and
# SentAt, and rsa-* headers on retries.
ALLOWED_HEADERS: Final = frozenset(
    {"authorization", "content-type", "content-encoding", "x-retry-count"}
    | {"anonymousid", "sentat"}
)
ALLOWED_HEADER_PREFIX: Final = "rsa-"
PREFLIGHT_HEADERS: Final = [
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-max-age", b"86400"),
]


class Collector:
    """The collector ASGI app; owns its Kafka producer through the lifespan."""

    def __init__(self, settings: Settings, producer: EventProducer | None = None) -> None:
        self._intake = Intake(settings, producer)
        self._requests = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        self.routes: list[Route] = [
            *SegmentApi(self._intake).routes(),
            *SendGridApi(self._intake).routes(),
            *EmailLinks(self._intake).routes(),
            *Files().routes(),
            *operations_routes(),
        ]
        self._router = Router(self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self._startup, self._shutdown)
            return
        started = time.perf_counter()
        request = Request.parse(scope, receive)
        try:
            limit(request, self._requests, "requests")
            if request.method == "OPTIONS":
                await self._preflight(request, send)
            else:
                handler, request.params = self._router.find(request.method, request.path)
                await handler(request, send)
        except HTTPError as error:
            metrics.REJECTIONS.labels(_REASON_LABELS.get(error.status, "other")).inc()
            error.headers += self._intake.cors(request)
            await respond_error(send, error)
        finally:
            timer = _REQUEST_TIMERS.get(request.path, _REQUEST_TIMERS["other"])
            timer.observe(time.perf_counter() - started)

    async def _startup(self) -> None:
        self._intake.start()

    async def _shutdown(self) -> None:
        self._intake.close()

    async def _preflight(self, request: Request, send: Send) -> None:
        cors = self._intake.cors(request)
        if not cors:
            raise HTTPError(403, "this origin may not send events")
        allowed = (b"access-control-allow-headers", _allowed_headers(request))
        headers = [*cors, *PREFLIGHT_HEADERS, allowed]
        await respond(send, 204, b"", headers, content_type=b"text/plain")


def _allowed_headers(request: Request) -> bytes:
    """The headers a preflight asked for that a page may send, with the basic ones.

    >>> from runtime.router import Request
    >>> scope = {"method": "OPTIONS", "path": "/v1/t", "query_string": b"",
    ...          "headers": [(b"access-control-request-headers", b"SentAt, rsa-retry, X-Evil")]}
    >>> _allowed_headers(Request.parse(scope, None))
    b'authorization, content-encoding, content-type, rsa-retry, sentat'
    """
    asked = (request.header(b"access-control-request-headers") or b"").decode("latin-1")
    names = {name.strip().lower() for name in asked.split(",") if name.strip()}
    allowed = {n for n in names if n in ALLOWED_HEADERS or n.startswith(ALLOWED_HEADER_PREFIX)}
    return ", ".join(
        sorted(allowed | {"authorization", "content-type", "content-encoding"})
    ).encode()


def create_app() -> Collector:
    """The app uvicorn serves (`uvicorn --factory tracking.app:create_app`)."""
    return Collector(Settings.from_environment())
