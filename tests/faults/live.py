"""Live traffic for fault tests: signals produced to the real events topic as the collector
would (keyed, stamped with the receive time), and what the read model and the reps' streams
hold afterwards, next to what an uninterrupted run gives."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import redis
from confluent_kafka import Producer

from alerts.dispatcher import Dispatcher
from config.routing import load_routing
from config.settings import Settings
from contracts import codec
from contracts.envelope import Envelope, partition_key
from contracts.read_model import RedisKeys, decode_profile
from tests.streams import Stamper, live_stamp, random_plan


class LiveTraffic(threading.Thread):
    """Produces `count` random signals at about `per_second`, each acknowledged by the broker
    before the next; `signals` are those the broker took, in order."""

    def __init__(self, settings: Settings, count: int, per_second: float, seed: int) -> None:
        super().__init__(daemon=True)
        self._settings = settings
        self._plan = random_plan(random.Random(seed), count)
        self._pause = 1.0 / per_second
        self._stamper = Stamper()
        self.signals: list[Envelope] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        producer = Producer({"bootstrap.servers": self._settings.brokers, "acks": "all"})
        received = 0
        try:
            for step in self._plan:
                received = live_stamp(received)
                made = self._stamper.next(step, received)
                if made is not None:
                    send(producer, self._settings.events_topic, made)
                    self.signals.append(made)
                time.sleep(self._pause)
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.failure = exc

    def finish(self, timeout: float) -> list[Envelope]:
        """Wait for the last signal; the signals produced."""
        self.join(timeout)
        assert not self.is_alive(), "the traffic did not finish in time"
        assert self.failure is None, self.failure
        return self.signals


def send(producer: Producer, topic: str, signal: Envelope) -> None:
    """Produce one signal as the collector does, and wait for the broker's acknowledgement."""
    producer.produce(
        topic,
        codec.dumps(signal),
        partition_key(signal).encode(),
        timestamp=signal["received_at"],
    )
    assert producer.flush(10) == 0, "the broker did not acknowledge a signal"


def read_profiles(client: redis.Redis, settings: Settings) -> dict[str, dict[str, Any]]:
    """Every profile in the read model, by person."""
    keys = RedisKeys(settings.redis_prefix)
    prefix = keys.profile("")
    found: dict[str, dict[str, Any]] = {}
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        fields = client.hgetall(key)
        if fields:
            found[key.decode()[len(prefix) :]] = decode_profile(fields)  # type: ignore[arg-type]
    return found


def delivered_ids(client: redis.Redis, settings: Settings) -> list[str]:
    """The ids of the alerts in every rep's stream, in stream order per rep."""
    keys = RedisKeys(settings.redis_prefix)
    routing = load_routing(settings.config_dir / "routing.toml")
    ids: list[str] = []
    for rep in routing.reps:
        ids += [fields[b"id"].decode() for _, fields in client.xrange(keys.rep_alerts(rep))]  # type: ignore[union-attr]
    return ids


def ids_an_uninterrupted_dispatcher_delivers(
    client: redis.Redis, settings: Settings, alerts: list[dict[str, Any]]
) -> set[str]:
    """The alert ids the dispatcher puts in reps' streams (delivered, or updating a visit's
    thread; not throttled, not suppressed) when given `alerts` once, in order, under a key
    prefix of its own."""
    routing = load_routing(settings.config_dir / "routing.toml")
    dispatcher = Dispatcher(client, RedisKeys(f"{settings.redis_prefix}-expected"), routing)
    now = int(time.time() * 1000)
    in_streams = ("delivered", "updated")
    return {a["id"] for a in alerts if dispatcher.deliver(a, now) in in_streams}
