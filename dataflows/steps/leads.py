"""Steps `record_contact` (per contact key) and `score` (per lead)."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulBatchLogic
from prometheus_client import Gauge

from config.scoring import ScoringModel
from dataflows import metrics
from dataflows.clock import EventClock
from dataflows.compact import FRESH, pack, pack_or_fresh
from dataflows.guard import Failure, apply_each, apply_packed, failure
from dataflows.leads import LeadUpdate, cool_if_due, dissolve, fold_in, record, update_lead
from dataflows.merges import Dissolve, Erase, ForLead, Join, Rejoin, merge_order
from dataflows.ordering import Progress, Sequenced, signal_order
from dataflows.profile import Profile
from tracking.envelope import Envelope

# What the score step gets for a lead (and progress markers).
LeadInput = ForLead | Join | Dissolve
COOLING_CHECK = timedelta(seconds=30)


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
        before = self._packed
        out, self._packed, _ = apply_packed(
            "record_contact", before, values, _unpack_own, self._apply
        )
        _count_key(metrics.CONTACT_RECORDS, before != FRESH, self._packed != FRESH)
        retain = self._packed != FRESH
        return out, StatefulBatchLogic.RETAIN if retain else StatefulBatchLogic.DISCARD

    def _apply(
        self, own: Profile | None, value: ForLead | Rejoin | Erase
    ) -> tuple[Profile | None, list[Any]]:
        if isinstance(value, ForLead):
            own = own or Profile(value.item.person)
            item = record(own, value.item, self._model)
            order = signal_order(item.signal, item.person)
            return own, [(value.lead, Sequenced(order, (value.lead, replace(value, item=item))))]
        if isinstance(value, Rejoin):
            return own, _rejoin(value, own)
        leave = [_leave(value.lead, value.signal, forgotten=True)]
        return None, leave if value.member == value.lead else []

    def snapshot(self) -> bytes:
        return self._packed


def _rejoin(rejoin: Rejoin, own: Profile | None) -> list[Any]:
    """A trusted merge moved this contact key to another lead: send it its record (a copy
    as of the merge)."""
    move, member, merge = rejoin.move, rejoin.member, rejoin.merge
    join = Join(move.new_root, member, None if own is None else pack(own), merge)
    out = [(move.new_root, Sequenced(merge_order(merge, member), (move.new_root, join)))]
    if member == move.old_root:
        out.append(_leave(member, merge, forgotten=False))
    return out


def _unpack_own(packed: bytes) -> Profile | None:
    own: Profile | None = None if packed == FRESH else pickle.loads(packed)
    return own


def _count_key(gauge: Gauge, had: bool, has: bool) -> None:
    """Keys held by a step: one more when a key's state began, one less when it ended."""
    if has and not had:
        gauge.inc()
    elif had and not has:
        gauge.dec()


def _leave(lead: str, signal: Envelope, *, forgotten: bool) -> tuple[str, Sequenced]:
    """Tell lead `lead` to go (merged away or forgotten), first at its point of the stream."""
    return lead, Sequenced(merge_order(signal), (lead, Dissolve(signal, forgotten)))


class ScoreLead(StatefulBatchLogic[LeadInput | Progress, LeadUpdate | Progress | Failure, bytes]):
    """Per lead: absorb linked histories, score each signal, raise alerts; fold in the
    records of contact keys a trusted merge brings, and leave when merged into another. A
    sales-ready lead that decays out of it cools once the event clock has passed that moment
    by the configured lateness (so a late signal from before it can still count). Progress
    markers pass straight through, behind the updates. A signal whose rules raise is rolled
    back (`dataflows/guard.py`) to the lead packed before its batch."""

    __slots__ = ("_clock", "_model", "_profile", "_saved")

    def __init__(self, model: ScoringModel, clock: EventClock, resume: bytes | None) -> None:
        self._model = model
        self._clock = clock
        self._profile = None if resume is None else _unpack_own(resume)
        # The lead packed as it is now, when known (a snapshot): what a batch that fails
        # rolls back to, without packing it again.
        self._saved: bytes | None = resume

    def on_batch(
        self, values: list[LeadInput | Progress]
    ) -> tuple[Iterable[LeadUpdate | Progress | Failure], bool]:
        existed = self._profile is not None
        before: bytes = FRESH

        def start() -> Profile | None:
            nonlocal before
            before = self._saved if self._saved is not None else pack_or_fresh(self._profile)
            return self._profile

        def restore() -> Profile | None:
            return _unpack_own(before)

        out, touched, profile = apply_each("score", values, start, restore, self._apply)
        if touched:
            self._profile, self._saved = profile, None
            _count_key(metrics.CONTACTS, existed, profile is not None)
        retain = self._profile is not None
        return out, StatefulBatchLogic.RETAIN if retain else StatefulBatchLogic.DISCARD

    def _apply(
        self, profile: Profile | None, value: LeadInput
    ) -> tuple[Profile | None, list[LeadUpdate]]:
        model = self._model
        if isinstance(value, ForLead):
            signal = value.item.signal
            profile = profile or Profile(value.lead, since=signal["received_at"])
            updates = update_lead(profile, value.item, model)
            metrics.LAG_SECONDS.observe(max(0.0, time.time() - signal["received_at"] / 1000))
            return profile, updates
        if isinstance(value, Join):
            if value.own is None and profile is None:
                return None, []  # nothing known on either side yet
            own = _unpack_own(value.own or FRESH)
            profile = profile or Profile(value.lead, since=value.merge["received_at"])
            order = merge_order(value.merge, value.member)
            return profile, fold_in(profile, own, value.merge, model, order)
        if profile is None:
            return None, []
        (metrics.FORGETS if value.forgotten else metrics.IDENTITY_MERGES).inc()
        return None, [dissolve(profile, value.signal, model, merge_order(value.signal))]

    def notify_at(self) -> datetime | None:
        # Bytewax wakes a key on the wall clock, and only this key's own activity moves it.
        # Live, the event clock runs at wall speed; in a replay it runs faster. So wake at
        # the expected moment, but at least every COOLING_CHECK to look at the event clock.
        due = self._cooling_due()
        if due is None:
            return None
        return min(self._clock.wall_time_when(due), datetime.now(tz=UTC) + COOLING_CHECK)

    def on_notify(self) -> tuple[Iterable[LeadUpdate | Progress | Failure], bool]:
        return self._cool_if_clock_passed(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[LeadUpdate | Progress | Failure], bool]:
        return self._cool_if_clock_passed(), StatefulBatchLogic.RETAIN

    def _cool_if_clock_passed(self) -> list[LeadUpdate | Progress | Failure]:
        due = self._cooling_due()
        if self._profile is None or due is None or self._clock.now() < due:
            return []
        profile = self._profile
        assert profile.cooling_at is not None
        order = (due, due, "", profile.person)
        saved = self._saved if self._saved is not None else pack(profile)
        try:
            cooled = cool_if_due(profile, profile.cooling_at, self._model, order)
        except Exception as error:
            restored = _unpack_own(saved)
            assert restored is not None
            restored.cooling_at = None  # not tried again: the lead's next signal decides
            self._profile, self._saved = restored, None
            return [failure("score", error, None)]
        self._saved = None
        return [cooled] if cooled else []

    def _cooling_due(self) -> int | None:
        """When (event time) a pending cooling is reported: lateness after it happened."""
        if self._profile is None or self._profile.cooling_at is None:
            return None
        return self._profile.cooling_at + int(self._model.alerts.late_after_ms)

    def snapshot(self) -> bytes:
        if self._saved is None:
            self._saved = pack_or_fresh(self._profile)
        return self._saved
