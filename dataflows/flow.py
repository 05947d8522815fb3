"""The DBL dataflow: decode -> identify -> order_signals (and trusted merges) ->
record_contact -> order_leads -> score -> order_accounts -> rollup_account -> profiles,
alerts and the DLQ.

Run it with `python -m dataflows` (which also serves metrics and passes the cluster's worker
count), or directly:

    python -m bytewax.run "dataflows.flow:build_flow(workers=1)"

Tests swap the Kafka and Redis ends for Bytewax's `TestingSource`/`TestingSink`.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeGuard, TypeVar

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from config.routing import load_routing
from config.scoring import ScoringModel, load_scoring_model
from config.settings import Settings
from dataflows import metrics
from dataflows.accounts import Account, leave, roll_up
from dataflows.clock import EventClock
from dataflows.dedupe import SeenIds, fingerprint
from dataflows.identity import (
    Cookie,
    Outcome,
    ToContact,
    anonymous_person,
    how_recognized,
    idle_after,
    idle_too_long,
    resolve,
)
from dataflows.leads import (
    LeadUpdate,
    cool_if_due,
    dissolve,
    fold_in,
    profile_view,
    record,
    update_lead,
)
from dataflows.merges import (
    ContactGraph,
    Dissolve,
    Erase,
    Forget,
    ForLead,
    Join,
    Merge,
    Rejoin,
    forgotten_contact,
    merge_order,
    trusted_merge,
)
from dataflows.ordering import (
    END_OF_INPUT,
    Position,
    Progress,
    ReorderBuffer,
    Sequenced,
    Watermarks,
    position,
    signal_order,
)
from dataflows.profile import Profile, apply_signal, assess
from dataflows.sinks import ProfileWrite, RedisProfileSink, ReliableKafkaSink
from dataflows.sources import EventsSource, ProgressSource
from dataflows.workers import worker_keys, worker_of
from dbl import codec
from dbl.redis_keys import RedisKeys
from tracking.envelope import Envelope, InvalidEvent, contact_key, decode, partition_key

T = TypeVar("T")
# What the score step gets for a lead (and progress markers).
LeadInput = ForLead | Join | Dissolve

MAX_DLQ_VALUE_CHARS = 4096
COOLING_CHECK = timedelta(seconds=30)


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
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "value": raw,
    }
    return KafkaSinkMessage(msg.key, codec.dumps(record))


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """What every key of the identify step shares: one object, not four fields per key."""

    model: ScoringModel
    clock: EventClock
    dedupe_window_ms: int
    anonymous_ttl_ms: int


class Identify(StatefulBatchLogic[Envelope | Progress, Outcome | Progress, bytes]):
    """Per broker key (a cookie, else a contact): drop repeated message ids, then say whose
    signal it is. A cookie keeps its anonymous history until someone claims it, then routes
    to them; one nobody claimed is forgotten after the anonymous TTL of event time.
    Progress markers (sent to worker keys) pass straight through, behind the data.

    There is one of these per visitor, so the state stays packed (pickled) between batches:
    a few hundred bytes instead of a few kilobytes of live objects, and the snapshot is
    ready-made. (A batch logic, not a `stateful` one: no wrapper object per key either.)"""

    # No per-instance __dict__: these slots are all a visitor costs here.
    __slots__ = ("_counted", "_idle_after", "_packed", "_rules")

    def __init__(self, rules: IdentityRules, resume: bytes | None) -> None:
        self._rules = rules
        self._packed = resume if resume is not None else FRESH
        self._counted = False
        self._idle_after = (
            None
            if resume is None
            else idle_after(unpack_identity(resume)[1], rules.anonymous_ttl_ms)
        )

    def on_batch(
        self, values: list[Envelope | Progress]
    ) -> tuple[Iterable[Outcome | Progress], bool]:
        out: list[Outcome | Progress] = []
        state: tuple[SeenIds, Cookie] | None = None
        for value in values:
            if isinstance(value, Progress):
                out.append(replace(value, sender=f"{value.sender}@{value.to}"))
                continue
            state = state or unpack_identity(self._packed)
            out += self._identify(*state, value)
        if state is not None:
            self._packed = pack_identity(*state)
            self._idle_after = idle_after(state[1], self._rules.anonymous_ttl_ms)
        return out, StatefulBatchLogic.RETAIN

    def _identify(self, seen: SeenIds, cookie: Cookie, value: Envelope) -> list[Outcome]:
        rules = self._rules
        if not seen.first_time(value["id"], value["received_at"], rules.dedupe_window_ms):
            metrics.DUPLICATES.inc()
            return []
        anon_id = value["anon_id"]
        if anon_id is None:
            person, how = _contact_of(value), how_recognized(value)
            return [Outcome(to_contact=ToContact(person, value, how))]
        if not self._counted:
            metrics.COOKIES.inc()
            self._counted = True
        if idle_too_long(cookie, value["ts"], rules.anonymous_ttl_ms):
            cookie.history = None  # only an unclaimed cookie goes idle: this is a fresh one
        linked_before = cookie.contact
        outcome = resolve(cookie, anon_id, value, rules.model)
        if cookie.contact != linked_before:
            metrics.IDENTITY_LINKS.labels(cookie.how).inc()
        return [outcome]

    def notify_at(self) -> datetime | None:
        if self._idle_after is None:
            return None
        return self._rules.clock.wall_time_when(self._idle_after)

    def on_notify(self) -> tuple[Iterable[Outcome], bool]:
        return [], self._forget_if_idle()

    def on_eof(self) -> tuple[Iterable[Outcome], bool]:
        return [], self._forget_if_idle()

    def _forget_if_idle(self) -> bool:
        # The dedupe window is far shorter than the TTL: nothing else is worth keeping.
        if self._idle_after is not None and self._rules.clock.now() > self._idle_after:
            if self._counted:
                metrics.COOKIES.dec()
            return StatefulBatchLogic.DISCARD
        return StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return self._packed


# The packed state of a key seen for the first time (nothing to unpickle).
FRESH: Final = b""


def pack_identity(seen: SeenIds, cookie: Cookie) -> bytes:
    """A visitor's identity state as the identify step keeps it (and snapshots it)."""
    return pickle.dumps((seen, cookie), protocol=pickle.HIGHEST_PROTOCOL)


def unpack_identity(packed: bytes) -> tuple[SeenIds, Cookie]:
    """The inverse of `pack_identity` (`FRESH` gives a new state)."""
    if packed == FRESH:
        return SeenIds(), Cookie()
    state: tuple[SeenIds, Cookie] = pickle.loads(packed)
    return state


def _pack(own: Profile) -> bytes:
    return pickle.dumps(own, protocol=pickle.HIGHEST_PROTOCOL)


def _unpack_record(packed: bytes, contact: str) -> Profile:
    """A contact key's own record as packed (`FRESH`: a new one)."""
    if packed == FRESH:
        return Profile(contact)
    own: Profile = pickle.loads(packed)
    return own


class Reorder(StatefulBatchLogic[Sequenced | Progress, Any, bytes]):
    """Per worker key: hold (key, value) items until every upstream sender's progress has
    passed them, then release them in (receive time, id, person) order, followed by this
    worker's own progress for the next step. At the end of input everything left is
    released."""

    def __init__(
        self,
        name: str,
        senders: frozenset[str],
        on_progress: Callable[[int], None],
        resume: bytes | None,
    ) -> None:
        self._name = name
        self._on_progress = on_progress
        if resume is not None:
            self._restore(pickle.loads(resume))
        else:
            self._buffer, self._watermarks = ReorderBuffer(), Watermarks(senders)
            self._worker, self._latest = 0, -1

    def on_batch(self, values: list[Sequenced | Progress]) -> tuple[Iterable[Any], bool]:
        released: list[Any] = []
        for value in values:
            if isinstance(value, Progress):
                self._watermarks.advance(value)
                self._worker = value.to
            else:
                self._latest = max(self._latest, value.order[0])
                released += self._follow(self._buffer.push(value.order, value.item))
        watermark = self._watermarks.now()
        if watermark > self._buffer.released_to:
            released += self._follow(self._buffer.release(watermark))
            self._on_progress(watermark)
            released.append(Progress(f"{self._name}@{self._worker}", watermark, self._worker))
        return released, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        self._on_progress(self._latest)
        return self._follow(self._buffer.release(END_OF_INPUT)), StatefulBatchLogic.RETAIN

    def _follow(self, released: list[Any]) -> list[Any]:
        """What released items become (themselves, here)."""
        return released

    def _restore(self, state: tuple[Any, ...]) -> None:
        self._buffer, self._watermarks, self._worker, self._latest = state

    def _state(self) -> tuple[Any, ...]:
        return (self._buffer, self._watermarks, self._worker, self._latest)

    def snapshot(self) -> bytes:
        return pickle.dumps(self._state(), protocol=pickle.HIGHEST_PROTOCOL)


class OrderSignals(Reorder):
    """The reorder step of contacts' signals, which also applies trusted merges and forgets
    in stream order: every worker holds the whole contact graph and updates it at the same
    point of the stream, so a contact key's lead is the same on every worker. Each released
    signal goes on with its lead; a merge tells each moved contact key of this worker to
    rejoin, a forget each erased one to drop its record.

    A cookie linked to a contact before that contact was forgotten is anonymous again: its
    signals are scored here as a fresh anonymous visitor until it names someone (rare, so
    these few histories live in this worker's state)."""

    def __init__(
        self,
        senders: frozenset[str],
        rules: IdentityRules,
        workers: int,
        resume: bytes | None,
    ) -> None:
        self._rules = rules
        self._workers = workers
        self._graph = ContactGraph()
        # Fingerprints of forgotten contact keys (not the keys) -> where they were forgotten.
        self._forgotten: dict[int, Position] = {}
        # (Cookie, the contact a forget took it from) -> what the cookie did since.
        self._unlinked: dict[tuple[str, str], Profile] = {}
        # (Cookie, contact) linked afresh after a forget -> where, and how it was named.
        self._relinked: dict[tuple[str, str], tuple[Position, str]] = {}
        super().__init__("signals", senders, _ignore, resume)

    def _follow(self, released: list[Any]) -> list[Any]:
        out: list[Any] = []
        for key, value in released:
            if isinstance(value, Merge):
                move = self._graph.merge(value.loser, value.winner)
                if move is not None:
                    mine = self._mine(move.members)
                    out += [(member, Rejoin(move, member, value.signal)) for member in mine]
            elif isinstance(value, Forget):
                out += self._forget(value)
            else:
                out += self._route(key, value)
        return out

    def _mine(self, members: Iterable[str]) -> list[str]:
        return [m for m in members if worker_of(m, self._workers) == self._worker]

    def _forget(self, forget: Forget) -> list[Any]:
        lead, members = self._graph.forget(forget.contact)
        for member in members:
            self._forgotten[fingerprint(member)] = position(forget.signal)
        erased = set(members)
        self._relinked = {k: v for k, v in self._relinked.items() if k[1] not in erased}
        return [(member, Erase(lead, member, forget.signal)) for member in self._mine(members)]

    def _route(self, contact: str, item: ToContact) -> list[Any]:
        """A contact's signal goes on to its lead, unless its cookie was linked to a contact
        forgotten since: then it is anonymous until it names someone (a fresh link)."""
        signal, cookie = item.signal, item.signal["anon_id"]
        if not self._forgotten or cookie is None or item.linked_at is None:
            return [self._for_lead(contact, item)]
        linked_to = item.previous or contact
        relinked = self._relinked.get((cookie, linked_to))
        linked_at = item.linked_at if relinked is None else max(item.linked_at, relinked[0])
        forgotten_at = self._forgotten.get(fingerprint(linked_to))
        if forgotten_at is not None and linked_at < forgotten_at:
            how = how_recognized(signal)
            if item.previous is not None:
                # Named by someone else on a shared device: a fresh link to them.
                self._relinked[(cookie, contact)] = (position(signal), how)
                return [self._for_lead(contact, replace(item, how=how))]
            if contact_key(signal["user_id"], signal["email"]) != contact:
                return [self._anonymous((cookie, contact), signal)]
            # It names the forgotten contact again: a fresh link, with what it did since.
            history = self._unlinked.pop((cookie, contact), None)
            self._relinked[(cookie, contact)] = (position(signal), how)
            gone = [] if history is None else [_gone(history.person)]
            return [*gone, self._for_lead(contact, replace(item, how=how, history=history))]
        if item.previous is None and relinked is not None and item.linked_at <= relinked[0]:
            # The identify step still knows the link the forget undid: say how it was renewed.
            item = replace(item, how=relinked[1])
        return [self._for_lead(contact, item)]

    def _for_lead(self, contact: str, item: ToContact) -> tuple[str, ForLead]:
        return contact, ForLead(self._graph.root(contact), item)

    def _anonymous(self, unlinked: tuple[str, str], signal: Envelope) -> tuple[str, ProfileWrite]:
        rules, now = self._rules, signal["ts"]
        # Idle ones are forgotten after the anonymous TTL, as in the identify step.
        self._unlinked = {
            k: h for k, h in self._unlinked.items() if now - h.last_seen <= rules.anonymous_ttl_ms
        }
        history = self._unlinked.setdefault(unlinked, Profile(anonymous_person(unlinked[0])))
        apply_signal(history, signal, rules.model)
        write = anonymous_write(history, rules.model)
        return write.person, write

    def _restore(self, state: tuple[Any, ...]) -> None:
        super()._restore(state[:-4])
        self._graph, self._forgotten, self._unlinked, self._relinked = state[-4:]

    def _state(self) -> tuple[Any, ...]:
        return (*super()._state(), self._graph, self._forgotten, self._unlinked, self._relinked)


class ContactRecord(StatefulBatchLogic[ForLead | Rejoin | Erase | Progress, Any, bytes]):
    """Per contact key: keep the key's own record (`leads.record`) and pass each signal on to
    its lead, in stream order; when a trusted merge moves the key to another lead, send the
    record there (and, from the old lead's own key, tell the old lead it is gone); when a
    forget erases it, drop it (the lead's own key tells the lead). The record is kept
    packed between batches, so what is sent is a copy as of the merge. Progress markers
    pass straight through, behind the data."""

    __slots__ = ("_model", "_packed")

    def __init__(self, model: ScoringModel, resume: bytes | None) -> None:
        self._model = model
        self._packed = resume if resume is not None else FRESH

    def on_batch(
        self, values: list[ForLead | Rejoin | Erase | Progress]
    ) -> tuple[Iterable[Any], bool]:
        out: list[Any] = []
        own: Profile | None = None
        for value in values:
            if isinstance(value, Progress):
                out.append(value)
            elif isinstance(value, ForLead):
                if own is None and self._packed == FRESH:
                    metrics.CONTACT_RECORDS.inc()
                own = own or _unpack_record(self._packed, value.item.person)
                item = record(own, value.item, self._model)
                order = signal_order(item.signal, item.person)
                out.append((value.lead, Sequenced(order, (value.lead, replace(value, item=item)))))
            elif isinstance(value, Rejoin):
                out += self._rejoin(value, own)
            else:
                if own is not None or self._packed != FRESH:
                    metrics.CONTACT_RECORDS.dec()
                own, self._packed = None, FRESH
                if value.member == value.lead:
                    out.append(_leave(value.lead, value.signal, forgotten=True))
        if own is not None:
            self._packed = _pack(own)
        retain = self._packed != FRESH
        return out, StatefulBatchLogic.RETAIN if retain else StatefulBatchLogic.DISCARD

    def _rejoin(self, rejoin: Rejoin, own: Profile | None) -> list[Any]:
        move, member, merge = rejoin.move, rejoin.member, rejoin.merge
        if own is not None:
            self._packed = _pack(own)
        join = Join(move.new_root, member, self._packed or None, merge)
        out = [(move.new_root, Sequenced(merge_order(merge, member), (move.new_root, join)))]
        if member == move.old_root:
            out.append(_leave(member, merge, forgotten=False))
        return out

    def snapshot(self) -> bytes:
        return self._packed


def _leave(lead: str, signal: Envelope, *, forgotten: bool) -> tuple[str, Sequenced]:
    """Tell lead `lead` to go (merged away or forgotten), first at its point of the stream."""
    return lead, Sequenced(merge_order(signal), (lead, Dissolve(signal, forgotten)))


class ScoreLead(StatefulBatchLogic[LeadInput | Progress, LeadUpdate | Progress, bytes]):
    """Per lead: absorb linked histories, score each signal, raise alerts; fold in the
    records of contact keys a trusted merge brings, and leave when merged into another. A
    sales-ready lead that decays out of it cools once the event clock has passed that moment
    by the configured lateness (so a late signal from before it can still count). Progress
    markers pass straight through, behind the updates."""

    __slots__ = ("_clock", "_lateness", "_model", "_profile")

    def __init__(self, model: ScoringModel, clock: EventClock, resume: bytes | None) -> None:
        self._model = model
        self._clock = clock
        self._lateness = int(model.alerts.late_after_ms)
        self._profile: Profile | None = pickle.loads(resume) if resume is not None else None

    def on_batch(
        self, values: list[LeadInput | Progress]
    ) -> tuple[Iterable[LeadUpdate | Progress], bool]:
        out: list[LeadUpdate | Progress] = []
        for value in values:
            if isinstance(value, Progress):
                out.append(value)
            elif isinstance(value, ForLead):
                signal = value.item.signal
                out += update_lead(self._lead(value.lead, signal), value.item, self._model)
                lag = time.time() - signal["received_at"] / 1000
                metrics.LAG_SECONDS.observe(max(0.0, lag))
            elif isinstance(value, Join):
                out += self._join(value)
            elif self._profile is not None:
                (metrics.FORGETS if value.forgotten else metrics.IDENTITY_MERGES).inc()
                order = merge_order(value.signal)
                out.append(dissolve(self._profile, value.signal, self._model, order))
                self._profile = None
                metrics.CONTACTS.dec()
        retain = self._profile is not None
        return out, StatefulBatchLogic.RETAIN if retain else StatefulBatchLogic.DISCARD

    def _lead(self, key: str, first: Envelope) -> Profile:
        if self._profile is None:
            self._profile = Profile(key, since=first["received_at"])
            metrics.CONTACTS.inc()
        return self._profile

    def _join(self, join: Join) -> list[LeadUpdate]:
        if join.own is None and self._profile is None:
            return []  # nothing known on either side yet
        own = None if join.own is None else _unpack_record(join.own, join.member)
        order = merge_order(join.merge, join.member)
        return fold_in(self._lead(join.lead, join.merge), own, join.merge, self._model, order)

    def notify_at(self) -> datetime | None:
        # Bytewax wakes a key on the wall clock, and only this key's own activity moves it.
        # Live, the event clock runs at wall speed; in a replay it runs faster. So wake at
        # the expected moment, but at least every COOLING_CHECK to look at the event clock.
        due = self._cooling_due()
        if due is None:
            return None
        return min(self._clock.wall_time_when(due), datetime.now(tz=UTC) + COOLING_CHECK)

    def on_notify(self) -> tuple[Iterable[LeadUpdate], bool]:
        return self._cool_if_clock_passed(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[LeadUpdate], bool]:
        return self._cool_if_clock_passed(), StatefulBatchLogic.RETAIN

    def _cool_if_clock_passed(self) -> list[LeadUpdate]:
        due = self._cooling_due()
        if self._profile is None or due is None or self._clock.now() < due:
            return []
        profile = self._profile
        assert profile.cooling_at is not None
        order = (due, due, "", profile.person)
        cooled = cool_if_due(profile, profile.cooling_at, self._model, order)
        return [cooled] if cooled else []

    def _cooling_due(self) -> int | None:
        if self._profile is None or self._profile.cooling_at is None:
            return None
        return self._profile.cooling_at + self._lateness

    def snapshot(self) -> bytes:
        return pickle.dumps(self._profile, protocol=pickle.HIGHEST_PROTOCOL)


class RollupAccount(StatefulBatchLogic[LeadUpdate, dict[str, Any], bytes]):
    """Per account: sum its contacts' engagement and alert when the account surges."""

    __slots__ = ("_account", "_rule")

    def __init__(self, model: ScoringModel, resume: bytes | None) -> None:
        self._rule = model.alerts.account_surge
        self._account: Account = pickle.loads(resume) if resume is not None else Account()

    def on_batch(self, values: list[LeadUpdate]) -> tuple[Iterable[dict[str, Any]], bool]:
        alerts = []
        for update in values:
            if update.gone:
                leave(self._account, update.view["person"])
            elif alert := roll_up(self._account, update.view, self._rule):
                alerts.append(alert)
        return alerts, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self._account, protocol=pickle.HIGHEST_PROTOCOL)


def _is_rejected(item: Envelope | Progress | Rejected) -> TypeGuard[Rejected]:
    return isinstance(item, Rejected)


def _is_person(item: Envelope | Progress | Rejected) -> bool:
    """Machine traffic (bots, link scanners, mail proxies) is counted, never scored."""
    if isinstance(item, Progress | Rejected) or item["machine"] is None:
        return True
    metrics.MACHINE_SIGNALS.labels(item["machine"]).inc()
    return False


def _contact_of(signal: Envelope) -> str:
    person = contact_key(signal["user_id"], signal["email"])
    assert person is not None, "decode guarantees an id"
    return person


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
    account = value.view["account"]
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
) -> Stream[tuple[str, Any]]:
    """Step `order_<name>`: (key, Sequenced) items and progress markers in; the items out in
    stream order, keyed by their own key, each worker's followed by its progress."""
    routed = op.flat_map(f"to_order_{name}", items, lambda item: _to_reorder(item, workers))
    ordered = op.stateful_batch(f"order_{name}", routed, reorder)
    return op.map(f"key_{name}", ordered, lambda kv: _rekey(kv[1], workers))


def _anonymous_writes(model: ScoringModel, outcome: Outcome) -> list[ProfileWrite]:
    writes: list[ProfileWrite] = []
    if outcome.moved_from is not None:
        writes.append(ProfileWrite(outcome.moved_from, None))
    if outcome.anonymous is not None:
        writes.append(anonymous_write(outcome.anonymous, model))
    return writes


def anonymous_write(history: Profile, model: ScoringModel) -> ProfileWrite:
    """An anonymous visitor's view for the read model."""
    view = profile_view(history, assess(history, history.last_seen, model), model)
    return ProfileWrite(history.person, view)


def _gone(person: str) -> tuple[str, ProfileWrite]:
    """An anonymous profile that moved into a contact, leaving the read model."""
    return person, ProfileWrite(person, None)


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
    dlq_sink: Sink[Any] = dead_letters or ReliableKafkaSink(settings.brokers, settings.dlq_topic)
    op.output("dlq_out", op.map("dead_letter", invalid.trues, dead_letter), dlq_sink)

    people = op.filter("drop_machines", invalid.falses, _is_person)
    keyed = op.flat_map("key_signal", people, lambda item: _keyed_signal(item, workers))
    rules = IdentityRules(
        model, clock, int(settings.dedupe_window_s * 1000), int(settings.anonymous_ttl_s * 1000)
    )
    outcomes = op.stateful_batch("identify", keyed, lambda r: Identify(rules, r))

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
    )
    # Cookies anonymous again after a forget are scored there: their views go to Redis.
    unlinked = op.branch("split_unlinked_views", signals, _is_profile_write)
    records = op.stateful_batch(
        "record_contact", unlinked.falses, lambda r: ContactRecord(model, r)
    )

    # A lead's signals come from each of its contact keys (after merges), on different
    # workers: the same again. The event clock is what this step has released.
    record_senders = frozenset(f"signals@{w}" for w in every_worker)
    for_leads = _in_order(
        "leads",
        op.flat_map("for_leads", records, lambda kv: [kv[1]]),
        lambda r: Reorder("leads", record_senders, clock.observe, r),
        workers,
    )
    scored = op.stateful_batch("score", for_leads, lambda r: ScoreLead(model, clock, r))
    lead_updates: Stream[LeadUpdate] = op.flat_map("lead_updates", scored, _data)

    # An account's contacts are scored on different workers: the same again.
    lead_senders = frozenset(f"leads@{w}" for w in every_worker)
    account_updates = _in_order(
        "accounts",
        op.flat_map("account_updates", scored, _account_updates),
        lambda r: Reorder("accounts", lead_senders, _ignore, r),
        workers,
    )
    # Progress ends here: nothing downstream of the account rollup waits on it.
    account_updates = op.filter("updates_only", account_updates, _is_data)
    surges = op.stateful_batch("rollup_account", account_updates, lambda r: RollupAccount(model, r))

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
        load_routing(settings.config_dir / "routing.toml"),
    )
    op.output("profiles_out", writes, redis_sink)

    raised = op.merge(
        "alerts",
        op.flat_map("lead_alerts", lead_updates, lambda u: u.alerts),
        op.map("account_alerts", surges, lambda kv: kv[1]),
    )
    alerts_sink: Sink[Any] = alerts or ReliableKafkaSink(settings.brokers, settings.alerts_topic)
    op.output("alerts_out", op.map("alert_message", raised, _alert_message), alerts_sink)
    return flow


def _ignore(_: int) -> None:
    """A reorder step whose progress nothing else needs."""
