"""The dispatcher: reads `dbl.alerts`, routes each alert to a rep, appends it to the rep's
Redis stream exactly once (idempotent on alert id), then commits its offset."""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from alerts import metrics
from alerts.routing import route
from config.routing import Routing
from config.settings import Settings
from dbl import codec
from dbl.redis_keys import RedisKeys

log = logging.getLogger("dbl.alerts")

DELIVERED_TTL_S: Final = 30 * 86_400
STREAM_MAXLEN: Final = 10_000
RETRY_DELAY_S: Final = 1.0

# Marks the id delivered and appends to the stream in one atomic step: a crash can
# never leave one without the other, and a replayed alert is recognised.
_DELIVER_ONCE: Final = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', ARGV[3], 'alert', ARGV[4])
  return 1
end
return 0
"""


class Dispatcher:
    """Delivers alerts to reps' Redis streams; safe to replay (each id lands once)."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, routing: Routing) -> None:
        self._client = client
        self._keys = keys
        self._routing = routing
        self._deliver_once = client.register_script(_DELIVER_ONCE)

    def deliver(self, alert: dict[str, Any]) -> bool:
        """Append the alert to its rep's stream; False if this id was delivered before."""
        rep = route(alert, self._routing)
        added = self._deliver_once(
            keys=[self._keys.delivered(alert["id"]), self._keys.rep_alerts(rep)],
            args=[DELIVERED_TTL_S, STREAM_MAXLEN, alert["id"], codec.dumps(alert)],
        )
        outcome = "delivered" if added else "duplicate"
        metrics.DELIVERIES.labels("redis_stream", outcome).inc()
        if added:
            log.info("%s", announce(alert, rep, self._routing))
        return bool(added)


def announce(alert: dict[str, Any], rep: str, routing: Routing) -> str:
    """One terminal line for a rep's alert: who, why, for whom (visitor text made printable)."""
    profile = alert.get("profile") or {}
    who = _printable(profile.get("name") or alert.get("contact") or "someone")
    company = _printable(profile.get("company") or alert.get("account") or "")
    where = f" of {company}" if company else ""
    return (
        f"ALERT {alert['kind']} for {_printable(routing.reps.get(rep, rep))}: "
        f"{who}{where} <{_printable(alert.get('contact', ''))}> is {alert.get('grade')} "
        f"(fit {alert.get('fit')}, engagement {alert.get('engagement')}) - "
        f"{_printable(alert.get('reason', ''))}"
    )


def _printable(value: Any) -> str:
    """Visitor-typed text, stripped of control characters (no terminal escapes)."""
    return "".join(ch for ch in str(value) if ch.isprintable())[:200]


class AlertConsumer:
    """The dispatcher's loop over the alerts topic, committing after each delivered batch."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher) -> None:
        self._settings = settings
        self._dispatcher = dispatcher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-dispatcher", daemon=True)

    def start(self) -> None:
        """Start consuming in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current batch (bounded wait)."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self._settings.brokers,
                "group.id": self._settings.dispatcher_group,
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.assign(self._partitions(consumer))
            while not self._stop.is_set():
                messages = consumer.consume(500, 0.2)
                handled = self._deliver_all(messages)
                if handled:
                    consumer.commit(offsets=_next_offsets(handled), asynchronous=False)
        finally:
            consumer.close()

    def _partitions(self, consumer: Consumer) -> list[TopicPartition]:
        topic = self._settings.alerts_topic
        metadata = consumer.list_topics(topic, timeout=10)
        wanted = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
        committed = consumer.committed(wanted, timeout=10)
        return [
            TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            for tp in committed
        ]

    def _deliver_all(self, messages: list[Message]) -> list[Message]:
        """Deliver in order; returns the messages handled (all, unless stopped midway)."""
        for done, message in enumerate(messages):
            if message.error() is not None:
                log.warning("alerts topic error: %s", message.error())
                continue
            alert = _decode_alert(message)
            if alert is not None and not self._deliver_with_retry(alert):
                return messages[:done]
        return messages

    def _deliver_with_retry(self, alert: dict[str, Any]) -> bool:
        """Deliver, waiting out Redis outages; False only when asked to stop first."""
        while not self._stop.is_set():
            try:
                self._dispatcher.deliver(alert)
                return True
            except redis.RedisError as exc:
                # Keep our place: nothing is committed until Redis takes the alert.
                log.warning("Redis unavailable, retrying alert %s: %s", alert["id"], exc)
                self._stop.wait(RETRY_DELAY_S)
        return False


def _decode_alert(message: Message) -> dict[str, Any] | None:
    try:
        alert = codec.loads(message.value() or b"")
    except codec.JSONDecodeError:
        alert = None
    if not isinstance(alert, dict) or not isinstance(alert.get("id"), str):
        metrics.MALFORMED.inc()
        log.warning(
            "skipping a record that is not an alert at %s[%s]@%s",
            message.topic(),
            message.partition(),
            message.offset(),
        )
        return None
    return alert


def _next_offsets(messages: list[Message]) -> list[TopicPartition]:
    last: dict[tuple[str, int], int] = {}
    for message in messages:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is not None and partition is not None and offset is not None:
            last[(topic, partition)] = offset
    return [TopicPartition(t, p, offset + 1) for (t, p), offset in last.items()]
