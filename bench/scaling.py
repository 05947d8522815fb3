"""Scaling the dataflow: the throughput benchmark's events through 1 worker, 2 workers in
one process, and 2 processes (Bytewax cluster mode, `-i/-a`), each run to the end of the
topic (4 partitions) by `bytewax.run` in its own processes.

    python -m bench.scaling [--visitors 20000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bytewax.dataflow import Dataflow

from bench.dataflow import dbl_flow, make_events, produce_all
from config.settings import Settings
from dataflows.__main__ import cluster_workers
from dbl.embedded import EmbeddedBroker
from dbl.topics import ensure_topics
from runtime.heap import collect_rarely
from runtime.ports import free_port


def flow(workers: int) -> Dataflow:
    """The benchmark's DBL flow for a cluster of `workers`, for `bytewax.run` (settings from
    the environment), in a process that collects garbage as `python -m dataflows` does."""
    collect_rarely()
    return dbl_flow(Settings.from_environment(), workers)


def run(settings: Settings, layouts: list[list[str]]) -> float:
    """Start one `bytewax.run` per argument list; seconds until all have finished."""
    env = {**os.environ, **settings.as_environment()}
    workers = cluster_workers(layouts[0])  # every process of a layout is in one cluster
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", f"bench.scaling:flow({workers})", *args],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        for args in layouts
    ]
    for process in processes:
        if process.wait(900) != 0:
            raise SystemExit(f"a dataflow process failed ({process.args!r})")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=20_000)
    args = parser.parse_args()
    events = make_events(args.visitors, 7)
    with EmbeddedBroker() as broker:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, events_partitions=4)
        ensure_topics(settings)
        produce_all(settings, events)
        addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
        layouts = {
            "1 worker": [["-w", "1"]],
            "2 workers, 1 process": [["-w", "2"]],
            "2 processes, 1 worker each": [
                ["-i", "0", "-a", addresses],
                ["-i", "1", "-a", addresses],
            ],
        }
        results = {name: run(settings, layout) for name, layout in layouts.items()}
    single = len(events) / results["1 worker"]
    print(f"\n{len(events):,} events\n{'layout':<30} {'events/s':>10} {'speed-up':>9}")
    for name, seconds in results.items():
        rate = len(events) / seconds
        print(f"{name:<30} {rate:>10,.0f} {rate / single:>8.2f}x")


if __name__ == "__main__":
    main()
