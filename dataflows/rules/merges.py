"""Trusted merges and forgets of known contacts: which lead each contact key belongs to.
Pure.

Only a trusted source folds one known contact into another: a server-side `alias`
(`previousId` into `userId`) sent with a server write key, such as a CRM's merge. Browsers
never merge. Only a server key may ask to forget a contact (`/v1/forget`): its whole lead
is erased. Both are rare, so every worker of the signal-ordering step keeps the whole
graph and applies each at the same point of the stream: every worker then resolves a
contact key alike, whatever the partitioning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.envelope import FORGET, Envelope, contact_key
from dataflows.rules.identity import ToContact
from dataflows.rules.positions import OrderKey, signal_order


def forgotten_contact(signal: Envelope) -> str | None:
    """The contact key a trusted forget request names, else None."""
    if signal["type"] != FORGET or signal["trust"] != "server":
        return None
    return contact_key(signal["user_id"], signal["email"])


def trusted_merge(signal: Envelope) -> tuple[str, str] | None:
    """(loser, winner) contact keys when `signal` merges two known contacts, else None."""
    if signal["type"] != "alias" or signal["trust"] != "server":
        return None
    loser = signal["props"].get("previous_id")
    winner = contact_key(signal["user_id"], signal["email"])
    if not isinstance(loser, str) or winner is None or loser == winner:
        return None
    return loser, winner


def merge_order(merge: Envelope, member: str | None = None) -> OrderKey:
    """Where a merge's parts stand in the stream: the merge itself and the old lead's exit
    (`member` None) first, then each moved key's record joining (in key order), and only
    then the merge signal's own effect on its contact."""
    return signal_order(merge, "" if member is None else "\x00" + member)


@dataclass(frozen=True, slots=True)
class Move:
    """What one merge changes: every contact key in `members` (in key order) belonged to
    the lead `old_root` and now belongs to the lead `new_root`."""

    old_root: str
    new_root: str
    members: tuple[str, ...]


@dataclass(slots=True)
class ContactGraph:
    """Contact keys grouped by the lead they belong to. A key never merged is its own lead
    and takes no room here.

    >>> graph = ContactGraph()
    >>> graph.merge("bo@acme.com", "u-1")
    Move(old_root='bo@acme.com', new_root='u-1', members=('bo@acme.com',))
    >>> graph.root("bo@acme.com")
    'u-1'
    """

    # Every merged key -> the key of its lead (kept flat: one look-up per signal).
    roots: dict[str, str] = field(default_factory=dict)
    # The key of each lead that absorbed others -> all its keys, itself included, sorted.
    members: dict[str, list[str]] = field(default_factory=dict)

    def root(self, contact: str) -> str:
        """The key of the lead `contact` belongs to."""
        return self.roots.get(contact, contact)

    def merge(self, loser: str, winner: str) -> Move | None:
        """Fold `loser`'s lead into `winner`'s; None when they are one lead under the
        winner's key already. When the winner was folded into the loser before, the lead
        moves to the winner's key (the latest trusted word decides the key)."""
        old_root, new_root = self.root(loser), self.root(winner)
        if old_root == new_root:
            if new_root == winner:
                return None
            new_root = winner
        moved = self.members.pop(old_root, [old_root])
        staying = [] if new_root in moved else self.members.get(new_root, [new_root])
        self.members[new_root] = sorted(staying + moved)
        for member in self.members[new_root]:
            self.roots[member] = new_root
        return Move(old_root, new_root, tuple(sorted(moved)))

    def forget(self, contact: str) -> tuple[str, tuple[str, ...]]:
        """Erase the lead `contact` belongs to: its key and all its keys (in key order),
        each its own lead again from now on."""
        root = self.root(contact)
        members = tuple(self.members.pop(root, [root]))
        for member in members:
            self.roots.pop(member, None)
        return root, members


@dataclass(frozen=True, slots=True)
class Merge:
    """A trusted merge on its way to every worker of the signal-ordering step."""

    loser: str
    winner: str
    signal: Envelope


@dataclass(frozen=True, slots=True)
class Forget:
    """A trusted forget request on its way to every worker of the signal-ordering step."""

    contact: str
    signal: Envelope


@dataclass(frozen=True, slots=True)
class Erase:
    """To contact key `member` of a forgotten lead `lead`: drop your own record (and, the
    lead's own key, tell the lead to go)."""

    lead: str
    member: str
    signal: Envelope


@dataclass(frozen=True, slots=True)
class Rejoin:
    """To contact key `member`, whose lead a merge changed: send your own record to the new
    lead."""

    move: Move
    member: str
    merge: Envelope

    @property
    def signal(self) -> Envelope:
        """The merge that moved it."""
        return self.merge


@dataclass(frozen=True, slots=True)
class Join:
    """A contact key's own record (pickled as it was at the merge), joining lead `lead`."""

    lead: str
    member: str
    own: bytes | None
    merge: Envelope

    @property
    def signal(self) -> Envelope:
        """The merge that moved it."""
        return self.merge


@dataclass(frozen=True, slots=True)
class Dissolve:
    """To a lead folded into another by a merge, or erased by a forget (`signal`): leave
    the read model and your account, drop your state."""

    signal: Envelope
    forgotten: bool = False


@dataclass(frozen=True, slots=True)
class ForLead:
    """A contact's signal with the lead it belongs to at its point of the stream."""

    lead: str
    item: ToContact

    @property
    def signal(self) -> Envelope:
        """The contact's signal."""
        return self.item.signal
