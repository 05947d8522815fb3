"""Live pages at scale: how long a new alert takes to reach every open live page, and how
the JSON API answers meanwhile.

    python -m bench.live_pages [--pages 1000] [--alerts 5]

Starts the embedded broker and Redis and the rep service (dispatcher included), opens
`--pages` live-page streams spread over the demo's reps, then publishes `--alerts` alerts per
rep on the alerts topic, one round at a time, and times each one's arrival on every page of
its rep, while another client asks `/v1/alerts` over and over. The baseline, measured in
the same run first: the same alerts with one page per rep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from config.routing import load_routing
from config.settings import Settings
from contracts import codec
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from dbl.topics import ensure_topics
from runtime.ports import free_port

CONNECT_TIMEOUT_S = 60.0
ARRIVAL_TIMEOUT_S = 10.0


@dataclass
class Round:
    """What one run measured: arrival delays per alert and page, JSON API answers."""

    pages: int
    delays_s: list[float] = field(default_factory=list)
    missed: int = 0
    api_s: list[float] = field(default_factory=list)
    api_errors: int = 0


def alert_for(rep: str, tag: str) -> dict[str, Any]:
    """A `key_action` alert owned by `rep`, as the dataflow puts it on the alerts topic."""
    contact = f"{tag}@bench.example"
    profile = {"person": contact, "name": "Bench Lead", "owner": rep, "activity": []}
    return {
        "id": tag,
        "kind": "key_action",
        "ts": int(time.time() * 1000),
        "contact": contact,
        "account": "bench.example",
        "owner": rep,
        "grade": "A2",
        "fit": 80.0,
        "engagement": 40.0,
        "reason": "requested a demo",
        "late": False,
        "signal": None,
        "identity": {"recognized_by": "server", "verified": True},
        "profile": profile,
    }


async def _page(
    client: httpx.AsyncClient,
    rep: str,
    token: str,
    ready: asyncio.Event,
    seen: dict[str, float],
) -> None:
    """One live page: its stream, noting when each alert id arrives."""
    headers = {"authorization": f"Bearer {token}", "last-event-id": "0-0"}
    async with client.stream("GET", f"/v1/reps/{rep}/events", headers=headers) as response:
        response.raise_for_status()
        ready.set()
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seen.setdefault(codec.loads(line[6:])["id"], time.monotonic())


async def _ask_api(client: httpx.AsyncClient, token: str, rep: str, result: Round) -> None:
    """The JSON API, asked again and again while the pages are open."""
    while True:
        started = time.monotonic()
        try:
            answer = await client.get(
                "/v1/alerts", params={"rep": rep, "limit": "5"}, headers={"authorization": token}
            )
            ok = answer.status_code == 200
        except httpx.HTTPError:
            ok = False
        result.api_s.append(time.monotonic() - started)
        result.api_errors += not ok
        await asyncio.sleep(0.05)


async def measure(
    settings: Settings, pages: int, alerts: int, timeout_s: float = ARRIVAL_TIMEOUT_S
) -> Round:
    """Open `pages` live pages over the reps, publish `alerts` alerts per rep, time them."""
    reps = load_routing(settings.routing_path).reps
    rep_ids = sorted(reps)
    result = Round(pages)
    base = f"http://127.0.0.1:{settings.rep_api_port}"
    limits = httpx.Limits(max_connections=pages + 10, max_keepalive_connections=pages + 10)
    timeout = httpx.Timeout(30.0, read=None)
    producer = Producer({"bootstrap.servers": settings.brokers})
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        seen: list[dict[str, float]] = [{} for _ in range(pages)]
        ready = [asyncio.Event() for _ in range(pages)]
        owners = [rep_ids[n % len(rep_ids)] for n in range(pages)]
        tasks = [
            asyncio.create_task(_page(client, owners[n], reps[owners[n]].token, ready[n], seen[n]))
            for n in range(pages)
        ]
        admin = f"Bearer {load_routing(settings.routing_path).admin_token}"
        asker = asyncio.create_task(_ask_api(client, admin, rep_ids[0], result))
        try:
            connected = asyncio.gather(*(e.wait() for e in ready))
            try:
                await asyncio.wait_for(connected, CONNECT_TIMEOUT_S)
            except TimeoutError:
                failed = [t.exception() for t in tasks if t.done()]
                print(f"only {sum(e.is_set() for e in ready)} pages opened: {failed[:3]}")
                raise
            for _ in range(alerts):
                tags = {rep: uuid.uuid4().hex for rep in rep_ids}
                for rep, tag in tags.items():
                    producer.produce(settings.alerts_topic, codec.dumps(alert_for(rep, tag)))
                producer.flush(10)
                sent = time.monotonic()
                deadline = sent + timeout_s
                while time.monotonic() < deadline and not all(
                    tags[owners[n]] in seen[n] for n in range(pages)
                ):
                    await asyncio.sleep(0.02)
                for n in range(pages):
                    arrived = seen[n].get(tags[owners[n]])
                    if arrived is None:
                        result.missed += 1
                    else:
                        result.delays_s.append(arrived - sent)
        finally:
            for task in [*tasks, asker]:
                task.cancel()
            await asyncio.gather(*tasks, asker, return_exceptions=True)
    return result


def _quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def report(name: str, result: Round) -> str:
    """One line of figures for a run."""
    delays = result.delays_s
    return (
        f"{name:<10} pages {result.pages:>5}  alert on page p50 {_quantile(delays, 0.5):.3f} s"
        f"  p99 {_quantile(delays, 0.99):.3f} s  max {max(delays, default=float('nan')):.3f} s"
        f"  missed {result.missed}  JSON API p50 {_quantile(result.api_s, 0.5) * 1000:.0f} ms"
        f"  p99 {_quantile(result.api_s, 0.99) * 1000:.0f} ms  errors {result.api_errors}"
    )


def main() -> int:
    """Run the baseline and the loaded run; print figures and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--alerts", type=int, default=5)
    args = parser.parse_args()
    with EmbeddedBroker() as broker, EmbeddedRedis() as redis_server:
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers,
            redis_url=redis_server.url,
            rep_api_port=free_port(),
            demo=True,
        )
        ensure_topics(settings)
        log = Path(tempfile.mkdtemp(prefix="dbl-bench-")) / "alerts.log"
        env = {**os.environ, **settings.as_environment()}
        with log.open("wb") as out:
            service = subprocess.Popen(
                [sys.executable, "-m", "alerts"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(settings.rep_api_port, service, timeout=20)
            reps = len(load_routing(settings.routing_path).reps)
            baseline = asyncio.run(measure(settings, reps, args.alerts))
            loaded = asyncio.run(measure(settings, args.pages, args.alerts))
        finally:
            service.terminate()
            service.wait(10)
    print(report("baseline", baseline))
    print(report("loaded", loaded))
    ratio = statistics.median(loaded.delays_s) / statistics.median(baseline.delays_s)
    print(f"ratio      median alert-on-page time, {args.pages} pages / 1 page per rep: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
