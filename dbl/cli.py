"""The `dbl` command: `dbl run` starts the whole system; `dbl demo` plays demo traffic."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from confluent_kafka import Producer
from tqdm import tqdm

from backtests.backtest import Backtest, run_backtest
from config.errors import ConfigError
from config.routing import load_routing
from config.secrets import refuse_demo_secrets
from config.settings import Settings
from config.sites import Site, load_sites, site_named
from contracts import codec, email_links, kafka
from contracts.envelope import Envelope, partition_key
from contracts.errors import DBLError
from dbl import demo, models
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from dbl.export import export_events
from dbl.supervisor import Supervisor
from dbl.topics import ensure_topics
from tracking.imports import (
    RowError,
    read_attendance,
    read_outcomes,
    zoned_time,
)

DONE: Final = {"publish": "published", "rollback": "rolled back to"}
# `--model published`: the models as the log says they were published, as live scored.
PUBLISHED: Final = "published"


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
    link = commands.add_parser("email-link", help="mint signed open-pixel and click URLs")
    link.add_argument("--site", required=True, help="site name in sites.toml (has a secret)")
    link.add_argument("--contact", required=True, help="the recipient's email address")
    link.add_argument("--campaign", required=True)
    link.add_argument("--url", help="where the click should land (http or https)")
    link.add_argument("--days", type=int, default=90, help="days the links stay valid")
    attendance = commands.add_parser("import-attendance", help="import event attendance CSV")
    attendance.add_argument("file", type=Path)
    attendance.add_argument("--site", required=True, help="a server site in sites.toml")
    outcomes = commands.add_parser(
        "import-outcomes", help="import outcomes CSV (email,outcome,time[,amount])"
    )
    outcomes.add_argument("file", type=Path)
    outcomes.add_argument("--site", required=True, help="a server site in sites.toml")
    export = commands.add_parser(
        "export-events", help="write the events received in a window to a .jsonl.gz file"
    )
    export.add_argument("file", type=Path)
    export.add_argument("--from", dest="start", required=True, help="ISO-8601 time, with zone")
    export.add_argument("--to", dest="end", required=True, help="ISO-8601 time, with zone")
    backtest = commands.add_parser(
        "backtest", help="replay recorded events with a model; write report.json and .html"
    )
    backtest.add_argument(
        "--model", required=True, help="the model to try (TOML), or 'published': as live"
    )
    backtest.add_argument("--against", help="the model to compare it with, or 'published'")
    backtest.add_argument("--events", type=Path, help="an export file (default: the topic)")
    backtest.add_argument("--from", dest="start", help="ISO-8601 time, with zone")
    backtest.add_argument("--to", dest="end", help="ISO-8601 time, with zone")
    backtest.add_argument("--outcome", default="won", help="won (default), created or lost")
    backtest.add_argument("--within-days", type=float, default=90.0)
    backtest.add_argument("--at-age-days", type=float, default=30.0, help="when leads are ranked")
    backtest.add_argument("--processes", type=int, default=1)
    backtest.add_argument("--workers", type=int, default=1, help="workers per process")
    backtest.add_argument("--out", type=Path, required=True, help="folder for the report")
    learn = commands.add_parser("train", help="learn a scoring model from events and outcomes")
    learn.add_argument("--out", type=Path, required=True, help="the model file to write (TOML)")
    learn.add_argument("--outcome", default="won", help="won (default) or created")
    learn.add_argument("--within-days", type=float, default=90.0)
    learn.add_argument("--events", type=Path, help="an export file (default: the topic)")
    learn.add_argument("--from", dest="start", help="ISO-8601 time, with zone")
    learn.add_argument("--to", dest="end", help="ISO-8601 time, with zone")
    learn.add_argument(
        "--ages-days",
        default="7,30,60",
        help="the ages (days after a lead's first signal) it is observed at, e.g. 30 or 7,30,60",
    )
    learn.add_argument("--processes", type=int, default=1)
    model = commands.add_parser("model", help="publish, roll back or list scoring models")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    publish = model_commands.add_parser("publish", help="hand a model to the running system")
    publish.add_argument("file", type=Path, help="the model (scoring.toml and its lists)")
    publish.add_argument("--evaluation", type=Path, help="its backtest's report.json")
    publish.add_argument("--by", help="who publishes it (default: your login)")
    back = model_commands.add_parser("rollback", help="return to the previous version")
    back.add_argument("--by", help="who rolls back (default: your login)")
    model_commands.add_parser("list", help="versions with who, when and their evaluation")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            settings = Settings.from_environment()
            if args.demo:
                settings = settings.with_overrides(demo=True)
            refuse_demo_secrets(settings)
            return run_system(settings, with_demo=args.demo)
        if args.command == "demo":
            with contextlib.suppress(KeyboardInterrupt):
                demo.run_forever(args.url, seed=time.time_ns(), pause_s=args.pause)
            return 0
        if args.command == "email-link":
            return email_link(Settings.from_environment(), args)
        if args.command == "import-attendance":
            return import_csv(Settings.from_environment(), args.file, args.site, read_attendance)
        if args.command == "export-events":
            return export_to_file(Settings.from_environment(), args.start, args.end, args.file)
        if args.command == "train":
            return train_command(Settings.from_environment(), args)
        if args.command == "model":
            return model_command(Settings.from_environment(), args)
        if args.command == "backtest":
            return backtest_command(Settings.from_environment(), args)
        if args.command == "import-outcomes":
            return import_csv(Settings.from_environment(), args.file, args.site, read_outcomes)
        ensure_topics(Settings.from_environment())
        return 0
    except (ConfigError, DBLError) as exc:
        print(f"dbl: {exc}", file=sys.stderr)
        return 2


def email_link(settings: Settings, args: argparse.Namespace) -> int:
    """Print the open pixel and (with --url) the click-through URL for one recipient."""
    site = _site(settings, args.site)
    expires = int(time.time()) + args.days * 86_400
    base = settings.public_url.rstrip("/")
    contact = args.contact.strip().lower()
    pixel = email_links.mint(site, contact, args.campaign, None, expires)
    print(f"open pixel: {base}/e/o/{pixel}.gif")
    if args.url:
        click = email_links.mint(site, contact, args.campaign, args.url, expires)
        print(f"click:      {base}/e/c/{click}")
    return 0


def import_csv(
    settings: Settings,
    path: Path,
    site_name: str,
    read: Callable[[Path, Site, int], tuple[list[Envelope], list[RowError]]],
) -> int:
    """Validate a whole CSV, then produce its events (all or nothing) with progress."""
    site = _site(settings, site_name)
    if site.trust != "server":
        raise DBLError(f"site {site_name!r} is not a server site: imports are trusted signals")
    envelopes, errors = read(path, site, int(time.time() * 1000))
    if errors:
        print(f"{path}: nothing imported, {len(errors)} bad rows:", file=sys.stderr)
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    producer = Producer(kafka.producer_config(settings.brokers))
    failures: list[str] = []

    def produce(envelope: Envelope) -> None:
        producer.produce(
            settings.events_topic,
            codec.dumps(envelope),
            partition_key(envelope).encode(),
            timestamp=envelope["received_at"],
            on_delivery=lambda err, _msg: failures.append(str(err)) if err else None,
        )
        producer.poll(0)

    sent = 0
    for envelope in tqdm(envelopes, desc=path.name, unit="event", file=sys.stderr):
        produce(envelope)
        sent += 1
    left = producer.flush(30)
    stored = sent - left - len(failures)
    if left or failures:
        print(f"{path}: only {stored} of {sent} events stored: {failures[:3]}", file=sys.stderr)
        return 1
    rows = len({envelope["id"].rsplit(":", 1)[0] for envelope in envelopes})
    print(f"{path}: imported {rows} rows ({sent} events)")
    return 0


def export_to_file(settings: Settings, start: str, end: str, path: Path) -> int:
    """Export the events received in [start, end) with progress."""

    with tqdm(desc="events read", unit="event", file=sys.stderr) as bar:
        count = export_events(
            settings,
            _epoch_ms("--from", start),
            _epoch_ms("--to", end),
            path,
            lambda read: bar.update(read - bar.n),
        )
    print(f"{path}: {count} events")
    return 0


def backtest_command(settings: Settings, args: argparse.Namespace) -> int:
    """Replay history with a model (and the one it would replace) and write the report."""
    test = Backtest(
        model=_model_choice(args.model),
        against=_model_choice(args.against),
        compare_with_published=args.against == PUBLISHED,
        export=args.events,
        start_ms=_epoch_ms("--from", args.start) if args.start else None,
        end_ms=_epoch_ms("--to", args.end) if args.end else None,
        outcome=args.outcome,
        within_days=args.within_days,
        at_age_days=args.at_age_days,
        processes=args.processes,
        workers_per_process=args.workers,
    )
    report = run_backtest(settings, test, args.out)
    for name, model in report["models"].items():
        sales = model["outcomes"]["sales_ready"]
        print(
            f"{name} {model['version']}: {model['alerts']['total']} alerts to "
            f"{len(model['alerts']['by_rep'])} reps, {model['leads']} leads; sales_ready "
            f"precision {sales['precision']} (base rate {model['outcomes']['base_rate']})"
        )
    events = report["input"]["events"]
    seconds = sum(report["seconds"].values())
    print(f"{events} events replayed {len(report['models'])}x in {seconds:.1f} s")
    print(f"report: {args.out / 'report.html'}")
    return 0


def _ages(text: str) -> tuple[float, ...]:
    """`--ages-days`: numbers separated by commas.

    >>> _ages("7, 30,60")
    (7.0, 30.0, 60.0)
    """
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise DBLError(f"--ages-days: numbers of days separated by commas, not {text!r}") from None


def train_command(settings: Settings, args: argparse.Namespace) -> int:
    """Learn a model from the recorded events and outcomes; print its card."""
    # Imported here: scikit-learn takes seconds to import, and every `dbl` command loads
    # this module.
    from training.train import Training, card_text, train

    training = Training(
        outcome=args.outcome,
        within_days=args.within_days,
        export=args.events,
        start_ms=_epoch_ms("--from", args.start) if args.start else None,
        end_ms=_epoch_ms("--to", args.end) if args.end else None,
        processes=args.processes,
        ages_days=_ages(args.ages_days),
    )
    card = train(settings, training, args.out)
    print(card_text(card))
    print(f"model {card['version']} written to {args.out} (card: model_card.md beside it)")
    return 0


def model_command(settings: Settings, args: argparse.Namespace) -> int:
    """`dbl model publish | rollback | list`."""
    if args.model_command == "list":
        print("\n".join(models.listing(settings)))
        return 0
    if args.model_command == "publish":
        done = models.publish(settings, args.file, evaluation=args.evaluation, by=args.by)
    else:
        done = models.rollback(settings, by=args.by)
    print(
        f"model {done.version} {DONE[args.model_command]}: marker written to {done.partitions} "
        f"partitions of {settings.events_topic}; every signal after it is scored with it "
        "(leads are re-graded on their next signal)"
    )
    return 0


def _model_choice(text: str | None) -> Path | None:
    """A model file, or None for the models as published in the log."""
    return None if text is None or text == PUBLISHED else Path(text)


def _epoch_ms(option: str, text: str) -> int:
    return int(zoned_time(option, text).timestamp() * 1000)


def _site(settings: Settings, name: str) -> Site:
    site = site_named(load_sites(settings.sites_path), name)
    if site is None:
        raise DBLError(f"no site {name!r} in sites.toml")
    return site


# The dataflow snapshots this often and keeps no older snapshots (the broker it replays
# from lives as long as this run).
SNAPSHOT_EVERY_S: Final = 2


def run_system(settings: Settings, *, with_demo: bool) -> int:
    """Start everything (embedded broker and Redis unless configured) until Ctrl-C; a
    service that dies is started again, the dataflow from its last snapshot."""
    with contextlib.ExitStack() as stack:
        vital: dict[str, Callable[[], bool]] = {}
        if not settings.kafka_bootstrap_servers:
            broker = stack.enter_context(EmbeddedBroker())
            settings = settings.with_overrides(kafka_bootstrap_servers=broker.bootstrap_servers)
            vital["embedded broker (the events)"] = lambda: broker.alive
        if not settings.redis_url:
            redis_server = stack.enter_context(EmbeddedRedis())
            settings = settings.with_overrides(redis_url=redis_server.url)
            vital["embedded Redis (the read model)"] = lambda: redis_server.alive
        ensure_topics(settings)
        recovery = _recovery_store(stack, "dbl-recovery-")
        supervisor = Supervisor({**os.environ, **settings.as_environment()}, vital)
        try:
            collector = supervisor.start("collector", "tracking")
            recovery_args = ("-s", str(SNAPSHOT_EVERY_S), "-b", "0", "-r", str(recovery))
            supervisor.start("dataflow", "dataflows", *recovery_args)
            if settings.shadow_model:
                # The challenger keeps its own place in the log: a recovery store of its own.
                shadow = _recovery_store(stack, "dbl-shadow-")
                shadow_args = ("-s", str(SNAPSHOT_EVERY_S), "-b", "0", "-r", str(shadow))
                supervisor.start("shadow dataflow", "dataflows", "--shadow", *shadow_args)
            supervisor.start("rep service", "alerts")
            wait_for_port(settings.collector_port, collector.process, timeout=20)
            _banner(settings, with_demo, recovery, vital)
            if with_demo:
                url = f"http://{settings.collector_host}:{settings.collector_port}"
                supervisor.start("demo traffic", "dbl.cli", "demo", url)
            return supervisor.wait()
        finally:
            supervisor.stop_all()
    return 0


def _recovery_store(stack: contextlib.ExitStack, prefix: str) -> Path:
    """A fresh one-partition Bytewax recovery store, removed when `stack` closes."""
    store = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(store), "1"], check=True)
    return store


def _banner(
    settings: Settings, with_demo: bool, recovery: Path, embedded: Mapping[str, object]
) -> None:
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
    routing = load_routing(settings.routing_path)
    for rep in routing.reps.values():
        # Tokens are secrets: only the demo's public ones are printed.
        token = f"?token={rep.token}" if settings.demo else "   (token: see routing)"
        lines.append(f"  live page      {reps}/reps/{rep.id}{token}   ({rep.name})")
    if settings.shadow_model:
        token = f"?token={routing.admin_token}" if settings.demo else "   (admin token)"
        lines.append(f"  shadow model   {settings.shadow_model}: {reps}/ops/shadow{token}")
    lines.append(
        f"  durability     a service that dies restarts; the dataflow resumes from its "
        f"snapshots (every {SNAPSHOT_EVERY_S} s) in {recovery}, kept until dbl run stops"
    )
    for what in embedded:
        lines.append(f"                 {what} lives in memory only: lost when dbl run stops")
    if with_demo:
        lines.append("  demo traffic   on: sales alerts appear below within seconds")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
