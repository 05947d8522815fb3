"""The `dbl` command: `dbl run` starts the whole system; `dbl demo` plays demo traffic."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from config.errors import ConfigError
from config.routing import load_routing
from config.settings import Settings
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from dbl.errors import DBLError
from dbl.supervisor import Supervisor
from dbl.topics import ensure_topics
from tracking import demo


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dbl` command."""
    parser = argparse.ArgumentParser(prog="dbl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start broker, Redis, collector, dataflow, rep API")
    run.add_argument("--demo", action="store_true", help="also play demo visitors")
    play = commands.add_parser("demo", help="play demo visitors against a collector")
    play.add_argument("url", nargs="?", default="http://127.0.0.1:8080")
    play.add_argument("--pause", type=float, default=0.05, help="seconds between calls")
    commands.add_parser("create-topics", help="create the topics on KAFKA_BOOTSTRAP_SERVERS")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run_system(Settings.from_environment(), with_demo=args.demo)
        if args.command == "demo":
            with contextlib.suppress(KeyboardInterrupt):
                demo.run_forever(args.url, seed=time.time_ns(), pause_s=args.pause)
            return 0
        ensure_topics(Settings.from_environment())
        return 0
    except (ConfigError, DBLError) as exc:
        print(f"dbl: {exc}", file=sys.stderr)
        return 2


def run_system(settings: Settings, *, with_demo: bool) -> int:
    """Start everything (embedded broker and Redis unless configured) until Ctrl-C."""
    with contextlib.ExitStack() as stack:
        if not settings.kafka_bootstrap_servers:
            broker = stack.enter_context(EmbeddedBroker())
            settings = settings.with_overrides(kafka_bootstrap_servers=broker.bootstrap_servers)
        if not settings.redis_url:
            redis_server = stack.enter_context(EmbeddedRedis())
            settings = settings.with_overrides(redis_url=redis_server.url)
        ensure_topics(settings)
        supervisor = Supervisor({**os.environ, **settings.as_environment()})
        try:
            collector = supervisor.start("collector", "tracking")
            supervisor.start("dataflow", "dataflows")
            supervisor.start("rep service", "alerts")
            wait_for_port(settings.collector_port, collector.process, timeout=20)
            _banner(settings, with_demo)
            if with_demo:
                url = f"http://{settings.collector_host}:{settings.collector_port}"
                supervisor.start("demo traffic", "dbl.cli", "demo", url)
            return supervisor.wait()
        finally:
            supervisor.stop_all()
    return 0


def _banner(settings: Settings, with_demo: bool) -> None:
    collector = f"http://{settings.collector_host}:{settings.collector_port}"
    reps = f"http://{settings.rep_api_host}:{settings.rep_api_port}"
    lines = [
        "DBL is running. Ctrl-C stops everything.",
        f"  collector      {collector}/v1/batch   metrics {collector}/metrics",
        f"  rep API        {reps}/v1/alerts?rep=<rep>   {reps}/v1/profiles/<person>",
        f"  dataflow       metrics http://127.0.0.1:{settings.dataflow_metrics_port}/metrics",
        f"  Kafka          {settings.kafka_bootstrap_servers}  topics {settings.events_topic}, "
        f"{settings.alerts_topic}, {settings.dlq_topic}",
        f"  Redis          {settings.redis_url}",
    ]
    routing = load_routing(settings.config_dir / "routing.toml")
    for rep in routing.reps.values():
        lines.append(f"  live page      {reps}/reps/{rep.id}?token={rep.token}   ({rep.name})")
    if with_demo:
        lines.append("  demo traffic   on: sales alerts appear below within seconds")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
