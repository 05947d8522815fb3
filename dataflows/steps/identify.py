"""Step `identify`, per broker key (a cookie, else a contact): drop repeated message ids,
then say whose signal it is."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from bytewax.operators import StatefulBatchLogic

from config.scoring import ScoringModel
from contracts.envelope import Envelope, contact_key
from dataflows.guard import Failure, apply_packed
from dataflows.io import metrics
from dataflows.models import Models
from dataflows.ordering.clock import EventClock
from dataflows.ordering.operator import DomainStep
from dataflows.rules.dedupe import SeenIds
from dataflows.rules.identity import (
    Cookie,
    Outcome,
    ToContact,
    anonymous_person,
    idle_after,
    idle_too_long,
    resolve,
)
from dataflows.rules.trust import how_recognized
from dataflows.state import FRESH, pack, unpack

# `Identify._idle_after` of a cookie that is never forgotten (linked, or no history).
_NEVER: Final = -1


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """What every key of the identify step shares: one object, not four fields per key."""

    models: Models
    clock: EventClock

    def model_of(self, signal: Envelope) -> ScoringModel:
        """The model in effect at a signal's place in the log."""
        return self.models.of(signal.get("model", ""))

    def anonymous_ttl_ms(self, cookie: Cookie) -> int:
        """How long an unclaimed cookie may idle (event time) before it is forgotten, by
        the model of its latest signal."""
        model = self.models.lasting(cookie.history.model if cookie.history else "")
        return model.identity.anonymous_ttl_ms


class Identify(DomainStep[Envelope, Outcome | Failure]):
    """Per broker key (a cookie, else a contact): drop repeated message ids, then say whose
    signal it is. A cookie keeps its anonymous history until someone claims it, then routes
    to them; one nobody claimed is forgotten after the anonymous TTL of event time.

    There is one of these per visitor, so the state stays packed (pickled) between batches:
    a few hundred bytes instead of a few kilobytes of live objects, and the snapshot is
    ready-made. (A batch logic, not a `stateful` one: no wrapper object per key either.)"""

    # No per-instance __dict__: these slots are all a visitor costs here.
    __slots__ = ("_counted", "_idle_after", "_packed", "_rules")

    def __init__(self, rules: IdentityRules, resume: bytes | None) -> None:
        self._rules = rules
        self._packed = resume if resume is not None else FRESH
        self._counted = False
        # When the cookie may be forgotten (`_NEVER`: it is not), from a batch until the
        # engine asks (`notify_at`), else None: kept longer, it would be an int (32 bytes)
        # per idle visitor beside the engine's own schedule; the packed state tells again.
        self._idle_after: int | None = None

    def on_items(self, items: list[Envelope]) -> tuple[Iterable[Outcome | Failure], bool]:
        out, self._packed, visitor = apply_packed(
            "identify", self._packed, items, unpack_identity, self._identify, pack=_packed
        )
        if visitor is not None:
            self._idle_after = _idle_after(visitor[1], self._rules)
        return out, StatefulBatchLogic.RETAIN

    def _identify(
        self, state: tuple[SeenIds, Cookie], value: Envelope
    ) -> tuple[tuple[SeenIds, Cookie], list[Outcome]]:
        return state, self._resolve(*state, value)

    def _resolve(self, seen: SeenIds, cookie: Cookie, value: Envelope) -> list[Outcome]:
        rules = self._rules
        model = rules.model_of(value)
        if not seen.first_time(value["id"], value["received_at"], model.identity.dedupe_window_ms):
            metrics.DUPLICATES.inc()
            return []
        anon_id = value["anon_id"]
        if anon_id is None:
            person, how = _contact_of(value), how_recognized(value)
            return [Outcome(to_contact=ToContact(person, value, how))]
        if not self._counted:
            metrics.COOKIES.inc()
            self._counted = True
        if cookie.history is not None and not cookie.history.person:
            cookie.history.person = anonymous_person(anon_id)  # packed without it
        if idle_too_long(cookie, value["ts"], rules.anonymous_ttl_ms(cookie)):
            cookie.history = None  # only an unclaimed cookie goes idle: this is a fresh one
        linked_before = cookie.contact
        outcome = resolve(cookie, anon_id, value, model)
        if cookie.contact != linked_before:
            metrics.IDENTITY_LINKS.labels(cookie.how).inc()
        return [outcome]

    def notify_at(self) -> datetime | None:
        idle_after, self._idle_after = self._when_idle(), None
        return None if idle_after is None else self._rules.clock.wall_time_when(idle_after)

    def on_notify(self) -> tuple[Iterable[Outcome | Failure], bool]:
        return [], self._forget_if_idle()

    def on_eof(self) -> tuple[Iterable[Outcome | Failure], bool]:
        return [], self._forget_if_idle()

    def _forget_if_idle(self) -> bool:
        # The dedupe window is far shorter than the TTL: nothing else is worth keeping.
        idle_after = self._when_idle()
        if idle_after is not None and self._rules.clock.now() > idle_after:
            if self._counted:
                metrics.COOKIES.dec()
            return StatefulBatchLogic.DISCARD
        return StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return self._packed

    def _when_idle(self) -> int | None:
        """When (event time) the cookie may be forgotten; None if it is not."""
        idle_after = self._idle_after
        if idle_after is None:
            idle_after = _idle_after(unpack_identity(self._packed)[1], self._rules)
        return None if idle_after == _NEVER else idle_after


def pack_identity(seen: SeenIds, cookie: Cookie) -> bytes:
    """A visitor's identity state as the identify step keeps it (and snapshots it). The
    cookie's own history goes without its person: the step's key, the anonymous id, says
    who it is, and the step puts it back (a visitor's longest string: 41 bytes of "anon:"
    and a UUID, a million times over)."""
    history = cookie.history
    if history is None:
        return pack((seen, cookie))
    person, history.person = history.person, ""
    try:
        return pack((seen, cookie))
    finally:
        history.person = person


def unpack_identity(packed: bytes) -> tuple[SeenIds, Cookie]:
    """The inverse of `pack_identity` (`FRESH` gives a new state), but for the person of
    the cookie's history: "" until the step names it."""
    if packed == FRESH:
        return SeenIds(), Cookie()
    state: tuple[SeenIds, Cookie] = unpack(packed)
    return state


def _packed(state: tuple[SeenIds, Cookie]) -> bytes:
    return pack_identity(*state)


def _contact_of(signal: Envelope) -> str:
    person = contact_key(signal["user_id"], signal["email"])
    assert person is not None, "decode guarantees an id"
    return person


def _idle_after(cookie: Cookie, rules: IdentityRules) -> int:
    after = idle_after(cookie, rules.anonymous_ttl_ms(cookie))
    return _NEVER if after is None else after
