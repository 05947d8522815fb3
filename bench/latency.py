"""End-to-end latency: from the collector's 2xx for a signal to the alert it raises being
in the rep's Redis stream, at a steady load, with the dataflow's recovery on.

    python -m bench.latency [--rate 2000] [--seconds 20] [--batch 100] [--snapshot-s 10]

Starts the embedded broker and Redis, the collector, the dataflow (recovery on) and the
dispatcher, all on this machine, and sends batches at the rate: first `--warmup-s` seconds
that are not measured (connections, first snapshots), then the measured ones. A Redis
stream entry id is the millisecond it was added: latency = entry id - 2xx. The alert's
broker timestamp (when the dataflow produced it) splits that into the dataflow's part and
the dispatcher's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import redis
from bytewax.recovery import init_db_dir
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.system import unlimited
from config.routing import load_routing
from config.settings import Settings
from contracts import codec
from contracts.read_model import RedisKeys
from dbl import demo
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from dbl.topics import ensure_topics

SERVER_KEY = ("wk_demo_server", "")


def batch_of_signals(first: int, size: int) -> list[dict[str, Any]]:
    """Mostly page views of known contacts; every tenth a demo request (a key action, and a
    sales-ready crossing for these well-fitting leads). Signal `first + i` is lead number
    `first + i`."""
    events: list[dict[str, Any]] = []
    for i in range(first, first + size):
        person = f"lead{i}@acme.com"
        context = {"userAgent": demo.BROWSER_AGENT, "traits": {"email": person}}
        event: dict[str, Any] = {"messageId": str(uuid.uuid4()), "context": context}
        if i % 10:
            event |= {"type": "page", "properties": {"path": "/blog"}}
        else:
            traits = {"email": person, "title": "VP Sales", "company_size": 800}
            form = {"form_id": "demo-request", **traits}
            event |= {"type": "track", "event": "Form Submitted", "properties": form}
        events.append(event)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=2000, help="events per second")
    parser.add_argument("--seconds", type=int, default=20, help="measured seconds")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--snapshot-s", type=int, default=10, help="recovery snapshot interval")
    parser.add_argument("--warmup-s", type=float, default=3, help="unmeasured seconds first")
    args = parser.parse_args()
    with (
        EmbeddedBroker() as broker,
        EmbeddedRedis() as redis_server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = unlimited(broker.bootstrap_servers, redis_url=redis_server.url)
        ensure_topics(settings)
        recovery = Path(tmp) / "recovery"
        recovery.mkdir()
        init_db_dir(recovery, 1)
        env = {**os.environ, **settings.as_environment()}
        snapshots = ["-r", str(recovery), "-s", str(args.snapshot_s), "-b", "30"]
        processes = [
            subprocess.Popen([sys.executable, "-m", "tracking"], env=env),
            subprocess.Popen([sys.executable, "-m", "dataflows", *snapshots], env=env),
            subprocess.Popen([sys.executable, "-m", "alerts"], env=env, stderr=subprocess.DEVNULL),
        ]
        try:
            wait_for_port(settings.collector_port, processes[0], 20)
            wait_for_port(settings.rep_api_port, processes[2], 20)
            load = Load(args.rate, args.batch)
            drive(settings, load, args.warmup_s, measured=False)
            sent_at = drive(settings, load, args.seconds, measured=True)
            time.sleep(5)
            if any(process.poll() is not None for process in processes):
                raise SystemExit("a process of the system stopped during the run")
            delivered = delivered_at(settings, sent_at)
            produced = produced_at(settings, sent_at)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(10)
    print(f"\n{len(delivered):,} alerts at {args.rate:,} events/s in {args.batch}-event requests,")
    print(f"recovery on (snapshot every {args.snapshot_s} s), after {args.warmup_s:g} s of warm-up")
    report("2xx -> alert in the rep's stream", delivered, sent_at)
    report("2xx -> alert produced by the dataflow", produced, sent_at)


@dataclass(slots=True)
class Load:
    """A steady stream of batches; `sent` counts the signals sent so far."""

    rate: int
    batch: int
    sent: int = 0


def drive(settings: Settings, load: Load, seconds: float, *, measured: bool) -> dict[str, float]:
    """Send batches at the load's rate for `seconds`; returns each measured signal's 2xx
    time (epoch ms)."""
    url = f"http://127.0.0.1:{settings.collector_port}/v1/batch"
    interval = load.batch / load.rate
    sent_at: dict[str, float] = {}
    batches = int(seconds * load.rate / load.batch)
    with httpx.Client(timeout=10) as client:
        start = time.monotonic()
        for n in range(batches):
            time.sleep(max(0.0, start + n * interval - time.monotonic()))
            batch = batch_of_signals(load.sent, load.batch)
            load.sent += load.batch
            response = client.post(url, content=codec.dumps({"batch": batch}), auth=SERVER_KEY)
            acknowledged = time.time() * 1000
            response.raise_for_status()
            if measured:
                sent_at.update((event["messageId"], acknowledged) for event in batch)
        behind = time.monotonic() - start - seconds
    what = "measured" if measured else "warm-up"
    print(f"{what}: sent {load.batch * batches:,} events ({behind:+.1f} s against the schedule)")
    return sent_at


def delivered_at(settings: Settings, sent_at: dict[str, float]) -> dict[str, float]:
    """When each measured signal's alert reached its rep's stream (epoch ms)."""
    client = redis.Redis.from_url(settings.redis)
    keys = RedisKeys(settings.redis_prefix)
    delivered = {}
    for rep in load_routing(settings.routing_path).reps:
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(keys.rep_alerts(rep)))
        for entry_id, fields in entries:
            signal = codec.loads(fields[b"alert"]).get("signal")
            if signal in sent_at:
                delivered[signal] = float(entry_id.split(b"-")[0])
    return delivered


def produced_at(settings: Settings, sent_at: dict[str, float]) -> dict[str, float]:
    """When the dataflow produced each measured signal's alert: its broker timestamp."""
    consumer = Consumer({"bootstrap.servers": settings.brokers, "group.id": "bench.latency"})
    topic = settings.alerts_topic
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    produced: dict[str, float] = {}
    try:
        while messages := consumer.consume(1000, 2.0):
            for message in messages:
                value = message.value()
                if message.error() is None and value is not None:
                    signal = codec.loads(value).get("signal")
                    if signal in sent_at:
                        produced[signal] = float(message.timestamp()[1])
    finally:
        consumer.close()
    return produced


def report(what: str, arrived: dict[str, float], sent_at: dict[str, float]) -> None:
    """Percentiles of arrival - 2xx."""
    latencies = sorted(at - sent_at[signal] for signal, at in arrived.items())
    if not latencies:
        raise SystemExit(f"no alert for {what}")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    print(f"\n{what}")
    print(f"{'p50':>6} {pct(0.50):>8.1f} ms\n{'p90':>6} {pct(0.90):>8.1f} ms")
    print(f"{'p99':>6} {pct(0.99):>8.1f} ms\n{'max':>6} {latencies[-1]:>8.1f} ms")


if __name__ == "__main__":
    main()
