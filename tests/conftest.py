"""Shared fixtures: one real broker and one real Redis per test session, unique topics and
Redis key prefix per test, and factories for envelopes and running DBL processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from hypothesis import settings as hypothesis_settings

from bench import markets
from config.settings import Settings
from contracts import codec
from contracts.envelope import Envelope
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from dbl.topics import ensure_topics
from runtime.ports import free_port

hypothesis_settings.register_profile("dbl", deadline=None, max_examples=150)
hypothesis_settings.load_profile("dbl")

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# Dana Ruiz, a VP of Sales at an 800-person US software company (fit 85: A), owned by Sam.
DANA = {
    "email": "dana@acme.com",
    "name": "Dana Ruiz",
    "title": "VP Sales",
    "company": "Acme",
    "company_size": 800,
    "industry": "Software",
    "country": "US",
    "owner": "sam",
}
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in epoch ms: a fixed event-time origin
# What a test sending as a browser says it is: an HTTP library's own user agent is a bot's.
A_BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
}


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """A real Kafka-protocol broker (Tansu) on a free port, for the whole session."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A real redis-server on a free port, for the whole session."""
    with EmbeddedRedis() as running:
        yield running


def fresh_settings(bootstrap_servers: str, redis_url: str) -> Settings:
    """Settings of a fresh namespace: its own topics (created), Redis key prefix and ports."""
    tag = uuid.uuid4().hex[:10]
    configured = Settings(
        kafka_bootstrap_servers=bootstrap_servers,
        redis_url=redis_url,
        events_topic=f"t{tag}.events",
        alerts_topic=f"t{tag}.alerts",
        dlq_topic=f"t{tag}.dlq",
        models_topic=f"t{tag}.models",
        redis_prefix=f"t{tag}",
        dispatcher_group=f"t{tag}.dispatcher",
        collector_port=free_port(),
        rep_api_port=free_port(),
        dataflow_metrics_port=free_port(),
        delivery_metrics_port=free_port(),
        produce_timeout_s=3.0,
        demo=True,  # the shipped demo keys and tokens
    )
    ensure_topics(configured)
    return configured


@pytest.fixture
def settings(broker: EmbeddedBroker, redis_server: EmbeddedRedis) -> Settings:
    """A fresh namespace on the session's broker and Redis."""
    return fresh_settings(broker.bootstrap_servers, redis_server.url)


def start_module(
    settings: Settings, module: str, log_path: Path, args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """Start `python -m <module> [args]` with `settings` in its environment, logging to a
    file."""
    env = {**os.environ, **settings.as_environment()}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then SIGKILL after 10 s: no test leaves a process behind."""
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_all(settings: Settings, topic: str, timeout: float = 10.0) -> list[Message]:
    """Every record `topic` holds now: each partition read from its start to its end."""
    config = {"bootstrap.servers": settings.brokers, "group.id": "tests"}
    consumer = Consumer({**config, "enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Message] = []
        ended: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(ended) < len(partitions) and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                error = message.error()
                if error is None:
                    records.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition() or 0)
        return records
    finally:
        consumer.close()


def read_topic(
    settings: Settings, topic: str, count: int, timeout: float = 10.0, until: bytes | None = None
) -> list[Message]:
    """Read `count` records from the start of every partition of `topic` (or fewer, once a
    record holding `until` came)."""
    consumer = Consumer({"bootstrap.servers": settings.brokers, "group.id": "tests"})
    try:
        partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            records += [m for m in consumer.consume(100, 0.2) if m.error() is None]
            if until is not None and any(until in (m.value() or b"") for m in records):
                break
        return records
    finally:
        consumer.close()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


ProcessFactory = Callable[[str], subprocess.Popen[bytes]]


@pytest.fixture
def start_process(settings: Settings, tmp_path: Path) -> Iterator[ProcessFactory]:
    """Start `python -m <module>` with the test's settings; everything is stopped after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(module: str) -> subprocess.Popen[bytes]:
        process = start_module(settings, module, tmp_path / f"{module}.log")
        started.append(process)
        return process

    yield start
    stop_processes(started)


@pytest.fixture
def running_system(settings: Settings, start_process: ProcessFactory) -> Settings:
    """The collector, the dataflow and the rep service, started as `dbl run` starts them."""
    collector = start_process("tracking")
    start_process("dataflows")
    rep_service = start_process("alerts")
    wait_for_port(settings.collector_port, collector, timeout=20)
    wait_for_port(settings.rep_api_port, rep_service, timeout=20)
    return settings


def wait_until(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")


def envelope(**fields: object) -> Envelope:
    """A valid browser page-view envelope at T0, with any field overridden."""
    defaults: dict[str, object] = {"id": uuid.uuid4().hex, "ts": T0, "received_at": T0}
    return markets.signal(**{**defaults, "anon_id": "cookie-1", "source": "demo", **fields})


def page_view(path: str, **fields: object) -> Envelope:
    """A page view of `path`."""
    return envelope(context={"page": {"path": path}}, **fields)


def alert(alert_id: str, kind: str = "sales_ready", **fields: Any) -> dict[str, Any]:
    """An alert for Dana, owned by Sam, as the dataflow would put it on the alerts topic."""
    profile = {
        "person": "dana@acme.com",
        "name": "Dana <Ruiz>",
        "owner": "sam",
        # Visitor-supplied text that looks like a URL must never be called.
        "activity": [[0, "Viewed http://127.0.0.1:1/never-call-me"]],
    }
    return {
        "id": alert_id,
        "kind": kind,
        "ts": int(time.time() * 1000),
        "contact": "dana@acme.com",
        "account": "acme.com",
        "owner": "sam",
        "grade": "A2",
        "fit": 85.0,
        "engagement": 40.0,
        "reason": "entered A2",
        "late": False,
        "signal": None,
        "profile": profile,
        **fields,
    }


def publish(settings: Settings, *alerts: dict[str, Any]) -> None:
    """Put alerts on the alerts topic (as the dataflow, or a replay of it, would)."""
    producer = Producer({"bootstrap.servers": settings.brokers})
    for item in alerts:
        producer.produce(settings.alerts_topic, codec.dumps(item), item["contact"].encode())
    assert producer.flush(10) == 0
