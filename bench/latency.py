"""End-to-end latency: from the collector's 2xx for a signal to the alert it raises being
in the rep's Redis stream, at a steady load, with the dataflow's recovery on.

    python -m bench.latency [--rate 2000] [--seconds 20]

Starts the embedded broker and Redis, the collector, the dataflow (recovery on, snapshot
every 10 s) and the dispatcher, all on this machine, and sends 100-event batches at the
rate. A Redis stream entry id is the millisecond it was added: latency = entry id - 2xx.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

import httpx
import redis
from bytewax.recovery import init_db_dir

from config.routing import load_routing
from config.settings import Settings
from dbl import codec
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, free_port, wait_for_port
from dbl.redis_keys import RedisKeys
from dbl.topics import ensure_topics
from tracking import demo

BATCH = 100
SERVER_KEY = ("wk_demo_server", "")


def batch_of_signals(n: int) -> list[dict[str, Any]]:
    """Mostly page views of known contacts; every tenth a demo request (a key action, and a
    sales-ready crossing for these well-fitting leads)."""
    events: list[dict[str, Any]] = []
    for i in range(BATCH):
        person = f"lead{n * BATCH + i}@acme.com"
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
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with (
        EmbeddedBroker() as broker,
        EmbeddedRedis() as redis_server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            redis_url=redis_server.url,
            collector_port=free_port(),
            rep_api_port=free_port(),
            dataflow_metrics_port=free_port(),
            rate_limit_per_s=1e9,
            rate_limit_burst=1e9,
        )
        ensure_topics(settings)
        recovery = Path(tmp) / "recovery"
        recovery.mkdir()
        init_db_dir(recovery, 1)
        env = {**os.environ, **settings.as_environment()}
        processes = [
            subprocess.Popen([sys.executable, "-m", "tracking"], env=env),
            subprocess.Popen(
                [sys.executable, "-m", "dataflows", "-r", str(recovery), "-s", "10", "-b", "30"],
                env=env,
            ),
            subprocess.Popen([sys.executable, "-m", "alerts"], env=env, stderr=subprocess.DEVNULL),
        ]
        try:
            wait_for_port(settings.collector_port, processes[0], 20)
            wait_for_port(settings.rep_api_port, processes[2], 20)
            sent_at = drive(settings, args.rate, args.seconds)
            time.sleep(5)
            latencies = measure(settings, sent_at)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(10)
    report(latencies, args.rate)


def drive(settings: Settings, rate: int, seconds: int) -> dict[str, float]:
    """Send batches at a steady rate; returns each signal's 2xx time (epoch ms)."""
    url = f"http://127.0.0.1:{settings.collector_port}/v1/batch"
    interval = BATCH / rate
    sent_at: dict[str, float] = {}
    with httpx.Client(timeout=10) as client:
        start = time.monotonic()
        for n in range(int(seconds * rate / BATCH)):
            time.sleep(max(0.0, start + n * interval - time.monotonic()))
            batch = batch_of_signals(n)
            response = client.post(url, content=codec.dumps({"batch": batch}), auth=SERVER_KEY)
            acknowledged = time.time() * 1000
            response.raise_for_status()
            for event in batch:
                sent_at[event["messageId"]] = acknowledged
        behind = time.monotonic() - start - seconds
    print(f"sent {len(sent_at):,} events ({behind:+.1f} s against the schedule)")
    return sent_at


def measure(settings: Settings, sent_at: dict[str, float]) -> list[float]:
    client = redis.Redis.from_url(settings.redis)
    keys = RedisKeys(settings.redis_prefix)
    latencies = []
    for rep in load_routing(settings.config_dir / "routing.toml").reps:
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(keys.rep_alerts(rep)))
        for entry_id, fields in entries:
            alert = codec.loads(fields[b"alert"])
            if alert.get("signal") in sent_at:
                added_ms = int(entry_id.split(b"-")[0])
                latencies.append(added_ms - sent_at[alert["signal"]])
    return sorted(latencies)


def report(latencies: list[float], rate: int) -> None:
    if not latencies:
        raise SystemExit("no alert reached a rep's stream")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    print(f"\n{len(latencies):,} alerts at {rate:,} events/s, recovery on")
    print(f"{'p50':>6} {pct(0.50):>8.1f} ms\n{'p90':>6} {pct(0.90):>8.1f} ms")
    print(f"{'p99':>6} {pct(0.99):>8.1f} ms\n{'max':>6} {latencies[-1]:>8.1f} ms")


if __name__ == "__main__":
    main()
