"""Steps `order_signals`, `order_leads` and `order_accounts`, per worker: put items that
came from several workers back into stream order; `order_signals` also applies trusted
merges and forgets there."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from copy import deepcopy as copy
from dataclasses import replace
from typing import Any

from bytewax.operators import StatefulBatchLogic

from config.scoring import ScoringModel
from dataflows.compact import pack
from dataflows.dedupe import fingerprint
from dataflows.guard import carried, failure
from dataflows.identity import ToContact, anonymous_person
from dataflows.leads import profile_view
from dataflows.merges import ContactGraph, Erase, Forget, ForLead, Merge, Rejoin
from dataflows.ordering import (
    END_OF_INPUT,
    Position,
    Progress,
    ReorderBuffer,
    Sequenced,
    Watermarks,
    position,
)
from dataflows.profile import Profile, apply_signal, assess
from dataflows.sinks import ProfileWrite
from dataflows.steps.identify import IdentityRules
from dataflows.trust import how_recognized
from dataflows.workers import worker_of
from tracking.envelope import Envelope, contact_key


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
        """What released (key, value) items become; one whose rules raise becomes a
        `Failure` for the DLQ, and the others go on."""
        out: list[Any] = []
        for item in released:
            try:
                out += self._follow_one(item)
            except Exception as error:
                out.append((item[0], failure(f"order_{self._name}", error, carried(item[1]))))
        return out

    def _follow_one(self, item: tuple[str, Any]) -> list[Any]:
        """What one released item becomes (itself, here)."""
        return [item]

    def _restore(self, state: tuple[Any, ...]) -> None:
        self._buffer, self._watermarks, self._worker, self._latest = state

    def _state(self) -> tuple[Any, ...]:
        return (self._buffer, self._watermarks, self._worker, self._latest)

    def snapshot(self) -> bytes:
        return pack(self._state())


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
        super().__init__("signals", senders, ignore_progress, resume)

    def _follow_one(self, item: tuple[str, Any]) -> list[Any]:
        key, value = item
        if isinstance(value, Merge):
            move = self._graph.merge(value.loser, value.winner)
            if move is None:
                return []
            return [
                (member, Rejoin(move, member, value.signal)) for member in self._mine(move.members)
            ]
        if isinstance(value, Forget):
            return self._forget(value)
        return self._route(key, value)

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
        # Scored on a copy: a signal whose rules raise leaves the history as it was.
        kept = self._unlinked.get(unlinked)
        history = Profile(anonymous_person(unlinked[0])) if kept is None else copy(kept)
        apply_signal(history, signal, rules.model)
        write = anonymous_write(history, rules.model)
        self._unlinked[unlinked] = history
        return write.person, write

    def _restore(self, state: tuple[Any, ...]) -> None:
        super()._restore(state[:-4])
        self._graph, self._forgotten, self._unlinked, self._relinked = state[-4:]

    def _state(self) -> tuple[Any, ...]:
        return (*super()._state(), self._graph, self._forgotten, self._unlinked, self._relinked)


def anonymous_write(history: Profile, model: ScoringModel) -> ProfileWrite:
    """An anonymous visitor's view for the read model."""
    view = profile_view(history, assess(history, history.last_seen, model), model)
    return ProfileWrite(history.person, view)


def _gone(person: str) -> tuple[str, ProfileWrite]:
    """An anonymous profile that moved into a contact, leaving the read model."""
    return person, ProfileWrite(person, None)


def ignore_progress(_: int) -> None:
    """A reorder step whose progress nothing else needs."""
