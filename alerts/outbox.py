"""The webhook outbox in Redis, and the sender that works it: retries with backoff and
jitter, then the dead-letter list. Jobs are enqueued by the dispatcher together with the
alert itself (one atomic step), so a crash never loses or doubles a job."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, cast

import redis

from alerts import metrics
from alerts.routing import daily_digest_due
from alerts.webhooks import (
    DeliveryFailed,
    backoff_s,
    post,
    render,
    render_daily,
    render_digest,
)
from config.routing import Routing, Webhook
from config.settings import Settings
from contracts import codec
from contracts.read_model import RedisKeys, hottest_first, profiles_of
from runtime import failpoints
from runtime.worker import BackgroundWorker

log = logging.getLogger("dbl.webhooks")

POLL_S: Final = 0.1
BATCH: Final = 100
# Calls in flight at once: in all, and to one destination (a slow or hanging receiver
# holds at most its own share, never everyone's alerts).
SENDERS: Final = 16
PER_DESTINATION: Final = 2
# A claimed job is hidden this long: if the sender dies mid-call, it is retried after.
LEASE_MS: Final = 60_000

# Take a due job: push its due time past the lease, return it (nil if not due or taken).
_CLAIM: Final = """
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) <= tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return redis.call('HGET', KEYS[2], ARGV[1])
end
return false
"""


# A job was sent: drop it; a digest drops the alerts it sent, and goes again at once with
# any held after it was read (an alert of the quiet hours that came late).
_FINISH: Final = """
if KEYS[3] ~= '' then
  redis.call('LTRIM', KEYS[3], ARGV[2], -1)
  if redis.call('LLEN', KEYS[3]) > 0 then
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
    return 0
  end
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


# Queue a rep's daily digest once (whichever sender gets there first), jobs and all.
_QUEUE_DAILY: Final = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[i])
end
return 1
"""
DAILY_LEADS: Final = 10
DAY_MS: Final = 86_400_000


def job_id(alert_id: str, rep: str, index: int) -> str:
    """One job per alert, rep and configured webhook."""
    return f"{alert_id}:{rep}:{index}"


def digest_id(rep: str, index: int, due: int) -> str:
    """One digest per rep, configured webhook and end of quiet hours (epoch ms).

    >>> digest_id("alex", 0, 1_767_250_800_000)
    'digest-1767250800000:alex:0'
    """
    return f"digest-{due}:{rep}:{index}"


def new_digest(rep: str, index: int, held: str) -> bytes:
    """A digest job's stored form: the alerts it sends are in the list `held`."""
    return codec.dumps({"digest": held, "rep": rep, "webhook": index, "attempt": 0})


def new_job(alert: dict[str, Any], rep: str, index: int, event: str = "created") -> bytes:
    """A job's stored form; `event` is `created` (a thread's first push) or `updated`."""
    job = {"alert": alert, "rep": rep, "webhook": index, "attempt": 0, "event": event}
    return codec.dumps(job)


class WebhookSender(BackgroundWorker):
    """Sends due webhook jobs in a background thread."""

    name = "webhook-sender"

    def __init__(
        self, client: redis.Redis, keys: RedisKeys, routing: Routing, settings: Settings
    ) -> None:
        super().__init__()
        self._client = client
        self._keys = keys
        self._routing = routing
        self._failpoint = settings.failpoint
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._queue_daily = client.register_script(_QUEUE_DAILY)
        self._rng = random.Random()
        self._pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook-call")
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.queue_daily_digests(_now_ms())
                    sent = self.send_due()
                except redis.RedisError as exc:
                    log.warning("Redis unavailable for webhooks: %s", exc)
                    sent = 0
                if not sent:
                    self._stop.wait(POLL_S)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def queue_daily_digests(self, now_ms: int) -> int:
        """Queue each rep's daily digest of the day's hottest leads when its time comes
        (once per rep and day, whichever sender is first); returns how many reps'."""
        queued = 0
        for rep in self._routing.reps.values():
            day = daily_digest_due(now_ms, rep.daily_digest) if rep.daily_digest else None
            if (
                day is None
                or not rep.webhooks
                or self._client.exists(self._keys.daily(rep.id, day))
            ):
                continue
            leads = self._hottest(rep.id, now_ms)
            jobs: list[str | bytes] = []
            for index in range(len(rep.webhooks)):
                job = {"daily": day, "leads": leads, "rep": rep.id, "webhook": index, "attempt": 0}
                jobs += [f"daily-{day}:{rep.id}:{index}", codec.dumps(job)]
            keys = [self._keys.daily(rep.id, day), self._keys.webhook_jobs, self._keys.webhook_due]
            queued += int(self._queue_daily(keys=keys, args=[2 * DAY_MS // 1000, now_ms, *jobs]))
        return queued

    def _hottest(self, rep: str, now_ms: int) -> list[dict[str, Any]]:
        """The rep's leads active in the last day, hottest first, with their reasons."""
        people = self._client.zrangebyscore(self._keys.rep_recent(rep), now_ms - DAY_MS, "+inf")
        pipe = self._client.pipeline(transaction=False)
        for person in cast(list[bytes], people):
            pipe.hgetall(self._keys.profile(person.decode()))
        profiles = hottest_first(profiles_of(pipe.execute()))
        return [
            {
                key: profile.get(key)
                for key in ("person", "name", "company", "grade", "engagement", "top_signals")
            }
            for profile in profiles[:DAILY_LEADS]
        ]

    def send_due(self) -> int:
        """Start a call for every due job whose destination has room; returns how many."""
        now = _now_ms()
        due = cast(
            list[bytes], self._client.zrangebyscore(self._keys.webhook_due, "-inf", now, 0, BATCH)
        )
        started = 0
        for raw_id in due:
            job_key = raw_id.decode()
            destination = _destination(job_key)
            with self._lock:
                if self._in_flight[destination] >= PER_DESTINATION:
                    continue  # still due: taken once a call to it returns
                self._in_flight[destination] += 1
            raw = self._claim(
                keys=[self._keys.webhook_due, self._keys.webhook_jobs],
                args=[job_key, now, now + LEASE_MS],
            )
            if not raw:
                self._done(destination)
                continue
            self._pool.submit(self._call, destination, job_key, codec.loads(raw))
            started += 1
        return started

    def _call(self, destination: str, job_key: str, job: dict[str, Any]) -> None:
        try:
            self._attempt(job_key, job)
        except redis.RedisError as exc:
            # The lease runs out and the job is tried again.
            log.warning("Redis unavailable after webhook job %s: %s", job_key, exc)
        finally:
            self._done(destination)

    def _done(self, destination: str) -> None:
        with self._lock:
            self._in_flight[destination] -= 1
            if not self._in_flight[destination]:
                del self._in_flight[destination]

    def _attempt(self, job_key: str, job: dict[str, Any]) -> None:
        rep = self._routing.reps.get(job["rep"])
        hooks = rep.webhooks if rep is not None else ()
        if job["webhook"] >= len(hooks):
            self._dead(job_key, job, "the destination is no longer configured")
            return
        webhook: Webhook = hooks[job["webhook"]]
        assert rep is not None
        held: list[bytes] = []
        if "digest" in job:
            held = cast(list[bytes], self._client.lrange(job["digest"], 0, -1))
            body = render_digest([codec.loads(a) for a in held], rep.name, webhook.format)
            message_id = job_key
        elif "daily" in job:
            body = render_daily(job["leads"], rep.name, job["daily"], webhook.format)
            message_id = job_key
        else:
            body = render(job["alert"], rep.name, webhook.format, job.get("event", "created"))
            message_id = job["alert"]["id"]
        started = time.monotonic()
        try:
            post(webhook, message_id, body, int(time.time()), self._routing.delivery.timeout_s)
        except DeliveryFailed as exc:
            self._failed(job_key, job, exc.reason)
            return
        metrics.WEBHOOK_SECONDS.observe(time.monotonic() - started)
        self._finish(
            keys=[self._keys.webhook_due, self._keys.webhook_jobs, job.get("digest", "")],
            args=[job_key, len(held), _now_ms()],
        )
        metrics.DELIVERIES.labels(f"webhook_{webhook.format}", "delivered").inc()
        failpoints.hit(self._failpoint, "after_webhook")

    def _failed(self, job_key: str, job: dict[str, Any], reason: str) -> None:
        job["attempt"] += 1
        job["last_error"] = reason
        delivery = self._routing.delivery
        if job["attempt"] >= delivery.max_attempts:
            self._dead(job_key, job, reason)
            return
        metrics.DELIVERIES.labels("webhook", "retried").inc()
        retry_at = _now_ms() + int(backoff_s(job["attempt"], delivery, self._rng) * 1000)
        pipe = self._client.pipeline()
        pipe.hset(self._keys.webhook_jobs, job_key, codec.dumps(job))
        pipe.zadd(self._keys.webhook_due, {job_key: retry_at})
        pipe.execute()

    def _dead(self, job_key: str, job: dict[str, Any], reason: str) -> None:
        log.warning("webhook job %s dead after %s attempts: %s", job_key, job["attempt"], reason)
        record = {
            "job": job_key,
            "alert": job["alert"]["id"] if "alert" in job else None,
            "digest": job.get("digest") or job.get("daily"),
            "rep": job["rep"],
            "webhook": job["webhook"],
            "attempts": job["attempt"],
            "reason": reason,
            "at": _now_ms(),
        }
        pipe = self._client.pipeline()
        if "digest" in job:  # its alerts stay on the rep's page; the held copies go
            pipe.delete(job["digest"])
        pipe.lpush(self._keys.webhook_dead, codec.dumps(record))
        pipe.zrem(self._keys.webhook_due, job_key)
        pipe.hdel(self._keys.webhook_jobs, job_key)
        pipe.execute()
        metrics.DELIVERIES.labels("webhook", "dead_letter").inc()


def _destination(job_key: str) -> str:
    """Where a job goes: its rep and webhook (`job_id`'s last two parts).

    >>> _destination("0af3:sam:1")
    'sam:1'
    """
    return job_key.split(":", 1)[1]


def _now_ms() -> int:
    return int(time.time() * 1000)
