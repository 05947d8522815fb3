"""Steps `record_contact` (per contact key) and `score` (per lead)."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulBatchLogic

from config.scoring import ScoringModel
from dataflows import metrics
from dataflows.clock import EventClock
from dataflows.compact import FRESH, pack
from dataflows.leads import LeadUpdate, cool_if_due, dissolve, fold_in, record, update_lead
from dataflows.merges import Dissolve, Erase, ForLead, Join, Rejoin, merge_order
from dataflows.ordering import Progress, Sequenced, signal_order
from dataflows.profile import Profile
from tracking.envelope import Envelope

# What the score step gets for a lead (and progress markers).
LeadInput = ForLead | Join | Dissolve
COOLING_CHECK = timedelta(seconds=30)


def _unpack_record(packed: bytes, contact: str) -> Profile:
    """A contact key's own record as packed (`FRESH`: a new one)."""
    if packed == FRESH:
        return Profile(contact)
    own: Profile = pickle.loads(packed)
    return own


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
            self._packed = pack(own)
        retain = self._packed != FRESH
        return out, StatefulBatchLogic.RETAIN if retain else StatefulBatchLogic.DISCARD

    def _rejoin(self, rejoin: Rejoin, own: Profile | None) -> list[Any]:
        move, member, merge = rejoin.move, rejoin.member, rejoin.merge
        if own is not None:
            self._packed = pack(own)
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
        return pack(self._profile)
