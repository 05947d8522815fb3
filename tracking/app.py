"""The collector: a thin ASGI app serving the Segment HTTP Tracking API, the tracking
snippet, signed email links and the SendGrid event webhook.

- `POST /v1/batch|track|page|screen|identify|alias|group`, and `/v1/forget` (server keys
  only: erase a contact): the write key as HTTP Basic
  username, or `writeKey` in the body. A 2xx means the broker acknowledged every accepted
  event (acks=all). Bad input gets a 4xx with `{"error": reason}`; an unreachable broker a
  fast 503 with Retry-After; too many requests from one address a 429.
- `GET /t.js`: the snippet. `GET /e/o/<token>.gif`: email open pixel. `GET /e/c/<token>`:
  email click, 302 to the sealed URL. `POST /v1/esp/sendgrid`: SendGrid events (server key).
- `GET /openapi.json`, `/metrics`, `/healthz`.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import reprlib
import time
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from config.settings import Settings
from config.sites import Site, load_sites
from contracts import codec, email_links
from contracts.envelope import CHANNELS, FORGET, Envelope, InvalidEvent, partition_key
from runtime.asgi import (
    HTTPError,
    Receive,
    Scope,
    Send,
    header,
    parse_json,
    read_body,
    respond,
    respond_error,
    respond_json,
    respond_metrics,
    run_lifespan,
)
from tracking import metrics
from tracking.esp import sendgrid_envelopes
from tracking.machines import truncate_ip
from tracking.producer import BrokerUnavailable, EventProducer, Record
from tracking.ratelimit import RateLimiter
from tracking.segment import from_segment

MAX_EVENT_BYTES: Final = 32 * 1024
MAX_BATCH_BYTES: Final = 500 * 1024
# Segment's SDKs send at most a few hundred events a batch; more is an attack on the DLQ.
MAX_BATCH_EVENTS: Final = 1000
# A batch's refusals listed in the answer and kept one by one in the DLQ; the rest are
# counted, by reason, in one more DLQ record, so a bad batch never writes more than it sent.
LISTED_REJECTIONS: Final = 20
MAX_REASON_CHARS: Final = 300
RETRY_AFTER_S: Final = b"5"

SINGLE_CALLS: Final = {f"/v1/{t}": t for t in ("track", "page", "screen", "identify", "alias")}
SINGLE_CALLS["/v1/group"] = "group"
SINGLE_CALLS["/v1/forget"] = FORGET
SENDGRID: Final = "/v1/esp/sendgrid"
# Metric children bound once (a label look-up per request costs more than the count).
_REQUEST_TIMERS: Final = {
    path: metrics.REQUEST_SECONDS.labels(path) for path in (*SINGLE_CALLS, "/v1/batch", "other")
}
_ACCEPTED_BY_CHANNEL: Final = {c: metrics.EVENTS.labels("accepted", c) for c in CHANNELS}
PIXEL: Final = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE: Final = [(b"cache-control", b"no-store, private")]
LINK_GONE_PAGE: Final = (
    b"<!doctype html><title>Link expired</title><p>This link is no longer valid. "
    b"Please use the links in a recent email.</p>"
)


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a request, read once per request: its user agent and its (truncated)
    network."""

    user_agent: str | None
    ip: str | None


class Collector:
    """The collector ASGI app; owns its Kafka producer through the lifespan."""

    def __init__(self, settings: Settings, producer: EventProducer | None = None) -> None:
        self._settings = settings
        self._sites = load_sites(settings.sites_path)
        self._producer = producer
        self._limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        self._event_limiter = RateLimiter(settings.event_limit_per_s, settings.event_limit_burst)
        static = resources.files("tracking") / "static"
        self._snippet = (static / "t.js").read_bytes()
        self._snippet_gz = gzip.compress(self._snippet, 9)
        self._openapi = (static / "openapi.json").read_bytes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self._startup, self._shutdown)
            return
        started = time.perf_counter()
        path = scope["path"]
        try:
            self._limit(scope, self._limiter, "requests")
            await self._route(scope, receive, send, path)
        except HTTPError as error:
            metrics.REJECTIONS.labels(_reason_label(error.status)).inc()
            error.headers += self._cors(scope)
            await respond_error(send, error)
        finally:
            timer = _REQUEST_TIMERS.get(path, _REQUEST_TIMERS["other"])
            timer.observe(time.perf_counter() - started)

    async def _startup(self) -> None:
        if self._producer is None:
            self._producer = EventProducer(self._settings.brokers, self._settings.produce_timeout_s)

    async def _shutdown(self) -> None:
        if self._producer is not None:
            self._producer.close()

    def _limit(self, scope: Scope, limiter: RateLimiter, what: str, count: int = 1) -> None:
        client = scope.get("client")
        if client and not limiter.allow(client[0], time.monotonic(), count):
            raise HTTPError(429, f"too many {what} from this address", [(b"retry-after", b"1")])

    async def _route(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        method = scope["method"]
        if method == "OPTIONS":
            await self._preflight(scope, send)
        elif method == "GET" and path == "/t.js":
            await self._serve_snippet(scope, send)
        elif method == "GET" and path.startswith("/e/o/") and path.endswith(".gif"):
            await self._email_open(scope, send, path[len("/e/o/") : -len(".gif")])
        elif method == "GET" and path.startswith("/e/c/"):
            await self._email_click(scope, send, path[len("/e/c/") :])
        elif method == "GET" and path == "/openapi.json":
            await respond(send, 200, self._openapi)
        elif method == "GET" and path == "/metrics":
            await respond_metrics(send)
        elif method == "GET" and path == "/healthz":
            await respond_json(send, 200, {"ok": True})
        elif path == SENDGRID or path == "/v1/batch" or path in SINGLE_CALLS:
            if method != "POST":
                raise HTTPError(405, f"{path} takes POST")
            await (self._sendgrid if path == SENDGRID else self._ingest)(scope, receive, send, path)
        else:
            raise HTTPError(404, f"no endpoint {method} {path}")

    # --- Segment API ----------------------------------------------------------------------

    async def _ingest(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        limit = MAX_BATCH_BYTES if path == "/v1/batch" else MAX_EVENT_BYTES
        body = parse_json(await read_body(scope, receive, limit))
        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a JSON object")
        site = self._authenticate(scope, body)
        self._check_origin(scope, site)
        if path == "/v1/batch":
            messages, call_type = _batch_items(body), None
        else:
            messages, call_type = [body], SINGLE_CALLS[path]
        self._limit(scope, self._event_limiter, "events", len(messages))
        received_at = int(time.time() * 1000)
        sender = Sender(_user_agent(scope), _client_ip(scope))
        accepted: list[Envelope] = []
        rejected: list[dict[str, Any]] = []
        for index, message in enumerate(messages):
            try:
                accepted.append(self._envelope(sender, message, site, received_at, call_type))
            except InvalidEvent as exc:
                rejected.append({"index": index, "reason": exc.reason})
        if not accepted and rejected:
            _count_rejected(rejected)
            raise HTTPError(400, rejected[0]["reason"] if call_type else _batch_reason(rejected))
        await self._store(accepted, messages, rejected)
        answer: dict[str, Any] = {"success": True}
        if rejected:
            answer |= _refusals(rejected)
        await respond_json(send, 200, answer, self._cors(scope))

    def _envelope(
        self, sender: Sender, message: Any, site: Site, received_at: int, call_type: str | None
    ) -> Envelope:
        return from_segment(
            message,
            site=site,
            received_at=received_at,
            call_type=call_type,
            user_agent=sender.user_agent,
            ip=sender.ip,
            signed_email=self._linked_contact(message, site),
        )

    def _linked_contact(self, message: Any, site: Site) -> str | None:
        """The contact a signed email link names, when the snippet passes one on (the token
        itself is taken out of the message: it is a credential, not data to keep)."""
        context = message.get("context") if isinstance(message, dict) else None
        token = context.pop("dbl_link", None) if isinstance(context, dict) else None
        if not isinstance(token, str):
            return None
        try:
            link = email_links.verify(token, self._sites, int(time.time()))
        except email_links.InvalidLink:
            metrics.REJECTIONS.labels("bad_link").inc()
            return None
        return link.contact if link.site.name == site.name else None

    # --- email links ----------------------------------------------------------------------

    async def _email_open(self, scope: Scope, send: Send, token: str) -> None:
        """Always the pixel; an open is recorded only for a valid token."""
        link = self._verify_link(token)
        if link is not None:
            await self._email_signal(scope, link, "Email Opened")
        await respond(send, 200, PIXEL, NO_STORE, content_type=b"image/gif")

    async def _email_click(self, scope: Scope, send: Send, token: str) -> None:
        """302 to the sealed URL for a valid token; a plain page, never a redirect, otherwise."""
        link = self._verify_link(token)
        if link is None or link.url is None:
            await respond(send, 404, LINK_GONE_PAGE, NO_STORE, b"text/html; charset=utf-8")
            return
        await self._email_signal(scope, link, "Email Link Clicked")
        location = email_links.landing_url(link.url, token).encode()
        await respond(send, 302, b"", [(b"location", location), *NO_STORE], b"text/plain")

    def _verify_link(self, token: str) -> email_links.Link | None:
        try:
            return email_links.verify(token, self._sites, int(time.time()))
        except email_links.InvalidLink:
            metrics.REJECTIONS.labels("bad_link").inc()
            return None

    async def _email_signal(self, scope: Scope, link: email_links.Link, event: str) -> None:
        message = {
            "type": "track",
            "event": event,
            "context": {"campaign": {"name": link.campaign}},
            "properties": {"campaign": link.campaign, "link": link.url},
        }
        received_at = int(time.time() * 1000)
        envelope = from_segment(
            message,
            site=link.site,
            received_at=received_at,
            user_agent=_user_agent(scope),
            ip=_client_ip(scope),
            signed_email=link.contact,
        )
        try:
            await self._store([envelope], [], [])
        except HTTPError:
            # The reader still gets the pixel or the redirect; the event is lost and counted.
            metrics.REJECTIONS.labels("email_signal_lost").inc()

    # --- SendGrid -------------------------------------------------------------------------

    async def _sendgrid(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        body = parse_json(await read_body(scope, receive, MAX_BATCH_BYTES))
        site = self._authenticate(scope, {})
        if site.trust != "server":
            raise HTTPError(403, "the ESP webhook needs a server write key")
        try:
            accepted, rejected = sendgrid_envelopes(body, site, int(time.time() * 1000))
        except InvalidEvent as exc:
            raise HTTPError(400, exc.reason) from None
        messages = body if isinstance(body, list) else []
        await self._store(accepted, messages, rejected)
        await respond_json(send, 200, {"success": True, **_refusals(rejected)})

    # --- shared ---------------------------------------------------------------------------

    async def _store(
        self, accepted: list[Envelope], messages: list[Any], rejected: list[dict[str, Any]]
    ) -> None:
        """Produce accepted events (and dead-letter the rejected), then count them."""
        records = self._records(accepted, messages, rejected)
        assert self._producer is not None, "the lifespan starts the producer"
        started = time.perf_counter()
        try:
            await self._producer.send(records)
        except BrokerUnavailable as exc:
            raise HTTPError(
                503, f"events not stored, retry later: {exc}", [(b"retry-after", RETRY_AFTER_S)]
            ) from exc
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
        _count_accepted(accepted)
        _count_rejected(rejected)

    def _records(
        self, accepted: list[Envelope], messages: list[Any], rejected: list[dict[str, Any]]
    ) -> list[Record]:
        topic = self._settings.events_topic
        records: list[Record] = []
        for envelope in accepted:
            value = codec.dumps(envelope)
            if len(value) > MAX_EVENT_BYTES:
                raise HTTPError(413, f"event {envelope['id']!r} is larger than {MAX_EVENT_BYTES}")
            key = partition_key(envelope).encode()
            # The broker timestamp is the receive time: the dataflow's progress reads it.
            records.append((topic, key, value, envelope["received_at"]))
        # Bad events in an otherwise good batch are kept, with the reason, in the DLQ.
        now = int(time.time() * 1000)
        for item in rejected[:LISTED_REJECTIONS]:
            bad = messages[item["index"]] if item["index"] < len(messages) else None
            value = _dead_letter(item["reason"], bad)
            records.append((self._settings.dlq_topic, b"", value, now))
        if len(rejected) > LISTED_REJECTIONS:
            value = _dead_letters_counted(rejected[LISTED_REJECTIONS:])
            records.append((self._settings.dlq_topic, b"", value, now))
        return records

    def _authenticate(self, scope: Scope, body: dict[str, Any]) -> Site:
        write_key = _basic_username(header(scope, b"authorization")) or body.get("writeKey")
        if not write_key:
            raise HTTPError(401, "a write key is required (HTTP Basic username or writeKey)")
        site = self._sites.get(write_key) if isinstance(write_key, str) else None
        if site is None:
            raise HTTPError(401, "unknown write key")
        return site

    def _check_origin(self, scope: Scope, site: Site) -> None:
        """A browser page may send with a key only from the site's allowed origins."""
        origin = header(scope, b"origin")
        allowed = origin is None or site.allows_origin(origin.decode("latin-1"))
        if site.trust == "browser" and not allowed:
            raise HTTPError(403, "this origin may not send events with this write key")

    def _cors(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """CORS headers for an origin some browser site allows (none otherwise)."""
        origin = header(scope, b"origin")
        if origin is None or not self._origin_known(origin.decode("latin-1")):
            return []
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"origin"),
        ]

    def _origin_known(self, origin: str) -> bool:
        return any(site.allows_origin(origin) for site in self._sites.values())

    async def _preflight(self, scope: Scope, send: Send) -> None:
        cors = self._cors(scope)
        if not cors:
            raise HTTPError(403, "this origin may not send events")
        allowed = [
            (b"access-control-allow-methods", b"POST, OPTIONS"),
            (b"access-control-allow-headers", b"authorization, content-type, content-encoding"),
            (b"access-control-max-age", b"86400"),
        ]
        await respond(send, 204, b"", cors + allowed, content_type=b"text/plain")

    async def _serve_snippet(self, scope: Scope, send: Send) -> None:
        headers = [(b"cache-control", b"public, max-age=3600"), (b"vary", b"accept-encoding")]
        body = self._snippet
        if b"gzip" in (header(scope, b"accept-encoding") or b""):
            body = self._snippet_gz
            headers.append((b"content-encoding", b"gzip"))
        await respond(send, 200, body, headers, content_type=b"text/javascript; charset=utf-8")


def _excerpter() -> reprlib.Repr:
    """A bounded sketch of anything: depth, items and string lengths capped."""
    sketch = reprlib.Repr()
    sketch.maxlevel, sketch.maxdict, sketch.maxlist = 6, 50, 50
    sketch.maxstring, sketch.maxother = 4096, 200
    return sketch


_EXCERPT = _excerpter()


def _dead_letter(reason: str, bad: Any) -> bytes:
    """The DLQ record of a refused batch item: always valid JSON, at most MAX_EVENT_BYTES. An
    item too large or too deep to keep as JSON is kept as the start of its text instead."""
    record = {"reason": reason, "source": "collector", "value": bad}
    try:
        value = codec.dumps(record)
    except codec.JSONEncodeError:
        value = b""
    if not value or len(value) > MAX_EVENT_BYTES:
        excerpt = _EXCERPT.repr(bad)
        value = codec.dumps({**record, "value": None, "value_excerpt": excerpt})
    return value


def _refusals(rejected: list[dict[str, Any]]) -> dict[str, Any]:
    """What an answer says of a batch's refused events: the first few, and how many."""
    return {"rejected": rejected[:LISTED_REJECTIONS], "rejected_count": len(rejected)}


def _dead_letters_counted(rejected: list[dict[str, Any]]) -> bytes:
    """One DLQ record for the refusals of a batch past the listed ones: how many, by reason
    (the ten commonest, each cut short)."""
    reasons = Counter(item["reason"][:MAX_REASON_CHARS] for item in rejected)
    return codec.dumps(
        {
            "reason": f"{len(rejected)} more events of this batch refused",
            "source": "collector",
            "value": None,
            "first_index": rejected[0]["index"],
            "rejected_count": len(rejected),
            "reasons": dict(reasons.most_common(10)),
        }
    )


def _basic_username(value: bytes | None) -> str | None:
    if value is None or value[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise HTTPError(401, "the Authorization header is not valid Basic credentials") from None
    return decoded.partition(":")[0] or None


def _batch_items(body: dict[str, Any]) -> list[Any]:
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise HTTPError(400, "batch must be a JSON array of events")
    if not batch:
        raise HTTPError(400, "batch is empty")
    if len(batch) > MAX_BATCH_EVENTS:
        raise HTTPError(413, f"batch has {len(batch)} events, at most {MAX_BATCH_EVENTS}")
    return batch


def _batch_reason(rejected: list[dict[str, Any]]) -> str:
    first = rejected[0]
    return f"no event accepted; event {first['index']}: {first['reason']}"


def _user_agent(scope: Scope) -> str | None:
    raw = header(scope, b"user-agent")
    return raw.decode("latin-1")[:512] if raw else None


def _client_ip(scope: Scope) -> str | None:
    """The client's network (truncated before it goes anywhere)."""
    client = scope.get("client")
    return truncate_ip(client[0]) if client else None


def _count_accepted(accepted: list[Envelope]) -> None:
    # Label lookups cost more than counting: one per channel and reason per request.
    channels = Counter(envelope["channel"] for envelope in accepted)
    for channel, count in channels.items():
        _ACCEPTED_BY_CHANNEL[channel].inc(count)
    machines = Counter(envelope["machine"] for envelope in accepted if envelope["machine"])
    for reason, count in machines.items():
        metrics.MACHINES.labels(reason).inc(count)


def _count_rejected(rejected: list[dict[str, Any]]) -> None:
    if rejected:
        metrics.EVENTS.labels("rejected", "unknown").inc(len(rejected))
        metrics.REJECTIONS.labels("invalid_event").inc(len(rejected))


def _reason_label(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method",
        413: "too_large",
        429: "rate_limited",
        503: "broker_unavailable",
    }.get(status, "other")


def create_app() -> Collector:
    """The app uvicorn serves (`uvicorn --factory tracking.app:create_app`)."""
    return Collector(Settings.from_environment())
