"""What every collector endpoint shares: write keys, origins, rate limits, and storing
events (with the refused ones dead-lettered) on the broker."""

from __future__ import annotations

import base64
import binascii
import reprlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from config.settings import Settings
from config.sites import Site, load_sites
from contracts import codec
from contracts.dead_letters import dead_letter
from contracts.envelope import CHANNELS, Envelope, partition_key
from runtime.asgi import HTTPError
from runtime.router import Request
from tracking import metrics
from tracking.machines import truncate_ip
from tracking.producer import BrokerUnavailable, EventProducer, Record
from tracking.ratelimit import RateLimiter

MAX_EVENT_BYTES: Final = 32 * 1024
MAX_BATCH_BYTES: Final = 500 * 1024
# A batch's refusals listed in the answer and kept one by one in the DLQ; the rest are
# counted, by reason, in one more DLQ record, so a bad batch never writes more than it sent.
LISTED_REJECTIONS: Final = 20
MAX_REASON_CHARS: Final = 300
RETRY_AFTER_S: Final = b"5"
_ACCEPTED_BY_CHANNEL: Final = {c: metrics.EVENTS.labels("accepted", c) for c in CHANNELS}


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a request, read once per request: its user agent and its (truncated)
    network."""

    user_agent: str | None
    ip: str | None

    @classmethod
    def of(cls, request: Request) -> Sender:
        """The sender of `request`."""
        agent = request.header(b"user-agent")
        client = request.client
        return cls(
            agent.decode("latin-1")[:512] if agent else None,
            truncate_ip(client) if client else None,
        )


class Intake:
    """The collector's sites, limits and broker producer (started by the app's lifespan)."""

    def __init__(self, settings: Settings, producer: EventProducer | None = None) -> None:
        self.settings = settings
        self.sites = load_sites(settings.sites_path)
        self._producer = producer
        self._events = RateLimiter(settings.event_limit_per_s, settings.event_limit_burst)

    def start(self) -> None:
        """Connect the producer (unless one was given)."""
        if self._producer is None:
            self._producer = EventProducer(self.settings.brokers, self.settings.produce_timeout_s)

    def close(self) -> None:
        """Flush and close the producer."""
        if self._producer is not None:
            self._producer.close()

    def limit_events(self, request: Request, count: int) -> None:
        """429 when this address sends more events than its budget."""
        limit(request, self._events, "events", count)

    def authenticate(self, request: Request, body: dict[str, Any]) -> Site:
        """The site of the request's write key (HTTP Basic username, or `writeKey`)."""
        write_key = (
            _basic_username(request.header(b"authorization"))
            or body.get("writeKey")
            # A beacon cannot send headers: RudderStack puts the key in the address.
            or request.query.get("writeKey")
        )
        if not write_key:
            raise HTTPError(
                401, "a write key is required (HTTP Basic username, or writeKey in the body)"
            )
        site = self.sites.get(write_key) if isinstance(write_key, str) else None
        if site is None:
            raise HTTPError(401, "unknown write key")
        return site

    def check_origin(self, request: Request, site: Site) -> None:
        """A browser page may send with a key only from the site's allowed origins."""
        origin = request.header(b"origin")
        allowed = origin is None or site.allows_origin(origin.decode("latin-1"))
        if site.trust == "browser" and not allowed:
            raise HTTPError(403, "this origin may not send events with this write key")

    def cors(self, request: Request) -> list[tuple[bytes, bytes]]:
        """CORS headers for an origin some browser site allows (none otherwise)."""
        origin = request.header(b"origin")
        if origin is None or not self._origin_known(origin.decode("latin-1")):
            return []
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"origin"),
        ]

    def _origin_known(self, origin: str) -> bool:
        return any(site.allows_origin(origin) for site in self.sites.values())

    async def store(
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
        count_rejected(rejected)

    def _records(
        self, accepted: list[Envelope], messages: list[Any], rejected: list[dict[str, Any]]
    ) -> list[Record]:
        topic = self.settings.events_topic
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
            records.append((self.settings.dlq_topic, b"", value, now))
        if len(rejected) > LISTED_REJECTIONS:
            value = _dead_letters_counted(rejected[LISTED_REJECTIONS:])
            records.append((self.settings.dlq_topic, b"", value, now))
        return records


def limit(request: Request, limiter: RateLimiter, what: str, count: int = 1) -> None:
    """429 when the request's address is past `limiter`'s budget for `count` more `what`."""
    client = request.client
    if client and not limiter.allow(client, time.monotonic(), count):
        raise HTTPError(429, f"too many {what} from this address", [(b"retry-after", b"1")])


def refusals(rejected: list[dict[str, Any]]) -> dict[str, Any]:
    """What an answer says of a batch's refused events: the first few, and how many."""
    return {"rejected": rejected[:LISTED_REJECTIONS], "rejected_count": len(rejected)}


def count_rejected(rejected: list[dict[str, Any]]) -> None:
    """Count refused events."""
    if rejected:
        metrics.EVENTS.labels("rejected", "unknown").inc(len(rejected))
        metrics.REJECTIONS.labels("invalid_event").inc(len(rejected))


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
    try:
        value = dead_letter(reason, "collector", bad)
    except codec.JSONEncodeError:
        value = b""
    if not value or len(value) > MAX_EVENT_BYTES:
        value = dead_letter(reason, "collector", None, value_excerpt=_EXCERPT.repr(bad))
    return value


def _dead_letters_counted(rejected: list[dict[str, Any]]) -> bytes:
    """One DLQ record for the refusals of a batch past the listed ones: how many, by reason
    (the ten commonest, each cut short)."""
    reasons = Counter(item["reason"][:MAX_REASON_CHARS] for item in rejected)
    return dead_letter(
        f"{len(rejected)} more events of this batch refused",
        "collector",
        None,
        first_index=rejected[0]["index"],
        rejected_count=len(rejected),
        reasons=dict(reasons.most_common(10)),
    )


def _basic_username(value: bytes | None) -> str | None:
    if value is None or value[:6].lower() != b"basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise HTTPError(401, "the Authorization header is not valid Basic credentials") from None
    return decoded.partition(":")[0] or None


def _count_accepted(accepted: list[Envelope]) -> None:
    # Label lookups cost more than counting: one per channel and reason per request.
    channels = Counter(envelope["channel"] for envelope in accepted)
    for channel, count in channels.items():
        _ACCEPTED_BY_CHANNEL[channel].inc(count)
    machines = Counter(envelope["machine"] for envelope in accepted if envelope["machine"])
    for reason, count in machines.items():
        metrics.MACHINES.labels(reason).inc(count)
