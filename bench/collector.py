"""Collector throughput with broker acknowledgement (acks=all), against a no-op ASGI app on
the same uvicorn setup, measured in the same run with wrk on loopback.

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
from pathlib import Path

from config.settings import Settings
from dbl import codec
from dbl.embedded import EmbeddedBroker, free_port, wait_for_port
from dbl.topics import ensure_topics
from tracking import demo

AUTH = "Basic " + base64.b64encode(b"wk_demo_server:").decode()


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
        "import sys; from dbl.asgi import serve; "
        f"serve({factory!r}, '127.0.0.1', {settings.collector_port})"
    )
    env = {**os.environ, **settings.as_environment()}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=out)
    wait_for_port(settings.collector_port, process, timeout=20)
    return process


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
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            collector_port=free_port(),
            rate_limit_per_s=1e9,
            rate_limit_burst=1e9,
        )
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
    noop_single = results["no-op ASGI app: single events, requests/s"]
    noop_batch = results["no-op ASGI app: 100-event batches, events/s"]
    print(f"\n{'run':<46} {'per second':>12} {'of no-op':>9}")
    for name, rate in results.items():
        base = noop_batch if "batches" in name else noop_single
        print(f"{name:<46} {rate:>12,.0f} {rate / base:>8.0%}")


if __name__ == "__main__":
    main()
