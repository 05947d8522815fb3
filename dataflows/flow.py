"""The DBL dataflow: decode -> identify -> order_signals (and trusted merges) ->
record_contact -> order_leads -> score -> order_accounts -> rollup_account -> profiles,
alerts and the DLQ.

Run it with `python -m dataflows` (which also serves metrics and passes the cluster's worker
count), or directly:

    python -m bytewax.run "dataflows.flow:build_flow(workers=1)"

Tests swap the Kafka and Redis ends for Bytewax's `TestingSource`/`TestingSink`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource
from bytewax.outputs import Sink

from config.errors import ConfigError
from config.routing import load_routing
from config.scoring import load_scoring_model
from config.settings import Settings
from contracts import codec, dead_letters
from contracts.alerts import Alert
from contracts.envelope import Envelope, InvalidEvent, decode, partition_key
from contracts.read_model import RedisKeys
from dataflows.guard import Failure, is_failure
from dataflows.io import metrics
from dataflows.io.models import fetch_from_topic
from dataflows.io.sinks import (
    Dropped,
    ProfileWrite,
    RedisAlertLog,
    RedisProfileSink,
    ReliableKafkaSink,
)
from dataflows.io.sources import EventsSource, ProgressSource, Stamped
from dataflows.models import Models
from dataflows.ordering.buffer import Progress, Sequenced
from dataflows.ordering.clock import EventClock
from dataflows.ordering.operator import in_stream_order, logic, to_every_worker, with_progress
from dataflows.rules.accounts import account_of_update
from dataflows.rules.identity import Outcome
from dataflows.rules.leads import LeadUpdate
from dataflows.steps.identify import Identify, IdentityRules
from dataflows.steps.order_signals import FollowContacts, anonymous_write, place_signal
from dataflows.steps.record_contact import RecordContact
from dataflows.steps.rollup_account import RollupAccount
from dataflows.steps.score import ScoreLead

T = TypeVar("T")

MAX_DLQ_VALUE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is not a valid envelope, with where it came from and why."""

    reason: str
    message: KafkaSourceMessage[bytes | None, bytes | None]


def decode_message(
    message: KafkaSourceMessage[bytes | None, bytes | None] | Stamped | Progress,
) -> Envelope | Progress | Rejected:
    """Decode one broker message, naming the model in effect at its place in the log; bad
    input becomes data for the DLQ, never a crash. Progress markers pass through."""
    if isinstance(message, Progress):
        return message
    model = ""
    if isinstance(message, Stamped):
        model = message.model
        message = message.message
    try:
        envelope = decode(message.value)
    except InvalidEvent as exc:
        metrics.REJECTED.inc()
        return Rejected(exc.reason, message)
    metrics.ACCEPTED.inc()
    envelope["model"] = model
    return envelope


def dead_letter(rejected: Rejected) -> KafkaSinkMessage[bytes | None, bytes]:
    """The DLQ record: the reason, the coordinates and (a prefix of) the bad value."""
    msg = rejected.message
    raw = (msg.value or b"").decode("utf-8", "replace")[:MAX_DLQ_VALUE_CHARS]
    where = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
    return KafkaSinkMessage(
        msg.key, dead_letters.dead_letter(rejected.reason, "decode", raw, **where)
    )


def failed_letter(kv: tuple[str, Failure]) -> KafkaSinkMessage[bytes | None, bytes]:
    """The DLQ record of a signal a step's rules raised on: the step, the reason and (a
    prefix of) what the signal carried."""
    key, failed = kv
    item = failed.item or {}
    value = codec.dumps(item).decode()[:MAX_DLQ_VALUE_CHARS]
    record = dead_letters.dead_letter(failed.reason, failed.step, value, id=item.get("id"))
    return KafkaSinkMessage(key.encode(), record)


def _kept(name: str, stream: Stream[Any], failures: list[Stream[Any]]) -> Stream[Any]:
    """A stateful step's output without its failures, which join `failures` (for the DLQ)."""
    split = op.branch(f"split_failed_{name}", stream, is_failure)
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


def _keyed_signal(item: Envelope | Progress, workers: int) -> list[tuple[str, Any]]:
    if isinstance(item, Progress):
        return list(to_every_worker(item, workers))
    return [(partition_key(item), item)]


def _for_lead(kv: tuple[str, Any]) -> list[tuple[str, Sequenced]]:
    """A contact key's record step addressed the item to its lead already."""
    placed: tuple[str, Sequenced] = kv[1]
    return [placed]


def _for_account(kv: tuple[str, LeadUpdate]) -> list[tuple[str, Sequenced]]:
    update = kv[1]
    account = account_of_update(update)
    if account is None:
        return []
    return [(account, Sequenced(update.order, (account, update)))]


def _data(kv: tuple[str, T | Progress]) -> list[T]:
    """A step's output without its key and without progress markers (where they end)."""
    value = kv[1]
    return [] if isinstance(value, Progress) else [value]


def _is_profile_write(kv: tuple[str, Any]) -> bool:
    return isinstance(kv[1], ProfileWrite)


def _is_data(kv: tuple[str, Any]) -> bool:
    return not isinstance(kv[1], Progress)


def _anonymous_writes(models: Models, outcome: Outcome) -> list[ProfileWrite]:
    writes: list[ProfileWrite] = []
    if outcome.moved_from is not None:
        writes.append(ProfileWrite(outcome.moved_from, None))
    if outcome.anonymous is not None:
        model = models.lasting(outcome.anonymous.model)
        writes.append(anonymous_write(outcome.anonymous, model))
    return writes


def _contact_write(update: LeadUpdate) -> ProfileWrite:
    return ProfileWrite(update.view["person"], None if update.gone else update.view)


def _alert_message(alert: Alert) -> KafkaSinkMessage[bytes, bytes]:
    metrics.ALERTS.labels(alert["kind"]).inc()
    key = alert["contact"] or alert["account"] or ""
    return KafkaSinkMessage(key.encode(), codec.dumps(alert))


def build_flow(
    settings: Settings | None = None,
    *,
    workers: int = 1,
    events: FixedPartitionedSource[Any, Any] | None = None,
    profiles: Sink[ProfileWrite] | None = None,
    alerts: Sink[KafkaSinkMessage[bytes, bytes]] | None = None,
    dead_letters: Sink[KafkaSinkMessage[bytes | None, bytes]] | None = None,
    models: Models | None = None,
    visitor_profiles: bool = True,
    refreshed_views: bool = True,
) -> Dataflow:
    """Build the dataflow for a cluster of `workers` workers in all (`-w` times the number
    of processes); any end left as None is the real Kafka topic or Redis. The models are the
    deployment's `scoring.toml` and those published on the models topic, unless given (a
    backtest gives its own). Without `visitor_profiles` only contacts' profiles are written
    (a backtest has no use for anonymous visitors' read-model views); without
    `refreshed_views` a quiet lead's view is not decayed to each midnight (a replay is
    judged by the views its signals wrote, the same however fast it runs).

    >>> from bytewax.testing import TestingSink, TestingSource
    >>> flow = build_flow(Settings(), events=TestingSource([]), profiles=TestingSink([]),
    ...                   alerts=TestingSink([]), dead_letters=TestingSink([]))
    """
    settings = settings or Settings.from_environment()
    if models is None:
        models = Models(load_scoring_model(settings.scoring_path), fetch_from_topic(settings))
    # The receive time the stream has got to: `order_leads` moves it; timed decisions (an
    # idle cookie forgotten, a lead cooling) wait for it.
    clock = EventClock()
    rules = IdentityRules(models, clock)
    flow = Dataflow("dbl")
    failures: list[Stream[Any]] = []

    source = ProgressSource(
        events or EventsSource(settings), idle_lag_ms=int(settings.idle_lag_s * 1000)
    )
    messages = with_progress("events_in", flow, source, workers)
    decoded = op.map("decode", messages.stream, decode_message)
    invalid = op.branch("split_invalid", decoded, _is_rejected)
    people = op.filter("drop_machines", invalid.falses, _is_person)
    keyed = op.flat_map("key_signal", people, lambda item: _keyed_signal(item, workers))
    outcomes = _kept(
        "identify",
        op.stateful_batch("identify", keyed, logic(lambda r: Identify(rules, r))),
        failures,
    )

    # A contact's signals come from each of its cookies and from its own key, by way of
    # different workers: put them back into one order, and resolve trusted merges there.
    signals = in_stream_order(
        "order_signals",
        outcomes,
        after=messages,
        place=lambda kv: place_signal(kv, workers),
        follow=lambda routes: FollowContacts(rules, workers, routes),
    )
    # Cookies anonymous again after a forget are scored there: their views go to Redis.
    unlinked = op.branch("split_unlinked_views", signals.stream, _is_profile_write)
    records = _kept(
        "record_contact",
        op.stateful_batch(
            "record_contact", unlinked.falses, logic(lambda r: RecordContact(models, r))
        ),
        failures,
    )

    # A lead's signals come from each of its contact keys (after merges): the same again.
    for_leads = in_stream_order("order_leads", records, after=signals, place=_for_lead, clock=clock)
    scored = _kept(
        "score",
        op.stateful_batch(
            "score", for_leads.stream, logic(lambda r: ScoreLead(models, clock, r, refreshed_views))
        ),
        failures,
    )
    lead_updates: Stream[LeadUpdate] = op.flat_map("lead_updates", scored, _data)

    # An account's contacts are scored on different workers: the same again.
    for_accounts = in_stream_order("order_accounts", scored, after=for_leads, place=_for_account)
    # Progress ends here: nothing downstream of the account rollup waits on it.
    account_updates = op.filter("updates_only", for_accounts.stream, _is_data)
    surges = _kept(
        "rollup_account",
        op.stateful_batch(
            "rollup_account", account_updates, logic(lambda r: RollupAccount(models, r))
        ),
        failures,
    )
    failures += [s.failures for s in (signals, for_leads, for_accounts) if s.failures is not None]

    writes = op.map("contact_profile", lead_updates, _contact_write)
    if visitor_profiles:
        writes = op.merge(
            "profile_writes",
            op.flat_map(
                "anonymous_profile",
                op.flat_map("outcomes", outcomes, _data),
                lambda outcome: _anonymous_writes(models, outcome),
            ),
            writes,
            op.map("unlinked_profile", unlinked.trues, lambda kv: kv[1]),
        )
    redis_sink = profiles or RedisProfileSink(
        settings.redis,
        RedisKeys(settings.redis_prefix),
        load_routing(settings.routing_path),
        anonymous_ttl_ms=models.base.identity.anonymous_ttl_ms,
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


def build_shadow_flow(settings: Settings | None = None, *, workers: int = 1) -> Dataflow:
    """The challenger (`DBL_SHADOW_MODEL`) beside the live model, on the same events: its
    profiles in the read model's shadow namespace, its alerts in a stream nobody delivers
    from (`RedisKeys.shadow`), its dead letters dropped (the live dataflow keeps them).
    Model markers do not move it: it is the challenger until it is published."""
    settings = settings or Settings.from_environment()
    if not settings.shadow_model:
        raise ConfigError("DBL_SHADOW_MODEL", "", "is not set: which model is the shadow?")
    keys = RedisKeys(settings.redis_prefix).shadow
    challenger = load_scoring_model(Path(settings.shadow_model))
    return build_flow(
        settings.with_overrides(redis_prefix=keys.prefix),
        workers=workers,
        alerts=RedisAlertLog(settings.redis, keys.raised),
        dead_letters=Dropped(),
        models=Models(challenger, fixed=True),
    )
