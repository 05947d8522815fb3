"""How long a model publication takes to reach every worker of a running dataflow cluster
(2 processes, 4 partitions), against how long one signal produced at the same moment takes
to be scored into the read model (the baseline, measured in the same run).

    python -m bench.publish [--rounds 5]

Starts its own embedded broker, Redis and the cluster. A publication has reached a worker
when the partitions it reads have counted its marker (`dbl_model_changes_total`).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis
from confluent_kafka import Producer

from config.scoring import load_scoring_model
from config.settings import Settings
from contracts import codec
from contracts.envelope import partition_key
from contracts.read_model import RedisKeys
from dbl.embedded import EmbeddedBroker, EmbeddedRedis
from dbl.models import publish
from dbl.topics import ensure_topics
from runtime.ports import free_port


def _variant(folder: Path, settings: Settings, points: int) -> Path:
    """The deployment's model with the page-view rule worth `points`."""
    for name in ("free_mail.txt", "competitors.txt"):
        (folder / name).write_bytes((settings.config_dir / name).read_bytes())
    text = settings.scoring_path.read_text().replace(
        'id = "page_view"\nlabel = "Viewed a page"\ntypes = ["page"]\npoints = 1',
        f'id = "page_view"\nlabel = "Viewed a page"\ntypes = ["page"]\npoints = {points}',
    )
    (folder / "scoring.toml").write_text(text)
    return folder / "scoring.toml"


def _markers(ports: list[int], version: str) -> float:
    total = 0.0
    for port in ports:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            continue
        found = re.search(rf'dbl_model_changes_total{{version="{version}"}} (\S+)', text)
        total += float(found.group(1)) if found else 0.0
    return total


def _signal(settings: Settings, producer: Producer) -> str:
    """Produce one page view of a new contact; returns the contact."""
    person = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    now = int(time.time() * 1000)
    envelope = {
        "id": uuid.uuid4().hex,
        "type": "page",
        "channel": "web",
        "ts": now,
        "received_at": now,
        "anon_id": None,
        "user_id": None,
        "email": person,
        "source": "bench",
        "trust": "server",
        "context": {"page": {"path": "/pricing"}},
    }
    key = partition_key(envelope).encode()  # type: ignore[arg-type]
    producer.produce(settings.events_topic, codec.dumps(envelope), key, timestamp=now)
    producer.flush(10)
    return person


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with (
        EmbeddedBroker() as broker,
        EmbeddedRedis() as redis_server,
        tempfile.TemporaryDirectory() as work,
    ):
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers, redis_url=redis_server.url
        )
        ensure_topics(settings)
        folder = Path(work)
        recovery = folder / "recovery"
        recovery.mkdir()
        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "2"], check=True)
        addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
        ports = [free_port(), free_port()]
        processes = []
        for n, port in enumerate(ports):
            env = {
                **os.environ,
                **settings.as_environment(),
                "DBL_DATAFLOW_METRICS_PORT": str(port),
            }
            cluster = ["-i", str(n), "-a", addresses, "-r", str(recovery), "-s", "2", "-b", "0"]
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dataflows", *cluster],
                    env=env,
                    stderr=subprocess.DEVNULL,
                )
            )
        client = redis.Redis.from_url(settings.redis)
        keys = RedisKeys(settings.redis_prefix)
        producer = Producer({"bootstrap.servers": settings.brokers})
        try:
            # Warm up: the cluster scores a signal before anything is timed.
            person = _signal(settings, producer)
            while not client.exists(keys.profile(person)):
                time.sleep(0.05)
            reach, scored = [], []
            for n in range(args.rounds):
                model = _variant(Path(tempfile.mkdtemp(dir=work)), settings, 2 + n)
                version = load_scoring_model(model).version
                started = time.perf_counter()
                done = publish(settings, model, by="bench")
                published = time.perf_counter()
                person = _signal(settings, producer)
                signalled = time.perf_counter()
                found_marker = found_profile = None
                while found_marker is None or found_profile is None:
                    if found_profile is None and client.exists(keys.profile(person)):
                        found_profile = time.perf_counter() - signalled
                    if found_marker is None and _markers(ports, version) >= done.partitions:
                        found_marker = time.perf_counter() - started
                    time.sleep(0.005)
                reach.append(found_marker)
                scored.append(found_profile)
                print(
                    f"round {n + 1}: publish call {published - started:.3f} s, every partition "
                    f"switched after {found_marker:.3f} s; a signal scored after "
                    f"{found_profile:.3f} s",
                    flush=True,
                )
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
        print(
            f"\nmedian: a publication reaches every worker in {statistics.median(reach):.3f} s; "
            f"a signal produced at the same moment is scored in {statistics.median(scored):.3f} "
            f"s (ratio {statistics.median(reach) / statistics.median(scored):.2f})"
        )


if __name__ == "__main__":
    main()
