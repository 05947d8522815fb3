"""Step `record_contact`, per contact key: keep the key's own record and pass each signal
on to its lead, in stream order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from bytewax.operators import StatefulBatchLogic
from prometheus_client import Gauge

from contracts.envelope import Envelope
from dataflows.guard import apply_packed
from dataflows.io import metrics
from dataflows.models import Models
from dataflows.ordering.buffer import Sequenced
from dataflows.ordering.operator import DomainStep
from dataflows.rules.leads import record
from dataflows.rules.merges import Dissolve, Erase, ForLead, Join, Rejoin, merge_order
from dataflows.rules.positions import signal_order
from dataflows.rules.profile import Profile
from dataflows.state import FRESH, pack, unpack


class RecordContact(DomainStep[ForLead | Rejoin | Erase, tuple[str, Sequenced]]):
    """Per contact key: keep the key's own record (`leads.record`) and pass each signal on to
    its lead, in stream order; when a trusted merge moves the key to another lead, send the
    record there (and, from the old lead's own key, tell the old lead it is gone); when a
    forget erases it, drop it (the lead's own key tells the lead). The record is kept
    packed between batches, so what is sent is a copy as of the merge."""

    __slots__ = ("_models", "_packed")

    def __init__(self, models: Models, resume: bytes | None) -> None:
        self._models = models
        self._packed = resume if resume is not None else FRESH

    def on_items(self, items: list[ForLead | Rejoin | Erase]) -> tuple[Iterable[Any], bool]:
        before = self._packed
        out, self._packed, _ = apply_packed(
            "record_contact", before, items, unpack_own, self._apply
        )
        count_key(metrics.CONTACT_RECORDS, before != FRESH, self._packed != FRESH)
        retain = self._packed != FRESH
        return out, StatefulBatchLogic.RETAIN if retain else StatefulBatchLogic.DISCARD

    def _apply(
        self, own: Profile | None, value: ForLead | Rejoin | Erase
    ) -> tuple[Profile | None, list[Any]]:
        if isinstance(value, ForLead):
            own = own or Profile(value.item.person)
            model = self._models.of(value.item.signal.get("model", ""))
            item = record(own, value.item, model)
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


def unpack_own(packed: bytes) -> Profile | None:
    own: Profile | None = None if packed == FRESH else unpack(packed)
    return own


def count_key(gauge: Gauge, had: bool, has: bool) -> None:
    """Keys held by a step: one more when a key's state began, one less when it ended."""
    if has and not had:
        gauge.inc()
    elif had and not has:
        gauge.dec()


def _leave(lead: str, signal: Envelope, *, forgotten: bool) -> tuple[str, Sequenced]:
    """Tell lead `lead` to go (merged away or forgotten), first at its point of the stream."""
    return lead, Sequenced(merge_order(signal), (lead, Dissolve(signal, forgotten)))
