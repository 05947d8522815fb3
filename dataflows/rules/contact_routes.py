"""Where each known contact's signal goes, applied in stream order: the lead its key belongs
to after trusted merges, and what a forget undoes. Pure.

A cookie linked to a contact before that contact was forgotten is anonymous again: its
signals are scored as a fresh anonymous visitor until it names someone (rare, so these few
histories live here). Naming the forgotten contact again is a fresh link that brings what
the cookie did since; being named by someone else on a shared device is a fresh link too.

>>> routes = ContactRoutes()
>>> routes.merge(Merge("bo@acme.com", "u-1", {"id": "m1"}))  # doctest: +ELLIPSIS
[('bo@acme.com', Rejoin(move=Move(old_root='bo@acme.com', new_root='u-1', ...
>>> routes.graph.root("bo@acme.com")
'u-1'
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field, replace

from config.scoring import ScoringModel
from contracts.envelope import Envelope, contact_key
from dataflows.rules.dedupe import fingerprint
from dataflows.rules.identity import ToContact, anonymous_person
from dataflows.rules.merges import ContactGraph, Erase, Forget, ForLead, Merge, Rejoin
from dataflows.rules.positions import Position, position
from dataflows.rules.profile import Profile, apply_signal
from dataflows.rules.trust import how_recognized


@dataclass(frozen=True, slots=True)
class Anonymous:
    """A cookie's visitor as the read model should show it: its history, or gone (None)."""

    person: str
    history: Profile | None


# What a contact's signal, a merge or a forget becomes: (key, what that key is told).
Routed = list[tuple[str, ForLead | Rejoin | Erase | Anonymous]]


@dataclass(slots=True)
class ContactRoutes:
    """The contact graph and what forgets left behind, as one worker of the signal step
    keeps them (every worker applies every merge and forget at the same stream point)."""

    graph: ContactGraph = field(default_factory=ContactGraph)
    # Fingerprints of forgotten contact keys (not the keys) -> where they were forgotten.
    forgotten: dict[int, Position] = field(default_factory=dict)
    # (Cookie, the contact a forget took it from) -> what the cookie did since.
    unlinked: dict[tuple[str, str], Profile] = field(default_factory=dict)
    # (Cookie, contact) linked afresh after a forget -> where, and how it was named.
    relinked: dict[tuple[str, str], tuple[Position, str]] = field(default_factory=dict)

    def merge(self, merge: Merge) -> Routed:
        """Apply a trusted merge: each contact key whose lead it moved is told to rejoin."""
        move = self.graph.merge(merge.loser, merge.winner)
        if move is None:
            return []
        return [(member, Rejoin(move, member, merge.signal)) for member in move.members]

    def forget(self, forget: Forget) -> Routed:
        """Apply a trusted forget: each key of the contact's lead is told to erase itself."""
        lead, members = self.graph.forget(forget.contact)
        for member in members:
            self.forgotten[fingerprint(member)] = position(forget.signal)
        erased = set(members)
        self.relinked = {k: v for k, v in self.relinked.items() if k[1] not in erased}
        return [(member, Erase(lead, member, forget.signal)) for member in members]

    def route(
        self, contact: str, item: ToContact, model: ScoringModel, anonymous_ttl_ms: int
    ) -> Routed:
        """A contact's signal goes on to its lead, unless its cookie was linked to a contact
        forgotten since: then it is anonymous until it names someone (a fresh link)."""
        signal, cookie = item.signal, item.signal["anon_id"]
        if not self.forgotten or cookie is None or item.linked_at is None:
            return [self._for_lead(contact, item)]
        linked_to = item.previous or contact
        relinked = self.relinked.get((cookie, linked_to))
        linked_at = item.linked_at if relinked is None else max(item.linked_at, relinked[0])
        forgotten_at = self.forgotten.get(fingerprint(linked_to))
        if forgotten_at is not None and linked_at < forgotten_at:
            how = how_recognized(signal)
            if item.previous is not None:
                # Named by someone else on a shared device: a fresh link to them.
                self.relinked[(cookie, contact)] = (position(signal), how)
                return [self._for_lead(contact, replace(item, how=how))]
            if contact_key(signal["user_id"], signal["email"]) != contact:
                visitor = self._anonymous((cookie, contact), signal, model, anonymous_ttl_ms)
                return [(visitor.person, Anonymous(visitor.person, visitor))]
            # It names the forgotten contact again: a fresh link, with what it did since.
            history = self.unlinked.pop((cookie, contact), None)
            self.relinked[(cookie, contact)] = (position(signal), how)
            gone: Routed = (
                [] if history is None else [(history.person, Anonymous(history.person, None))]
            )
            return [*gone, self._for_lead(contact, replace(item, how=how, history=history))]
        if item.previous is None and relinked is not None and item.linked_at <= relinked[0]:
            # The identify step still knows the link the forget undid: say how it was renewed.
            item = replace(item, how=relinked[1])
        return [self._for_lead(contact, item)]

    def _for_lead(self, contact: str, item: ToContact) -> tuple[str, ForLead]:
        return contact, ForLead(self.graph.root(contact), item)

    def _anonymous(
        self,
        unlinked: tuple[str, str],
        signal: Envelope,
        model: ScoringModel,
        anonymous_ttl_ms: int,
    ) -> Profile:
        now = signal["ts"]
        # Idle ones are forgotten after the anonymous TTL, as in the identify step.
        self.unlinked = {
            k: h for k, h in self.unlinked.items() if now - h.last_seen <= anonymous_ttl_ms
        }
        # Scored on a copy: a signal whose rules raise leaves the history as it was.
        kept = self.unlinked.get(unlinked)
        history = Profile(anonymous_person(unlinked[0])) if kept is None else deepcopy(kept)
        apply_signal(history, signal, model)
        self.unlinked[unlinked] = history
        return history
