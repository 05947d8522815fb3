"""Dataflow throughput, one worker, from the broker through decode, identity, scoring and
alert detection, against baselines measured in the same run:

- the ceiling: a single-threaded pure-Python loop doing the same logic on the same events;
- a straightforward Bytewax flow: KafkaSource -> map -> stateful_map per stage;
- Bytewax alone: KafkaSource -> one trivial stateful step (a count per sender), no logic:
  what the engine itself does with these events on this machine.

    python -m bench.dataflow [--visitors 100000] [--seed 7] [--snapshot-s 10 2 1]

Starts its own embedded broker. Outputs go to sinks that only count, so the figure is the
dataflow's own cost (Redis and the alerts topic are measured end to end elsewhere).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import run_main
from confluent_kafka import Producer

from config.scoring import ScoringModel, load_scoring_model
from config.settings import Settings
from config.sites import load_sites
from contracts import codec
from contracts.envelope import Envelope, InvalidEvent, contact_key, decode, partition_key
from dataflows.flow import build_flow
from dataflows.rules.identity import Cookie, ToContact, resolve
from dataflows.rules.leads import LeadUpdate, record, update_lead
from dataflows.rules.profile import Profile
from dataflows.rules.trust import how_recognized
from dbl import demo
from dbl.embedded import EmbeddedBroker
from dbl.topics import ensure_topics
from runtime.heap import collect_rarely
from tracking.segment import from_segment

KINDS = ("anonymous", "warm", "hot")
WEIGHTS = (70, 20, 10)
# Recovery snapshot intervals measured: 10 s, and shorter ones (shorter pauses, more of them).
SNAPSHOT_INTERVALS_S = [10, 2, 1]
CALL_TYPES = {"/v1/page": "page", "/v1/track": "track", "/v1/identify": "identify"}


class CountingSink(DynamicSink[Any]):
    """Counts what it is given; stores nothing."""

    def __init__(self) -> None:
        self.count = 0

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[Any]:
        sink = self

        class _Partition(StatelessSinkPartition[Any]):
            def write_batch(self, items: list[Any]) -> None:
                sink.count += len(items)

        return _Partition()


def received_at(value: bytes) -> int:
    """An envelope's receive time: the collector writes it as the broker timestamp."""
    return int(codec.loads(value)["received_at"])


def make_events(visitors: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, envelope JSON) for a realistic mix of visitors, in receive order."""
    rng = random.Random(seed)
    sites = load_sites(Settings().sites_path)
    clock = 1_767_225_600_000
    events: list[tuple[bytes, bytes]] = []
    for n in range(visitors):
        kind = rng.choices(KINDS, WEIGHTS)[0]
        for call in demo.journey(rng, n, kind=kind):
            clock += 7
            envelope = from_segment(
                call.message,
                site=sites[call.write_key],
                received_at=clock,
                call_type=CALL_TYPES[call.path],
                user_agent=demo.BROWSER_AGENT,
            )
            # A copy the size of the JSON: orjson's own buffer is several KB per value,
            # which millions of held events cannot afford.
            value = bytes(memoryview(codec.dumps(envelope)))
            events.append((partition_key(envelope).encode(), value))
    return events


def produce_all(settings: Settings, events: list[tuple[bytes, bytes]]) -> None:
    """Put the events on the events topic as the collector would (receive time as the
    broker timestamp), waiting whenever the producer's queue is full."""
    producer = Producer({"bootstrap.servers": settings.brokers, "linger.ms": 20, "acks": "all"})
    for key, value in events:
        while True:
            try:
                producer.produce(settings.events_topic, value, key, timestamp=received_at(value))
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


def pure_python(values: list[bytes], model: ScoringModel) -> int:
    """The ceiling: the same logic in a plain loop; returns the number of alerts."""
    cookies: dict[str, Cookie] = {}
    records: dict[str, Profile] = {}
    leads: dict[str, Profile] = {}
    alerts = 0
    for raw in values:
        try:
            signal = decode(raw)
        except InvalidEvent:
            continue
        if signal["machine"] is not None:
            continue
        anon_id = signal["anon_id"]
        if anon_id is not None:
            outcome = resolve(cookies.setdefault(anon_id, Cookie()), anon_id, signal, model)
            item = outcome.to_contact
        else:
            person = contact_key(signal["user_id"], signal["email"])
            assert person is not None
            item = ToContact(person, signal, how_recognized(signal))
        if item is not None:
            item = record(records.setdefault(item.person, Profile(item.person)), item, model)
            profile = leads.setdefault(item.person, Profile(item.person))
            alerts += sum(len(u.alerts) for u in update_lead(profile, item, model))
    return alerts


def straightforward_flow(settings: Settings, model: ScoringModel, sink: CountingSink) -> Dataflow:
    """KafkaSource -> map -> stateful_map per stage, the naive way."""
    flow = Dataflow("straightforward")
    messages = op.input(
        "in", flow, KafkaSource([settings.brokers], [settings.events_topic], tail=False)
    )
    signals = op.filter_map("decode", messages, _decode_or_none)

    def identity(cookie: Cookie | None, signal: Envelope) -> tuple[Cookie, ToContact | None]:
        cookie = cookie or Cookie()
        assert signal["anon_id"] is not None
        return cookie, resolve(cookie, signal["anon_id"], signal, model).to_contact

    def own_record(own: Profile | None, item: ToContact) -> tuple[Profile, ToContact]:
        own = own or Profile(item.person)
        return own, record(own, item, model)

    def score(profile: Profile | None, item: ToContact) -> tuple[Profile, list[LeadUpdate]]:
        profile = profile or Profile(item.person)
        return profile, update_lead(profile, item, model)

    cookies = op.key_on(
        "key_cookie", op.filter("cookie", signals, lambda s: s["anon_id"] is not None), _anon
    )
    routed = op.stateful_map("identity", cookies, identity)
    to_contacts = op.filter_map(
        "routed", routed, lambda kv: (kv[1].person, kv[1]) if kv[1] else None
    )
    known = op.map(
        "known",
        op.filter("no_cookie", signals, lambda s: s["anon_id"] is None),
        lambda s: (
            contact_key(s["user_id"], s["email"]),
            ToContact(str(contact_key(s["user_id"], s["email"])), s, how_recognized(s)),
        ),
    )
    recorded = op.stateful_map("record", op.merge("all", to_contacts, known), own_record)
    updates = op.stateful_map("score", recorded, score)
    op.output(
        "out", op.flat_map("alerts", updates, lambda kv: [a for u in kv[1] for a in u.alerts]), sink
    )
    return flow


def engine_alone(settings: Settings, sink: CountingSink) -> Dataflow:
    """Read the events, key them by sender and count per sender: one trivial stateful step."""
    flow = Dataflow("engine_alone")
    messages = op.input(
        "in", flow, KafkaSource([settings.brokers], [settings.events_topic], tail=False)
    )
    keyed = op.key_on("key", messages, _sender)
    counts = op.stateful_map("count", keyed, lambda seen, _: ((seen or 0) + 1, None))
    op.output("out", counts, sink)
    return flow


def _sender(message: Any) -> str:
    return bytes(message.key or b"").decode()


def _decode_or_none(message: Any) -> Envelope | None:
    try:
        signal = decode(message.value)
    except InvalidEvent:
        return None
    return signal if signal["machine"] is None else None


def _anon(signal: Envelope) -> str:
    assert signal["anon_id"] is not None
    return signal["anon_id"]


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--snapshot-s",
        type=int,
        nargs="+",
        default=SNAPSHOT_INTERVALS_S,
        help="recovery snapshot intervals to run the DBL flow with",
    )
    args = parser.parse_args()
    collect_rarely()  # as `python -m dataflows` does

    print(f"generating events for {args.visitors:,} visitors...", flush=True)
    events = make_events(args.visitors, args.seed)
    print(f"{len(events):,} events", flush=True)
    with EmbeddedBroker() as broker:
        settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, events_partitions=1)
        ensure_topics(settings)
        produce_all(settings, events)
        model = load_scoring_model(settings.scoring_path)
        values = [value for _, value in events]
        results: dict[str, float] = {}

        seconds, alerts = timed(lambda: pure_python(values, model))
        results["pure-Python loop (ceiling)"] = seconds
        print(f"alerts raised: {alerts:,}", flush=True)

        results["Bytewax alone (one trivial stateful step)"] = timed(
            lambda: run_main(engine_alone(settings, CountingSink()))
        )[0]

        sink = CountingSink()
        flow = straightforward_flow(settings, model, sink)
        results["straightforward Bytewax flow"] = timed(lambda: run_main(flow))[0]

        results["DBL flow, recovery off"] = timed(lambda: run_main(dbl_flow(settings)))[0]

        for interval in args.snapshot_s:
            name = f"DBL flow, recovery on (snapshot every {interval} s)"
            results[name] = timed(partial(run_with_recovery, dbl_flow(settings), interval))[0]

    ceiling = len(events) / results["pure-Python loop (ceiling)"]
    print(f"\n{'run':<46} {'events/s':>10} {'of ceiling':>11}")
    for name, seconds in results.items():
        rate = len(events) / seconds
        print(f"{name:<46} {rate:>10,.0f} {rate / ceiling:>10.0%}")


def run_with_recovery(flow: Dataflow, snapshot_interval_s: int) -> None:
    """Run `flow` to its end with recovery on, in a fresh recovery database."""
    with tempfile.TemporaryDirectory() as db_dir:
        init_db_dir(Path(db_dir), 1)
        interval = timedelta(seconds=snapshot_interval_s)
        run_main(flow, epoch_interval=interval, recovery_config=RecoveryConfig(db_dir))


def dbl_flow(settings: Settings, workers: int = 1) -> Dataflow:
    """The DBL flow reading the events topic to its end, into counting sinks."""
    source = KafkaSource([settings.brokers], [settings.events_topic], tail=False)
    return build_flow(
        settings,
        workers=workers,
        events=source,
        profiles=CountingSink(),
        alerts=CountingSink(),
        dead_letters=CountingSink(),
    )


if __name__ == "__main__":
    main()
