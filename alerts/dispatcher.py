"""The dispatcher: reads `dbl.alerts`, routes each alert to a rep, appends it to the rep's
Redis stream and enqueues its webhooks exactly once (idempotent on alert id), then commits
its offset."""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from alerts import metrics
from alerts.outbox import digest_id, job_id, new_digest, new_job
from alerts.routing import push_at, suppressed_by, throttle_key
from config.routing import Routing, route
from config.settings import Settings
from contracts import codec, kafka
from contracts.feedback import delivered
from contracts.read_model import RedisKeys
from runtime import failpoints
from runtime.worker import BackgroundWorker

log = logging.getLogger("dbl.alerts")

DELIVERED_TTL_S: Final = 30 * 86_400
STREAM_MAXLEN: Final = 10_000
RETRY_DELAY_S: Final = 1.0
# How long one wait for the next alert may block (the stop flag is checked in between).
WAIT_S: Final = 0.1
BATCH: Final = 500

# One atomic step per alert: mark its id delivered, keeping whose it is (a replay stops
# here), note it among the alerts raised (before throttles: what a shadow model is compared
# with), keep it aside if the CRM's word on the lead suppresses it or its rep snoozed the
# lead or account; if its visit's thread was pushed as often as
# allowed, it only updates the thread; else apply the throttle (event time) and count the
# push; append to the rep's stream, enqueue its webhook jobs (a push, or a thread's
# updates), or in the rep's quiet hours add it to the digest sent when they end. A crash
# can never leave one of these without the others.
_DELIVER_ONCE: Final = """
if not redis.call('SET', KEYS[1], ARGV[12], 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[2], '*', 'alert', ARGV[4])
local state = ARGV[5]
if state == '' and redis.call('EXISTS', KEYS[9], KEYS[10]) > 0 then state = 'snoozed' end
if state ~= '' then
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[2], '*', 'rep', ARGV[9], 'state', state,
    'alert', ARGV[4])
  if state == 'snoozed' then return 5 end
  return 3
end
local created, limit = tonumber(ARGV[11]), tonumber(ARGV[10])
local first, last, outcome = 14, 13 + created, 1
if limit > 0 and tonumber(redis.call('GET', KEYS[8]) or '0') >= limit then
  first, last, outcome = 14 + created, #ARGV, 4
else
  local window = tonumber(ARGV[6])
  if window > 0 then
    local previous = redis.call('GET', KEYS[3])
    if previous and tonumber(ARGV[7]) - tonumber(previous) < window then return 2 end
    redis.call('SET', KEYS[3], ARGV[7], 'PX', math.floor(window * 2 + 86400000))
  end
  if limit > 0 then
    redis.call('INCR', KEYS[8])
    redis.call('PEXPIRE', KEYS[8], 172800000)
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', ARGV[3], 'alert', ARGV[4])
for i = first, last, 2 do
  if ARGV[13] == '1' then
    redis.call('RPUSH', KEYS[11 + (i - first) / 2], ARGV[4])
    redis.call('HSETNX', KEYS[5], ARGV[i], ARGV[i + 1])
    redis.call('ZADD', KEYS[4], 'NX', ARGV[8], ARGV[i])
  else
    redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
    redis.call('ZADD', KEYS[4], ARGV[8], ARGV[i])
  end
end
return outcome
"""
_OUTCOMES: Final = {
    0: "duplicate",
    1: "delivered",
    2: "throttled",
    3: "suppressed",
    4: "updated",
    5: "snoozed",
}


class Dispatcher:
    """Routes alerts and delivers them to reps' streams and webhooks; safe to replay."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, routing: Routing) -> None:
        self._client = client
        self._keys = keys
        self._routing = routing
        self._deliver_once = client.register_script(_DELIVER_ONCE)

    def deliver(self, alert: dict[str, Any], now_ms: int) -> str:
        """Deliver one alert; returns delivered, duplicate (seen before), throttled,
        suppressed (kept aside: the CRM's word on the lead), snoozed (kept aside: its rep
        snoozed the lead or account) or updated (on the rep's page
        and JSON webhooks as an update of its visit's thread, not pushed anew)."""
        rep_id = route(alert.get("profile") or alert, self._routing)
        rep = self._routing.reps[rep_id]
        window = self._routing.throttle_ms.get(alert["kind"], 0)
        push = push_at(alert, rep)
        held = push != int(alert["ts"])
        state = suppressed_by(alert, self._routing.suppress)
        created: list[bytes | str] = []
        updated: list[bytes | str] = []
        digests: list[str] = []
        for index, webhook in enumerate(rep.webhooks if state is None else ()):
            if held:  # quiet hours: every alert of them goes into one digest at their end
                key = digest_id(rep_id, index, push)
                created += [key, new_digest(rep_id, index, self._keys.digest(key))]
                digests.append(self._keys.digest(key))
                continue
            key = job_id(alert["id"], rep_id, index)
            created += [key, new_job(alert, rep_id, index)]
            # Slack cannot edit a message it was sent: a visit is one message there.
            if webhook.format == "json":
                updated += [key, new_job(alert, rep_id, index, "updated")]
        if held:
            updated = created  # a digest lists every alert of the night, updates too
        thread = alert.get("thread")
        limit = self._routing.pushes_per_visit if thread else 0
        # Pushes keep their offset from the alert's event time, on the wall clock.
        due = now_ms + max(0, push - int(alert["ts"]))
        result = self._deliver_once(
            keys=[
                self._keys.delivered(alert["id"]),
                self._keys.rep_alerts(rep_id),
                self._keys.throttle(throttle_key(alert, rep_id)),
                self._keys.webhook_due,
                self._keys.webhook_jobs,
                self._keys.raised,
                self._keys.suppressed,
                self._keys.thread(rep_id, str(thread or "")),
                self._keys.snooze(rep_id, "lead", str(alert.get("contact") or "")),
                self._keys.snooze(rep_id, "account", str(alert.get("account") or "")),
                *digests,
            ],
            args=[
                DELIVERED_TTL_S,
                STREAM_MAXLEN,
                alert["id"],
                codec.dumps(alert),
                state or "",
                window,
                int(alert["ts"]),
                due,
                rep_id,
                limit,
                len(created),
                codec.dumps(delivered(alert, rep_id)),
                "1" if held else "0",
                *created,
                *updated,
            ],
        )
        outcome = _OUTCOMES[int(result)]
        metrics.DELIVERIES.labels("redis_stream", outcome).inc()
        if outcome in ("suppressed", "snoozed"):
            metrics.SUPPRESSED.labels(alert["kind"], state or outcome).inc()
        if outcome in ("delivered", "updated"):
            log.info("%s", announce(alert, rep.name))
        return outcome


def announce(alert: dict[str, Any], rep_name: str) -> str:
    """One terminal line for a rep's alert: who, why, for whom. No email addresses (logs
    are not the place for them); visitor text made printable."""
    if alert.get("contact") is None:
        engaged = len((alert.get("profile") or {}).get("contacts") or [])
        return (
            f"ALERT {alert['kind']} for {_printable(rep_name)}: "
            f"{_printable(alert.get('account'))} ({engaged} engaged contacts, account "
            f"engagement {alert.get('engagement')}) - {_printable(alert.get('reason', ''))}"
        )
    profile = alert.get("profile") or {}
    who = _printable(profile.get("name") or "a contact")
    company = _printable(profile.get("company") or alert.get("account") or "")
    where = f" of {company}" if company else ""
    return (
        f"ALERT {alert['kind']} for {_printable(rep_name)}: "
        f"{who}{where} is {alert.get('grade')} "
        f"(fit {alert.get('fit')}, engagement {alert.get('engagement')}) - "
        f"{_printable(alert.get('reason', ''))}"
    )


def _printable(value: Any) -> str:
    """Visitor-typed text, stripped of control characters (no terminal escapes)."""
    return "".join(ch for ch in str(value) if ch.isprintable())[:200]


class AlertConsumer(BackgroundWorker):
    """The dispatcher's loop over the alerts topic, committing after each delivered batch."""

    name = "alert-dispatcher"

    def __init__(self, settings: Settings, dispatcher: Dispatcher) -> None:
        super().__init__()
        self._settings = settings
        self._dispatcher = dispatcher

    def _run(self) -> None:
        consumer = Consumer(
            kafka.consumer_config(
                self._settings.brokers,
                **{"group.id": self._settings.dispatcher_group, "enable.auto.commit": False},
            )
        )
        try:
            consumer.assign(self._partitions(consumer))
            while not self._stop.is_set():
                messages = _arrived(consumer)
                handled = self._deliver_all(messages)
                if handled:
                    failpoints.hit(self._settings.failpoint, "before_commit")
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
                self._dispatcher.deliver(alert, int(time.time() * 1000))
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


def _arrived(consumer: Consumer) -> list[Message]:
    """Wait for the next alert, then take whatever else has already arrived with it.
    (`consume(n, timeout)` alone waits until it has n messages or the timeout passed,
    which would hold every alert back by the timeout.)"""
    first = consumer.consume(1, WAIT_S)
    return first + consumer.consume(BATCH - 1, 0) if first else first
