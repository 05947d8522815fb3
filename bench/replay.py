"""Backtest replay speed against the live dataflow, measured in the same run on the same
events:

- live: the deployed dataflow on one worker, from the events topic (4 partitions) to
  Redis profiles and the alerts topic, snapshotting every 2 s as deployed;
- replay: `dbl backtest`'s isolated replay of the same topic with the same model, on 1
  process and on 2 (one worker each), into its own folder.

    python -m bench.replay [--visitors 30000] [--seed 7]

Starts its own embedded broker and Redis. Prints events/s, the ratio to live and seconds
per million events; reading the topic into part files is timed apart.
"""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path

from bytewax.connectors.kafka import KafkaSource

from backtests.history import from_broker
from backtests.replay import replay
from bench.dataflow import make_events, produce_all, run_with_recovery, timed
from config.settings import Settings
from dataflows.flow import build_flow
from dbl.embedded import EmbeddedBroker, EmbeddedRedis
from dbl.topics import ensure_topics
from runtime.heap import collect_rarely

# As deployed (docker-compose.yml, `dbl run`).
LIVE_SNAPSHOT_S = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    collect_rarely()  # as `python -m dataflows` does

    events = make_events(args.visitors, args.seed)
    count = len(events)
    print(f"{count:,} events from {args.visitors:,} visitors", flush=True)
    with EmbeddedBroker() as broker, EmbeddedRedis() as redis_server:
        settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap_servers, redis_url=redis_server.url
        )
        ensure_topics(settings)
        produce_all(settings, events)

        source = KafkaSource([settings.brokers], [settings.events_topic], tail=False)
        live = build_flow(settings, events=source)
        results = {
            "live dataflow (Redis, alerts topic, snapshots)": timed(
                lambda: run_with_recovery(live, LIVE_SNAPSHOT_S)
            )[0]
        }
        with tempfile.TemporaryDirectory() as work:
            root = Path(work)
            (root / "parts").mkdir()
            reading, history = timed(
                lambda: from_broker(settings, root / "parts", (None, None), lambda n: None)
            )
            assert history.events == count, (history.events, count)
            for processes in (1, 2):
                directory = root / f"replay-{processes}"
                directory.mkdir()
                run = partial(
                    replay,
                    history.parts,
                    settings.scoring_path,
                    directory,
                    settings=settings,
                    routing=settings.routing_path,
                    ages_ms=(30 * 86_400_000,),
                    processes=processes,
                )
                seconds, _ = timed(run)
                results[f"backtest replay, {processes} process(es)"] = seconds

    live_rate = count / results["live dataflow (Redis, alerts topic, snapshots)"]
    print(f"\nreading the topic into part files: {reading:.1f} s ({count / reading:,.0f} events/s)")
    print(f"{'run':<48} {'events/s':>10} {'x live':>7} {'s per 1M':>9}")
    for name, seconds in results.items():
        rate = count / seconds
        print(f"{name:<48} {rate:>10,.0f} {rate / live_rate:>7.2f} {1e6 / rate:>9.0f}")


if __name__ == "__main__":
    main()
