"""The DBL dataflow: decode -> identify -> order_signals (and trusted merges) ->
record_contact -> order_leads -> score -> order_accounts -> rollup_account -> profiles,
alerts and the DLQ.

Run it with `python -m dataflows` (which also serves metrics and passes the cluster's worker
count), or directly:

    python -m bytewax.run "dataflows.flow:build_flow(workers=1)"

Tests swap the Kafka and Redis ends for Bytewax's `TestingSource`/`TestingSink`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeGuard, TypeVar

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource
from bytewax.outputs import Sink

from config.routing import load_routing
from config.scoring import ScoringModel, load_scoring_model
from config.settings import Settings
from dataflows import metrics
from dataflows.accounts import account_of_update
from dataflows.clock import EventClock
from dataflows.guard import Failure
from dataflows.identity import Outcome
from dataflows.leads import LeadUpdate
from dataflows.merges import Forget, Merge, forgotten_contact, merge_order, trusted_merge
from dataflows.ordering import Progress, Sequenced, signal_order
from dataflows.sinks import ProfileWrite, RedisProfileSink, ReliableKafkaSink
from dataflows.sources import EventsSource, ProgressSource
from dataflows.steps.accounts import RollupAccount
from dataflows.steps.identify import Identify, IdentityRules
from dataflows.steps.leads import ContactRecord, ScoreLead
from dataflows.steps.ordering import OrderSignals, Reorder, anonymous_write, ignore_progress
from dataflows.workers import worker_keys, worker_of
from dbl import codec
from dbl.redis_keys import RedisKeys
from tracking.envelope import Envelope, InvalidEvent, decode, partition_key

T = TypeVar("T")

MAX_DLQ_VALUE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is not a valid envelope, with where it came from and why."""

    reason: str
    message: KafkaSourceMessage[bytes | None, bytes | None]


def decode_message(
    message: KafkaSourceMessage[bytes | None, bytes | None] | Progress,
) -> Envelope | Progress | Rejected:
    """Decode one broker message; bad input becomes data for the DLQ, never a crash.
    Progress markers pass through."""
    if isinstance(message, Progress):
        return message
    try:
        envelope = decode(message.value)
    except InvalidEvent as exc:
        metrics.REJECTED.inc()
        return Rejected(exc.reason, message)
    metrics.ACCEPTED.inc()
    return envelope


def dead_letter(rejected: Rejected) -> KafkaSinkMessage[bytes | None, bytes]:
    """The DLQ record: the reason, the coordinates and (a prefix of) the bad value."""
    msg = rejected.message
    raw = (msg.value or b"").decode("utf-8", "replace")[:MAX_DLQ_VALUE_CHARS]
    record = {
        "reason": rejected.reason,
        "step": "decode",
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "value": raw,
    }
    return KafkaSinkMessage(msg.key, codec.dumps(record))


def failed_letter(kv: tuple[str, Failure]) -> KafkaSinkMessage[bytes | None, bytes]:
    """The DLQ record of a signal a step's rules raised on: the step, the reason and (a
    prefix of) what the signal carried."""
    key, failed = kv
    item = failed.item or {}
    record = {
        "reason": failed.reason,
        "step": failed.step,
        "id": item.get("id"),
        "value": codec.dumps(item).decode()[:MAX_DLQ_VALUE_CHARS],
    }
    return KafkaSinkMessage(key.encode(), codec.dumps(record))


def _is_failure(kv: tuple[str, Any]) -> bool:
    return isinstance(kv[1], Failure)


def _kept(name: str, stream: Stream[Any], failures: list[Stream[Any]]) -> Stream[Any]:
    """A stateful step's output without its failures, which join `failures` (for the DLQ)."""
    split = op.branch(f"split_failed_{name}", stream, _is_failure)
    failures.append(split.trues)
    return split.falses


def _is_rejected(item: Envelope | Progress | Rejected) -> TypeGuard[Rejected]:
    return isinstance(item, Rejected)


def _is_person(item: Envelope | Progress | Rejected) -> bool:
    """Machine traffic (bots, link scanners, mail proxies) is counted, never scored."""
    if isinstance(item, Progress | Rejected) or item["machine"] is None:
        return True
    metrics.MACHINE_SIGNALS.labels(item["machine"]).inc()
    return False


def _to_every_worker(progress: Progress, workers: int) -> list[tuple[str, Any]]:
    """A progress marker, once per worker of the next step (after the data it was sent)."""
    return [(key, replace(progress, to=w)) for w, key in enumerate(worker_keys(workers))]


def _keyed_signal(item: Envelope | Progress, workers: int) -> list[tuple[str, Any]]:
    if isinstance(item, Progress):
        return _to_every_worker(item, workers)
    return [(partition_key(item), item)]


def _to_reorder(
    item: Progress | tuple[str, Sequenced], workers: int
) -> list[tuple[str, Progress | Sequenced]]:
    """A sequenced item goes to the worker key of the worker that holds its own key next,
    so after reordering it stays on that worker."""
    if isinstance(item, Progress):
        return _to_every_worker(item, workers)
    key, sequenced = item
    return [(worker_keys(workers)[worker_of(key, workers)], sequenced)]


def _signals_for_contacts(kv: tuple[str, Outcome | Progress], workers: int) -> list[Any]:
    """A contact's signal goes to its own key; a trusted merge also goes to every worker
    (ordered just before the signal that carries it); a trusted forget goes to every worker
    instead."""
    value = kv[1]
    if isinstance(value, Progress):
        return [value]
    to_contact = value.to_contact
    if to_contact is None:
        return []
    person, signal = to_contact.person, to_contact.signal
    forgotten = forgotten_contact(signal)
    if forgotten is not None:
        forget = Forget(forgotten, signal)
        return [(k, Sequenced(merge_order(signal), (k, forget))) for k in worker_keys(workers)]
    routed: list[Any] = [(person, Sequenced(signal_order(signal, person), (person, to_contact)))]
    merge = trusted_merge(signal)
    if merge is not None:
        item = Merge(*merge, signal)
        order = merge_order(signal)
        routed += [(key, Sequenced(order, (key, item))) for key in worker_keys(workers)]
    return routed


def _rekey(item: Any, workers: int) -> tuple[str, Any]:
    """Released (key, value) items go to their key; this worker's progress stays on this
    worker."""
    if isinstance(item, Progress):
        return worker_keys(workers)[item.to], item
    key_value: tuple[str, Any] = item
    return key_value


def _account_updates(kv: tuple[str, LeadUpdate | Progress]) -> list[Any]:
    value = kv[1]
    if isinstance(value, Progress):
        return [value]
    account = account_of_update(value)
    if account is None:
        return []
    return [(account, Sequenced(value.order, (account, value)))]


def _data(kv: tuple[str, T | Progress]) -> list[T]:
    """A step's output without its key and without progress markers (where they end)."""
    value = kv[1]
    return [] if isinstance(value, Progress) else [value]


def _is_profile_write(kv: tuple[str, Any]) -> bool:
    return isinstance(kv[1], ProfileWrite)


def _is_data(kv: tuple[str, Any]) -> bool:
    return not isinstance(kv[1], Progress)


def _in_order(
    name: str,
    items: Stream[Any],
    reorder: Callable[[bytes | None], Reorder],
    workers: int,
    failures: list[Stream[Any]],
) -> Stream[tuple[str, Any]]:
    """Step `order_<name>`: (key, Sequenced) items and progress markers in; the items out in
    stream order, keyed by their own key, each worker's followed by its progress."""
    routed = op.flat_map(f"to_order_{name}", items, lambda item: _to_reorder(item, workers))
    ordered = op.stateful_batch(f"order_{name}", routed, reorder)
    return _kept(
        f"order_{name}", op.map(f"key_{name}", ordered, lambda kv: _rekey(kv[1], workers)), failures
    )


def _anonymous_writes(model: ScoringModel, outcome: Outcome) -> list[ProfileWrite]:
    writes: list[ProfileWrite] = []
    if outcome.moved_from is not None:
        writes.append(ProfileWrite(outcome.moved_from, None))
    if outcome.anonymous is not None:
        writes.append(anonymous_write(outcome.anonymous, model))
    return writes


def _contact_write(update: LeadUpdate) -> ProfileWrite:
    return ProfileWrite(update.view["person"], None if update.gone else update.view)


def _alert_message(alert: dict[str, Any]) -> KafkaSinkMessage[bytes, bytes]:
    metrics.ALERTS.labels(alert["kind"]).inc()
    return KafkaSinkMessage(alert["contact"].encode(), codec.dumps(alert))


def build_flow(
    settings: Settings | None = None,
    *,
    workers: int = 1,
    events: FixedPartitionedSource[Any, Any] | None = None,
    profiles: Sink[ProfileWrite] | None = None,
    alerts: Sink[KafkaSinkMessage[bytes, bytes]] | None = None,
    dead_letters: Sink[KafkaSinkMessage[bytes | None, bytes]] | None = None,
) -> Dataflow:
    """Build the dataflow for a cluster of `workers` workers in all (`-w` times the number
    of processes); any end left as None is the real Kafka topic or Redis.

    >>> from bytewax.testing import TestingSink, TestingSource
    >>> flow = build_flow(Settings(), events=TestingSource([]), profiles=TestingSink([]),
    ...                   alerts=TestingSink([]), dead_letters=TestingSink([]))
    """
    settings = settings or Settings.from_environment()
    model = load_scoring_model(settings.config_dir / "scoring.toml")
    clock = EventClock()
    flow = Dataflow("dbl")
    source = events or EventsSource(settings)
    parts = source.list_parts()
    every_worker = range(workers)

    messages = op.input(
        "events_in", flow, ProgressSource(source, idle_lag_ms=int(settings.idle_lag_s * 1000))
    )
    decoded = op.map("decode", messages, decode_message)
    invalid = op.branch("split_invalid", decoded, _is_rejected)
    failures: list[Stream[Any]] = []

    people = op.filter("drop_machines", invalid.falses, _is_person)
    keyed = op.flat_map("key_signal", people, lambda item: _keyed_signal(item, workers))
    rules = IdentityRules(
        model, clock, int(settings.dedupe_window_s * 1000), int(settings.anonymous_ttl_s * 1000)
    )
    outcomes = _kept(
        "identify", op.stateful_batch("identify", keyed, lambda r: Identify(rules, r)), failures
    )

    # A contact's signals come from each of its cookies and from its own key, by way of
    # different workers: put them back into one order, and resolve trusted merges there.
    signal_senders = frozenset(f"{part}@{w}" for part in parts for w in every_worker)
    signals = _in_order(
        "signals",
        op.flat_map(
            "signals_for_contacts", outcomes, lambda kv: _signals_for_contacts(kv, workers)
        ),
        lambda r: OrderSignals(signal_senders, rules, workers, r),
        workers,
        failures,
    )
    # Cookies anonymous again after a forget are scored there: their views go to Redis.
    unlinked = op.branch("split_unlinked_views", signals, _is_profile_write)
    records = _kept(
        "record_contact",
        op.stateful_batch("record_contact", unlinked.falses, lambda r: ContactRecord(model, r)),
        failures,
    )

    # A lead's signals come from each of its contact keys (after merges), on different
    # workers: the same again. The event clock is what this step has released.
    record_senders = frozenset(f"signals@{w}" for w in every_worker)
    for_leads = _in_order(
        "leads",
        op.flat_map("for_leads", records, lambda kv: [kv[1]]),
        lambda r: Reorder("leads", record_senders, clock.observe, r),
        workers,
        failures,
    )
    scored = _kept(
        "score",
        op.stateful_batch("score", for_leads, lambda r: ScoreLead(model, clock, r)),
        failures,
    )
    lead_updates: Stream[LeadUpdate] = op.flat_map("lead_updates", scored, _data)

    # An account's contacts are scored on different workers: the same again.
    lead_senders = frozenset(f"leads@{w}" for w in every_worker)
    account_updates = _in_order(
        "accounts",
        op.flat_map("account_updates", scored, _account_updates),
        lambda r: Reorder("accounts", lead_senders, ignore_progress, r),
        workers,
        failures,
    )
    # Progress ends here: nothing downstream of the account rollup waits on it.
    account_updates = op.filter("updates_only", account_updates, _is_data)
    surges = _kept(
        "rollup_account",
        op.stateful_batch("rollup_account", account_updates, lambda r: RollupAccount(model, r)),
        failures,
    )

    writes = op.merge(
        "profile_writes",
        op.flat_map(
            "anonymous_profile",
            op.flat_map("outcomes", outcomes, _data),
            lambda outcome: _anonymous_writes(model, outcome),
        ),
        op.map("contact_profile", lead_updates, _contact_write),
        op.map("unlinked_profile", unlinked.trues, lambda kv: kv[1]),
    )
    redis_sink = profiles or RedisProfileSink(
        settings.redis,
        RedisKeys(settings.redis_prefix),
        load_routing(settings.routing_path),
    )
    op.output("profiles_out", writes, redis_sink)

    raised = op.merge(
        "alerts",
        op.flat_map("lead_alerts", lead_updates, lambda u: u.alerts),
        op.map("account_alerts", surges, lambda kv: kv[1]),
    )
    alerts_sink: Sink[Any] = alerts or ReliableKafkaSink(settings.brokers, settings.alerts_topic)
    op.output("alerts_out", op.map("alert_message", raised, _alert_message), alerts_sink)

    dlq_sink: Sink[Any] = dead_letters or ReliableKafkaSink(settings.brokers, settings.dlq_topic)
    letters = op.merge(
        "dead_letters",
        op.map("dead_letter", invalid.trues, dead_letter),
        op.map("failed_letter", op.merge("failures", *failures), failed_letter),
    )
    op.output("dlq_out", letters, dlq_sink)
    return flow
