"""Where the dataflow's results go: the rep read model in Redis, and Kafka topics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import redis
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Producer

from config.routing import Routing, route
from contracts import kafka
from contracts.envelope import ANONYMOUS_PREFIX
from contracts.read_model import ProfileView, RedisKeys, encode_profile
from dataflows.io import metrics

log = logging.getLogger("dbl.dataflow")

RECENT_KEPT_MS = 86_400_000
REDIS_RETRY_S: Final = 1.0
# The shadow's alert log keeps about this many (as a rep's stream does).
ALERT_LOG_MAXLEN: Final = 10_000


@dataclass(frozen=True, slots=True)
class ProfileWrite:
    """Replace a person's profile in the read model, or delete it (`view is None`)."""

    person: str
    view: ProfileView | None


class _RedisProfilePartition(StatelessSinkPartition[ProfileWrite]):
    def __init__(
        self, client: redis.Redis, keys: RedisKeys, routing: Routing, anonymous_ttl_s: int
    ) -> None:
        self._anonymous_ttl_s = anonymous_ttl_s
        self._client = client
        self._keys = keys
        self._routing = routing

    def write_batch(self, items: list[ProfileWrite]) -> None:
        """Write the batch, waiting out Redis outages: the dataflow keeps its place (a
        replayed batch writes the same values again)."""
        _waiting_out_redis(lambda: self._write(items), f"{len(items)} profile writes")

    def _write(self, items: list[ProfileWrite]) -> None:
        # One pipeline per batch: one round trip however many profiles changed.
        pipe = self._client.pipeline(transaction=False)
        for item in items:
            key = self._keys.profile(item.person)
            if item.view is None:
                pipe.delete(key)
                pipe.zrem(self._keys.hot_leads, item.person)
                if not item.person.startswith(ANONYMOUS_PREFIX):
                    # Merged away or forgotten: off every rep's "hot now" list too.
                    for rep in self._routing.reps:
                        pipe.zrem(self._keys.rep_recent(rep), item.person)
                        pipe.zrem(self._keys.rep_present(rep), item.person)
                continue
            pipe.delete(key)
            pipe.hset(key, mapping=encode_profile(item.view))  # type: ignore[arg-type]
            if item.person.startswith(ANONYMOUS_PREFIX):
                # Nobody may ever claim this visitor: let the read model forget them.
                pipe.expire(key, self._anonymous_ttl_s)
            else:
                pipe.zadd(self._keys.hot_leads, {item.person: item.view["engagement"]})
                self._index_for_rep(pipe, item.view)
        pipe.execute()

    def _index_for_rep(self, pipe: redis.client.Pipeline, view: ProfileView) -> None:
        """The rep's recent leads, for the live page's "hot now" list (a day is kept), and
        those on the site, for its "on the site now" list."""
        rep, person = route(view, self._routing), view["person"]
        recent = self._keys.rep_recent(rep)
        pipe.zadd(recent, {person: view["last_seen"]})
        pipe.zremrangebyscore(recent, "-inf", view["last_seen"] - RECENT_KEPT_MS)
        visit, present = view["presence"], self._keys.rep_present(rep)
        if visit is None or visit["left"]:
            pipe.zrem(present, person)
        else:
            pipe.zadd(present, {person: visit["last"]})
            pipe.zremrangebyscore(present, "-inf", visit["last"] - RECENT_KEPT_MS)

    def close(self) -> None:
        self._client.close()


def _waiting_out_redis(write: Callable[[], object], what: str) -> None:
    while True:
        try:
            write()
            return
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            metrics.REDIS_RETRIES.inc()
            log.warning("Redis unavailable, retrying %s: %s", what, exc)
            time.sleep(REDIS_RETRY_S)


class _AlertLogPartition(StatelessSinkPartition[KafkaSinkMessage[bytes, bytes]]):
    def __init__(self, client: redis.Redis, key: str) -> None:
        self._client = client
        self._key = key

    def write_batch(self, items: list[KafkaSinkMessage[bytes, bytes]]) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=False)
            for item in items:
                pipe.xadd(self._key, {"alert": item.value}, maxlen=ALERT_LOG_MAXLEN)
            pipe.execute()

        _waiting_out_redis(write, f"{len(items)} alerts")

    def close(self) -> None:
        self._client.close()


class RedisAlertLog(DynamicSink[KafkaSinkMessage[bytes, bytes]]):
    """Appends alerts to a capped Redis stream that nobody delivers from: where a shadow
    model's alerts go."""

    def __init__(self, url: str, key: str) -> None:
        self._url = url
        self._key = key

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _AlertLogPartition:
        """One Redis connection per worker."""
        return _AlertLogPartition(redis.Redis.from_url(self._url), self._key)


class _Dropped(StatelessSinkPartition[Any]):
    def write_batch(self, items: list[Any]) -> None:
        """Nothing to do."""


class Dropped(DynamicSink[Any]):
    """Takes items and keeps none: a shadow model's dead letters (the live dataflow writes
    the same ones to the DLQ)."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Dropped:
        """A partition that drops what it gets."""
        return _Dropped()


class RedisProfileSink(DynamicSink[ProfileWrite]):
    """Writes profile views as hashes `<prefix>:profile:<person>` and the hot-lead index. An
    anonymous visitor's profile expires as its state in the dataflow does (the model's
    anonymous TTL, counted here from its last write).

    >>> from config.routing import load_routing
    >>> from config.settings import CONFIG_DIR
    >>> routing = load_routing(CONFIG_DIR / "routing.toml")
    >>> sink = RedisProfileSink("redis://127.0.0.1:6379/0", RedisKeys("dbl"), routing,
    ...                         anonymous_ttl_ms=90 * 86_400_000)
    """

    def __init__(
        self, url: str, keys: RedisKeys, routing: Routing, *, anonymous_ttl_ms: int
    ) -> None:
        self._url = url
        self._keys = keys
        self._routing = routing
        self._anonymous_ttl_s = anonymous_ttl_ms // 1000

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RedisProfilePartition:
        """One Redis connection per worker."""
        client = redis.Redis.from_url(self._url)
        return _RedisProfilePartition(client, self._keys, self._routing, self._anonymous_ttl_s)


KAFKA_RETRY_S: Final = 1.0
# How long the producer keeps trying one message before reporting it failed: the sink then
# logs and sends it again (nothing is dropped), so this only paces the warnings.
MESSAGE_TIMEOUT_MS: Final = 30_000


class _ReliableKafkaPartition(StatelessSinkPartition[KafkaSinkMessage[Any, Any]]):
    def __init__(self, config: dict[str, Any], topic: str) -> None:
        self._config = config
        self._topic = topic
        self._producer = Producer(config)

    def write_batch(self, items: list[KafkaSinkMessage[Any, Any]]) -> None:
        """Produce the batch and wait until the broker acknowledged every message; from the
        first failed one on, the rest is sent again (in order) until it is."""
        pending = items
        while pending:
            failed_at = self._produce_all(pending)
            if failed_at is None:
                return
            pending = pending[failed_at:]
            metrics.KAFKA_RETRIES.inc()
            log.warning(
                "broker did not take %d messages for %s, retrying", len(pending), self._topic
            )
            time.sleep(KAFKA_RETRY_S)

    def _produce_all(self, items: list[KafkaSinkMessage[Any, Any]]) -> int | None:
        """Produce and flush; the index of the first message that failed, if any."""
        failures: list[int] = []
        fatal = False

        def acknowledged(index: int, error: KafkaError | None) -> None:
            nonlocal fatal
            if error is not None:
                failures.append(index)
                fatal = fatal or error.fatal()

        for index, message in enumerate(items):
            self._produce(message, lambda err, _msg, i=index: acknowledged(i, err))
        self._producer.flush()
        if fatal:
            # An idempotent producer whose id the broker forgot (e.g. a memory-only broker
            # restarted) cannot go on: start a new one.
            self._producer = Producer(self._config)
        return min(failures) if failures else None

    def _produce(self, message: KafkaSinkMessage[Any, Any], on_delivery: Any) -> None:
        while True:
            try:
                self._producer.produce(
                    self._topic, message.value, message.key, on_delivery=on_delivery
                )
                return
            except BufferError:
                self._producer.poll(0.1)  # the local queue is full: let deliveries drain

    def close(self) -> None:
        self._producer.flush()


class ReliableKafkaSink(DynamicSink[KafkaSinkMessage[Any, Any]]):
    """A Kafka topic that loses nothing: every message waits for all replicas (acks=all),
    is never duplicated by the producer's own retries (idempotence), and is sent again until
    the broker takes it (Bytewax's KafkaSink drops what the broker refused). While the broker
    is down the dataflow waits here and keeps its place.

    >>> sink = ReliableKafkaSink("127.0.0.1:9092", "dbl.alerts")
    """

    def __init__(self, brokers: str, topic: str) -> None:
        self._config = kafka.producer_config(brokers, **{"message.timeout.ms": MESSAGE_TIMEOUT_MS})
        self._topic = topic

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ReliableKafkaPartition:
        """One producer per worker."""
        return _ReliableKafkaPartition(self._config, self._topic)
