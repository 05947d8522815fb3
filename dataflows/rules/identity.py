"""Who is behind a cookie: the pure state transitions of identity resolution. No I/O.

A cookie is anonymous (and keeps its own history) until a signal names a contact; then
its whole history moves into that contact, once, and later signals go to the contact.
A browser claim of a different contact on a linked cookie re-points it (shared device);
it never merges two known contacts. A linked cookie remembers where in the stream it was
linked, so the step that sees the stream in order can tell whether a forget of that
contact came after (the cookie is then anonymous again).
"""

from __future__ import annotations

from dataclasses import dataclass

from config.scoring import ScoringModel
from contracts.envelope import ANONYMOUS_PREFIX, Envelope, contact_key
from dataflows.rules.positions import Position, position
from dataflows.rules.profile import Profile, apply_signal
from dataflows.rules.trust import how_recognized


def anonymous_person(anon_id: str) -> str:
    """The person key of a cookie nobody has claimed yet."""
    return ANONYMOUS_PREFIX + anon_id


@dataclass(slots=True)
class Cookie:
    """The identity state of one anonymous id."""

    contact: str | None = None
    how: str | None = None
    # The cookie's own history while nobody has claimed it.
    history: Profile | None = None
    # Where in the stream the cookie was linked to its contact.
    linked_at: Position | None = None


@dataclass(frozen=True, slots=True)
class ToContact:
    """A signal for a known contact, with the anonymous history to absorb on a new link."""

    person: str
    signal: Envelope
    how: str
    history: Profile | None = None
    # Why a machine made it (an email scanner, by the address's timing), else None.
    machine: str | None = None
    # From a cookie linked before this signal: where it was linked; for a shared device,
    # also the contact it belonged to until this signal.
    linked_at: Position | None = None
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one signal did to a cookie: routed to a contact, or scored anonymously."""

    to_contact: ToContact | None = None
    anonymous: Profile | None = None
    # The anonymous profile that moved into a contact and should disappear from the read model.
    moved_from: str | None = None


def resolve(cookie: Cookie, anon_id: str, signal: Envelope, model: ScoringModel) -> Outcome:
    """Apply one signal of cookie `anon_id`; mutates `cookie` and returns where it went."""
    claimed = contact_key(signal["user_id"], signal["email"])
    if claimed is not None and claimed != cookie.contact:
        return _link(cookie, anon_id, claimed, signal)
    if cookie.contact is not None:
        assert cookie.how is not None
        item = ToContact(cookie.contact, signal, cookie.how, linked_at=cookie.linked_at)
        return Outcome(to_contact=item)
    history = cookie.history or Profile(anonymous_person(anon_id))
    apply_signal(history, signal, model)
    cookie.history = history
    return Outcome(anonymous=history)


def _link(cookie: Cookie, anon_id: str, claimed: str, signal: Envelope) -> Outcome:
    linked_at, cookie.linked_at = cookie.linked_at, position(signal)
    if cookie.contact is not None:
        # Already someone's cookie: re-point it for future signals; the past stays put.
        previous, cookie.contact, cookie.how = cookie.contact, claimed, "shared_device"
        item = ToContact(claimed, signal, "shared_device", linked_at=linked_at, previous=previous)
        return Outcome(to_contact=item)
    history, cookie.history = cookie.history, None
    cookie.contact, cookie.how = claimed, how_recognized(signal)
    moved_from = anonymous_person(anon_id) if history is not None else None
    return Outcome(
        to_contact=ToContact(claimed, signal, cookie.how, history),
        moved_from=moved_from,
    )


def idle_after(cookie: Cookie, ttl_ms: int) -> int | None:
    """The event time after which an anonymous cookie nobody claimed has been idle for more
    than `ttl_ms`, so its history is dropped (a later signal starts afresh); None for a
    linked cookie (kept: it routes to its contact) or one with no history."""
    if cookie.contact is not None or cookie.history is None:
        return None
    return cookie.history.last_seen + ttl_ms


def idle_too_long(cookie: Cookie, now: int, ttl_ms: int) -> bool:
    """True when the cookie has been idle past `idle_after` at event time `now`."""
    after = idle_after(cookie, ttl_ms)
    return after is not None and now > after
