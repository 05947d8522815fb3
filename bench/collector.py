"""Collector throughput with broker acknowledgement (acks=all), against a no-op ASGI app on
the same uvicorn setup, measured in the same run with wrk on loopback; and, as the ceiling
for batches, the broker alone: the same envelopes produced by one process with the
collector's producer settings, as fast as it can, every one acknowledged.

    python -m bench.collector [--seconds 10] [--connections 64]

Needs `wrk` (Debian package; `make bench` installs it). Starts its own embedded broker.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from confluent_kafka import Producer

from bench.system import unlimited
from config.settings import Settings
from config.sites import load_sites
from contracts import codec
from contracts.envelope import partition_key
from dbl import demo
from dbl.embedded import EmbeddedBroker, wait_for_port
from dbl.topics import ensure_topics
from tracking.producer import producer_config
from tracking.segment import from_segment

AUTH_KEY = "wk_demo_server"
AUTH = "Basic " + base64.b64encode(f"{AUTH_KEY}:".encode()).decode()


def wrk(url: str, body: bytes, seconds: int, connections: int) -> float:
    """Requests per second that got a 2xx (wrk counts non-2xx separately; we fail on them)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        payload = Path(tmp) / "body.json"
        payload.write_bytes(body)
        script.write_text(
            'wrk.method = "POST"\n'
            f'wrk.headers["Authorization"] = "{AUTH}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'local f = io.open("{payload}", "rb"); wrk.body = f:read("*a"); f:close()\n'
        )
        done = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
            capture_output=True,
            text=True,
            check=True,
        )
    if "Non-2xx" in done.stdout:
        raise SystemExit(f"the server answered errors:\n{done.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert match, done.stdout
    return float(match.group(1))


def serve(factory: str, settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from runtime.asgi import serve; "
        f"serve({factory!r}, '127.0.0.1', {settings.collector_port})"
    )
    env = {**os.environ, **settings.as_environment()}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=out)
    wait_for_port(settings.collector_port, process, timeout=20)
    return process


def broker_alone(settings: Settings, event: Mapping[str, object], seconds: int) -> float:
    """Envelopes per second one process hands to the broker with the collector's producer
    settings, each acknowledged (1,000 senders' keys, spread over the partitions)."""
    site = load_sites(settings.sites_path)[AUTH_KEY]
    envelope = from_segment(event, site=site, received_at=int(time.time() * 1000))
    value, key = codec.dumps(envelope), partition_key(envelope)
    producer = Producer(producer_config(settings.brokers, settings.produce_timeout_s))
    acknowledged = 0

    def on_delivery(error: object, _message: object) -> None:
        nonlocal acknowledged
        acknowledged += error is None

    started = time.perf_counter()
    sent = 0
    while time.perf_counter() - started < seconds:
        try:
            producer.produce(
                settings.events_topic, value, f"{key}{sent % 1000}", on_delivery=on_delivery
            )
            sent += 1
        except BufferError:
            producer.poll(0.005)  # the local queue is full: let acknowledgements drain
        if sent % 1000 == 0:
            producer.poll(0)
    producer.flush(30)
    return acknowledged / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    event = {
        "type": "track",
        "userId": "u-1",
        "event": "Webinar Attended",
        "properties": {"webinar": "Scoring"},
        "context": {"userAgent": demo.BROWSER_AGENT},
    }
    single = codec.dumps(event)
    batch = codec.dumps({"batch": [event] * 100})
    results: dict[str, float] = {}
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        settings = unlimited(broker.bootstrap_servers)
        ensure_topics(settings)
        for name, factory in (
            ("no-op ASGI app", "bench.noop_app:create_app"),
            ("collector", "tracking.app:create_app"),
        ):
            process = serve(factory, settings, Path(tmp) / f"{name}.log")
            try:
                url = f"http://127.0.0.1:{settings.collector_port}"
                results[f"{name}: single events, requests/s"] = wrk(
                    f"{url}/v1/track", single, args.seconds, args.connections
                )
                results[f"{name}: 100-event batches, events/s"] = 100 * wrk(
                    f"{url}/v1/batch", batch, args.seconds, args.connections
                )
            finally:
                process.terminate()
                process.wait(10)
        results["broker alone: envelopes, events/s"] = broker_alone(settings, event, args.seconds)
    noop_single = results["no-op ASGI app: single events, requests/s"]
    noop_batch = results["no-op ASGI app: 100-event batches, events/s"]
    print(f"\n{'run':<46} {'per second':>12} {'of no-op':>9}")
    for name, rate in results.items():
        base = noop_single if "single" in name else noop_batch
        print(f"{name:<46} {rate:>12,.0f} {rate / base:>8.0%}")


if __name__ == "__main__":
    main()
