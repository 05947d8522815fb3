"""The DBL dataflow: decode -> dedupe -> resolve_identity -> score -> rollup_account ->
profiles, alerts and the DLQ.

Run it with `python -m dataflows` (which also serves metrics), or directly:

    python -m bytewax.run "dataflows.flow:build_flow()"

Tests swap the Kafka and Redis ends for Bytewax's `TestingSource`/`TestingSink`.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulLogic
from bytewax.outputs import Sink
from confluent_kafka.admin import AdminClient

from config.routing import load_routing
from config.scoring import ScoringModel, load_scoring_model
from config.settings import Settings
from dataflows import metrics
from dataflows.accounts import Account, roll_up
from dataflows.clock import EventClock
from dataflows.dedupe import SeenIds
from dataflows.identity import (
    Cookie,
    Outcome,
    ToContact,
    how_recognized,
    idle_too_long,
    resolve,
)
from dataflows.leads import LeadUpdate, cool_if_due, profile_view, update_lead
from dataflows.profile import Profile, assess
from dataflows.sinks import ProfileWrite, RedisProfileSink, reliable_kafka_sink
from dbl import codec
from dbl.redis_keys import RedisKeys
from tracking.envelope import Envelope, InvalidEvent, contact_key, decode, partition_key

MAX_DLQ_VALUE_CHARS = 4096
COOLING_CHECK = timedelta(seconds=30)
# Do not let the broker hold a fetch open waiting for more data (its default is 500 ms,
# which would be added to every alert's latency).
LOW_LATENCY_FETCH = {"fetch.wait.max.ms": "5"}


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is not a valid envelope, with where it came from and why."""

    reason: str
    message: KafkaSourceMessage[bytes | None, bytes | None]


def decode_message(
    message: KafkaSourceMessage[bytes | None, bytes | None], clock: EventClock
) -> Envelope | Rejected:
    """Decode one broker message; bad input becomes data for the DLQ, never a crash."""
    try:
        envelope = decode(message.value)
    except InvalidEvent as exc:
        metrics.REJECTED.inc()
        return Rejected(exc.reason, message)
    metrics.ACCEPTED.inc()
    clock.observe(envelope["received_at"])
    return envelope


def dead_letter(rejected: Rejected) -> KafkaSinkMessage[bytes | None, bytes]:
    """The DLQ record: the reason, the coordinates and (a prefix of) the bad value."""
    msg = rejected.message
    raw = (msg.value or b"").decode("utf-8", "replace")[:MAX_DLQ_VALUE_CHARS]
    record = {
        "reason": rejected.reason,
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "value": raw,
    }
    return KafkaSinkMessage(msg.key, codec.dumps(record))


class Dedupe(StatefulLogic[Envelope, Envelope, bytes]):
    """Per broker key: let each message id through once within the window."""

    def __init__(self, window_ms: int, resume: bytes | None) -> None:
        self._window_ms = window_ms
        self._seen: SeenIds = pickle.loads(resume) if resume is not None else SeenIds()

    def on_item(self, value: Envelope) -> tuple[Iterable[Envelope], bool]:
        if self._seen.first_time(value["id"], value["received_at"], self._window_ms):
            return [value], StatefulLogic.RETAIN
        metrics.DUPLICATES.inc()
        return [], StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self._seen, protocol=pickle.HIGHEST_PROTOCOL)


class ResolveIdentity(StatefulLogic[Envelope, Outcome, bytes]):
    """Per cookie: keep its anonymous history until someone claims it, then route to them.
    A cookie nobody claimed is forgotten after the anonymous TTL of event time."""

    def __init__(
        self, model: ScoringModel, clock: EventClock, ttl_ms: int, resume: bytes | None
    ) -> None:
        self._model = model
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._cookie: Cookie = pickle.loads(resume) if resume is not None else Cookie()
        metrics.COOKIES.inc()

    def on_item(self, value: Envelope) -> tuple[Iterable[Outcome], bool]:
        assert value["anon_id"] is not None
        if idle_too_long(self._cookie, value["ts"], self._ttl_ms):
            self._cookie = Cookie()
        linked_before = self._cookie.contact
        outcome = resolve(self._cookie, value["anon_id"], value, self._model)
        if self._cookie.contact != linked_before:
            metrics.IDENTITY_LINKS.labels(self._cookie.how).inc()
        return [outcome], StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        history = self._cookie.history
        if self._cookie.contact is not None or history is None:
            return None
        return self._clock.wall_time_when(history.last_seen + self._ttl_ms)

    def on_notify(self) -> tuple[Iterable[Outcome], bool]:
        return [], self._evict_if_idle()

    def on_eof(self) -> tuple[Iterable[Outcome], bool]:
        return [], self._evict_if_idle()

    def _evict_if_idle(self) -> bool:
        if idle_too_long(self._cookie, self._clock.now(), self._ttl_ms):
            metrics.COOKIES.dec()
            return StatefulLogic.DISCARD
        return StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self._cookie, protocol=pickle.HIGHEST_PROTOCOL)


class ScoreLead(StatefulLogic[ToContact, LeadUpdate, bytes]):
    """Per contact: absorb linked histories, score each signal, raise alerts; a sales-ready
    lead that decays out of it cools once the event clock has passed that moment by the
    configured lateness (so a late signal from before it can still count)."""

    def __init__(self, model: ScoringModel, clock: EventClock, resume: bytes | None) -> None:
        self._model = model
        self._clock = clock
        self._lateness = int(model.alerts.late_after_ms)
        self._profile: Profile | None = pickle.loads(resume) if resume is not None else None
        metrics.CONTACTS.inc()

    def on_item(self, value: ToContact) -> tuple[Iterable[LeadUpdate], bool]:
        if self._profile is None:
            self._profile = Profile(value.person)
        updates = update_lead(self._profile, value, self._model)
        metrics.LAG_SECONDS.observe(max(0.0, time.time() - value.signal["received_at"] / 1000))
        return updates, StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        # Bytewax wakes a key on the wall clock, and only this key's own activity moves it.
        # Live, the event clock runs at wall speed; in a replay it runs faster. So wake at
        # the expected moment, but at least every COOLING_CHECK to look at the event clock.
        due = self._cooling_due()
        if due is None:
            return None
        return min(self._clock.wall_time_when(due), datetime.now(tz=UTC) + COOLING_CHECK)

    def on_notify(self) -> tuple[Iterable[LeadUpdate], bool]:
        return self._cool_if_clock_passed(), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[LeadUpdate], bool]:
        return self._cool_if_clock_passed(), StatefulLogic.RETAIN

    def _cool_if_clock_passed(self) -> list[LeadUpdate]:
        due = self._cooling_due()
        if self._profile is None or due is None or self._clock.now() < due:
            return []
        assert self._profile.cooling_at is not None
        cooled = cool_if_due(self._profile, self._profile.cooling_at, self._model)
        return [cooled] if cooled else []

    def _cooling_due(self) -> int | None:
        if self._profile is None or self._profile.cooling_at is None:
            return None
        return self._profile.cooling_at + self._lateness

    def snapshot(self) -> bytes:
        return pickle.dumps(self._profile, protocol=pickle.HIGHEST_PROTOCOL)


class RollupAccount(StatefulLogic[dict[str, Any], dict[str, Any], bytes]):
    """Per account: sum its contacts' engagement and alert when the account surges."""

    def __init__(self, model: ScoringModel, resume: bytes | None) -> None:
        self._rule = model.alerts.account_surge
        self._account: Account = pickle.loads(resume) if resume is not None else Account()

    def on_item(self, value: dict[str, Any]) -> tuple[Iterable[dict[str, Any]], bool]:
        alert = roll_up(self._account, value, self._rule)
        return ([alert] if alert else []), StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self._account, protocol=pickle.HIGHEST_PROTOCOL)


def _is_rejected(item: Envelope | Rejected) -> TypeGuard[Rejected]:
    return isinstance(item, Rejected)


def _as_envelope(item: Envelope | Rejected) -> Envelope:
    assert not isinstance(item, Rejected)
    return item


def _is_person(signal: Envelope) -> bool:
    """Machine traffic (bots, link scanners, mail proxies) is counted, never scored."""
    if signal["machine"] is None:
        return True
    metrics.MACHINE_SIGNALS.labels(signal["machine"]).inc()
    return False


def _unkeyed(kv: tuple[str, Envelope]) -> Envelope:
    return kv[1]


def _has_cookie(signal: Envelope) -> bool:
    return signal["anon_id"] is not None


def _cookie_of(signal: Envelope) -> str:
    assert signal["anon_id"] is not None
    return signal["anon_id"]


def _value(kv: tuple[str, LeadUpdate]) -> LeadUpdate:
    return kv[1]


def _route_known(signal: Envelope) -> tuple[str, ToContact]:
    person = contact_key(signal["user_id"], signal["email"])
    assert person is not None, "decode guarantees an id"
    return person, ToContact(person, signal, how_recognized(signal))


def _routed(kv: tuple[str, Outcome]) -> list[tuple[str, ToContact]]:
    to_contact = kv[1].to_contact
    return [] if to_contact is None else [(to_contact.person, to_contact)]


def _anonymous_writes(model: ScoringModel, outcome: Outcome) -> list[ProfileWrite]:
    writes: list[ProfileWrite] = []
    if outcome.moved_from is not None:
        writes.append(ProfileWrite(outcome.moved_from, None))
    if outcome.anonymous is not None:
        history = outcome.anonymous
        view = profile_view(history, assess(history, history.last_seen, model), model)
        writes.append(ProfileWrite(history.person, view))
    return writes


def _contact_write(update: LeadUpdate) -> ProfileWrite:
    return ProfileWrite(update.view["person"], update.view)


def _account_view(update: LeadUpdate) -> list[tuple[str, dict[str, Any]]]:
    account = update.view["account"]
    return [] if account is None else [(account, update.view)]


def _alert_message(alert: dict[str, Any]) -> KafkaSinkMessage[bytes, bytes]:
    metrics.ALERTS.labels(alert["kind"]).inc()
    return KafkaSinkMessage(alert["contact"].encode(), codec.dumps(alert))


def build_flow(
    settings: Settings | None = None,
    *,
    events: Source[Any] | None = None,
    profiles: Sink[ProfileWrite] | None = None,
    alerts: Sink[KafkaSinkMessage[bytes, bytes]] | None = None,
    dead_letters: Sink[KafkaSinkMessage[bytes | None, bytes]] | None = None,
) -> Dataflow:
    """Build the dataflow; any end left as None is the real Kafka topic or Redis.

    >>> from bytewax.testing import TestingSink, TestingSource
    >>> flow = build_flow(Settings(), events=TestingSource([]), profiles=TestingSink([]),
    ...                   alerts=TestingSink([]), dead_letters=TestingSink([]))
    """
    settings = settings or Settings.from_environment()
    model = load_scoring_model(settings.config_dir / "scoring.toml")
    clock = EventClock()
    flow = Dataflow("dbl")

    messages = op.input("events_in", flow, events or _events_source(settings))
    decoded = op.map("decode", messages, lambda m: decode_message(m, clock))
    invalid = op.branch("split_invalid", decoded, _is_rejected)
    dlq_sink: Sink[Any] = dead_letters or reliable_kafka_sink(settings.brokers, settings.dlq_topic)
    op.output("dlq_out", op.map("dead_letter", invalid.trues, dead_letter), dlq_sink)

    decoded_ok: Stream[Envelope] = op.map("valid", invalid.falses, _as_envelope)
    people = op.filter("drop_machines", decoded_ok, _is_person)
    window_ms = int(settings.dedupe_window_s * 1000)
    keyed = op.key_on("key_signal", people, partition_key)
    unique = op.stateful("dedupe", keyed, lambda r: Dedupe(window_ms, r))
    valid: Stream[Envelope] = op.map("unique", unique, _unkeyed)
    by_cookie = op.branch("has_cookie", valid, _has_cookie)
    cookies = op.key_on("key_cookie", by_cookie.trues, _cookie_of)
    ttl_ms = int(settings.anonymous_ttl_s * 1000)
    outcomes = op.stateful(
        "resolve_identity", cookies, lambda r: ResolveIdentity(model, clock, ttl_ms, r)
    )
    to_contacts = op.merge(
        "to_contacts",
        op.flat_map("routed", outcomes, _routed),
        op.map("route_known", by_cookie.falses, _route_known),
    )
    updates = op.stateful("score", to_contacts, lambda r: ScoreLead(model, clock, r))
    lead_updates: Stream[LeadUpdate] = op.map("lead_update", updates, _value)
    by_account = op.flat_map("key_account", lead_updates, _account_view)
    surges = op.stateful("rollup_account", by_account, lambda r: RollupAccount(model, r))

    writes = op.merge(
        "profile_writes",
        op.flat_map("anonymous_profile", outcomes, lambda kv: _anonymous_writes(model, kv[1])),
        op.map("contact_profile", lead_updates, _contact_write),
    )
    redis_sink = profiles or RedisProfileSink(
        settings.redis,
        RedisKeys(settings.redis_prefix),
        load_routing(settings.config_dir / "routing.toml"),
    )
    op.output("profiles_out", writes, redis_sink)

    raised = op.merge(
        "alerts",
        op.flat_map("lead_alerts", lead_updates, lambda u: u.alerts),
        op.map("account_alerts", surges, lambda kv: kv[1]),
    )
    alerts_sink: Sink[Any] = alerts or reliable_kafka_sink(settings.brokers, settings.alerts_topic)
    op.output("alerts_out", op.map("alert_message", raised, _alert_message), alerts_sink)
    return flow


class EventsSource(KafkaSource):
    """The events topic, read by consumers that do not wait on the broker for more data.

    KafkaSource hands `add_config` to its admin client too, which warns about a consumer-only
    setting; this lists the partitions with a plain admin client instead (same part names).
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__([settings.brokers], [settings.events_topic], add_config=LOW_LATENCY_FETCH)
        self._bootstrap = settings.brokers
        self._topic = settings.events_topic

    def list_parts(self) -> list[str]:
        """Each partition of the events topic, named as KafkaSource names them."""
        metadata = AdminClient({"bootstrap.servers": self._bootstrap}).list_topics(self._topic)
        return [
            f"{index}-{self._topic}" for index in sorted(metadata.topics[self._topic].partitions)
        ]


def _events_source(settings: Settings) -> KafkaSource:
    return EventsSource(settings)
