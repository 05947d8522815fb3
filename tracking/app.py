"""The collector: a thin ASGI app serving the Segment HTTP Tracking API.

`POST /v1/batch|track|page|screen|identify|alias|group` with the write key as HTTP Basic
username (or `writeKey` in the body). A 2xx means the broker acknowledged every accepted
event (acks=all). Bad input gets a 4xx with `{"error": reason}`; an unreachable broker a
fast 503 with Retry-After.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Final

from config.settings import Settings
from config.sites import Site, load_sites
from dbl import codec
from dbl.asgi import (
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
from tracking.envelope import Envelope, InvalidEvent, from_segment, partition_key
from tracking.producer import BrokerUnavailable, EventProducer, Record

MAX_EVENT_BYTES: Final = 32 * 1024
MAX_BATCH_BYTES: Final = 500 * 1024
RETRY_AFTER_S: Final = b"5"

SINGLE_CALLS: Final = {f"/v1/{t}": t for t in ("track", "page", "screen", "identify", "alias")}
SINGLE_CALLS["/v1/group"] = "group"
CORS_HEADERS: Final = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type, content-encoding"),
    (b"access-control-max-age", b"86400"),
]


class Collector:
    """The collector ASGI app; owns its Kafka producer through the lifespan."""

    def __init__(self, settings: Settings, producer: EventProducer | None = None) -> None:
        self._settings = settings
        self._sites = load_sites(settings.config_dir / "sites.toml")
        self._producer = producer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self._startup, self._shutdown)
            return
        started = time.perf_counter()
        path = scope["path"]
        try:
            await self._route(scope, receive, send, path)
        except HTTPError as error:
            metrics.REJECTIONS.labels(_reason_label(error.status)).inc()
            await respond_error(send, error)
        finally:
            endpoint = path if path in SINGLE_CALLS or path == "/v1/batch" else "other"
            metrics.REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - started)

    async def _startup(self) -> None:
        if self._producer is None:
            self._producer = EventProducer(self._settings.brokers, self._settings.produce_timeout_s)

    async def _shutdown(self) -> None:
        if self._producer is not None:
            self._producer.close()

    async def _route(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        method = scope["method"]
        if method == "OPTIONS":
            await respond(send, 204, b"", CORS_HEADERS)
        elif method == "GET" and path == "/metrics":
            await respond_metrics(send)
        elif method == "GET" and path == "/healthz":
            await respond_json(send, 200, {"ok": True})
        elif path == "/v1/batch" or path in SINGLE_CALLS:
            if method != "POST":
                raise HTTPError(405, f"{path} takes POST")
            await self._ingest(scope, receive, send, path)
        else:
            raise HTTPError(404, f"no endpoint {method} {path}")

    async def _ingest(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        limit = MAX_BATCH_BYTES if path == "/v1/batch" else MAX_EVENT_BYTES
        body = parse_json(await read_body(scope, receive, limit))
        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a JSON object")
        site = self._authenticate(scope, body)
        received_at = int(time.time() * 1000)
        user_agent = _user_agent(scope)
        if path == "/v1/batch":
            messages, call_type = _batch_items(body), None
        else:
            messages, call_type = [body], SINGLE_CALLS[path]
        accepted: list[Envelope] = []
        rejected: list[dict[str, Any]] = []
        for index, message in enumerate(messages):
            try:
                accepted.append(
                    from_segment(
                        message,
                        site=site,
                        received_at=received_at,
                        call_type=call_type,
                        user_agent=user_agent,
                    )
                )
            except InvalidEvent as exc:
                rejected.append({"index": index, "reason": exc.reason})
        if not accepted and rejected:
            _count_rejected(rejected)
            raise HTTPError(400, rejected[0]["reason"] if call_type else _batch_reason(rejected))
        records = self._records(accepted, messages, rejected)
        await self._produce(records)
        _count_accepted(accepted)
        _count_rejected(rejected)
        answer: dict[str, Any] = {"success": True}
        if rejected:
            answer["rejected"] = rejected
        await respond_json(send, 200, answer, CORS_HEADERS)

    def _records(
        self, accepted: list[Envelope], messages: list[Any], rejected: list[dict[str, Any]]
    ) -> list[Record]:
        topic = self._settings.events_topic
        records: list[Record] = []
        for envelope in accepted:
            value = codec.dumps(envelope)
            if len(value) > MAX_EVENT_BYTES:
                raise HTTPError(413, f"event {envelope['id']!r} is larger than {MAX_EVENT_BYTES}")
            records.append((topic, partition_key(envelope).encode(), value))
        # Bad events in an otherwise good batch are kept, with the reason, in the DLQ.
        for item in rejected:
            dead = {
                "reason": item["reason"],
                "source": "collector",
                "value": messages[item["index"]],
            }
            records.append((self._settings.dlq_topic, b"", codec.dumps(dead)[:MAX_EVENT_BYTES]))
        return records

    async def _produce(self, records: list[Record]) -> None:
        assert self._producer is not None, "the lifespan starts the producer"
        started = time.perf_counter()
        try:
            await self._producer.send(records)
        except BrokerUnavailable as exc:
            raise HTTPError(
                503, f"events not stored, retry later: {exc}", [(b"retry-after", RETRY_AFTER_S)]
            ) from exc
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)

    def _authenticate(self, scope: Scope, body: dict[str, Any]) -> Site:
        write_key = _basic_username(header(scope, b"authorization")) or body.get("writeKey")
        if not write_key:
            raise HTTPError(401, "a write key is required (HTTP Basic username or writeKey)")
        site = self._sites.get(write_key) if isinstance(write_key, str) else None
        if site is None:
            raise HTTPError(401, "unknown write key")
        return site


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
    return batch


def _batch_reason(rejected: list[dict[str, Any]]) -> str:
    first = rejected[0]
    return f"no event accepted; event {first['index']}: {first['reason']}"


def _user_agent(scope: Scope) -> str | None:
    raw = header(scope, b"user-agent")
    return raw.decode("latin-1")[:512] if raw else None


def _count_accepted(accepted: list[Envelope]) -> None:
    for envelope in accepted:
        metrics.EVENTS.labels("accepted", envelope["channel"]).inc()


def _count_rejected(rejected: list[dict[str, Any]]) -> None:
    if rejected:
        metrics.EVENTS.labels("rejected", "unknown").inc(len(rejected))
        metrics.REJECTIONS.labels("invalid_event").inc(len(rejected))


def _reason_label(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        404: "not_found",
        405: "method",
        413: "too_large",
        503: "broker_unavailable",
    }.get(status, "other")


def create_app() -> Collector:
    """The app uvicorn serves (`uvicorn --factory tracking.app:create_app`)."""
    return Collector(Settings.from_environment())
