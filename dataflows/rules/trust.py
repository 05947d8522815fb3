"""How strongly a signal proves who is behind it, and what that lets it change. Pure.

Strongest first: `server` (a CRM or the site's backend, with a server key), `signed` (a
signed email link, a valid `user_hash`), `form_fill` (a person typed it into a form), then a
plain browser claim (`browser_identify`, or `shared_device` when a claim re-points a
cookie). Write keys are public, so anything below `signed` is only a claim: a weaker source
never overwrites a trait a stronger one set, and only a server source sets a lead's
`owner`, `account`, `lifecycle_stage` or `disqualified_at`.
"""

from __future__ import annotations

from typing import Final

from contracts.alerts import Identity
from contracts.envelope import Envelope

RANKS: Final = {"server": 4, "signed": 3, "form_fill": 2, "browser_identify": 1, "shared_device": 1}
VERIFIED: Final = frozenset({"server", "signed"})
# Traits only a server source may set: who works the lead, which account it counts for,
# and the CRM state that silences alerts (a visitor must not be able to hide from sales).
SERVER_ONLY: Final = frozenset({"owner", "account", "lifecycle_stage", "disqualified_at"})


def how_recognized(signal: Envelope) -> str:
    """How a signal tells who the person is, strongest first: a rep weighs it.

    >>> how_recognized({"trust": "browser", "type": "form_submit"})  # type: ignore[typeddict-item]
    'form_fill'
    """
    if signal["trust"] == "server":
        return "server"
    if signal["trust"] == "signed":
        return "signed"
    if signal["type"] == "form_submit":
        return "form_fill"
    return "browser_identify"


def rank(how: str | None) -> int:
    """A proof's strength (0 for none).

    >>> rank("server") > rank("signed") > rank("form_fill") > rank("browser_identify") > rank(None)
    True
    """
    return RANKS.get(how or "", 0)


def stronger(how: str | None, than: str | None) -> str | None:
    """The stronger of two proofs (the first when they are equal)."""
    return how if rank(how) >= rank(than) else than


def may_set(trait: str, how: str, set_by: str | None) -> bool:
    """Whether a source proven as `how` may set `trait`, last set by a source `set_by`.

    >>> may_set("title", "form_fill", "browser_identify"), may_set("title", "form_fill", "server")
    (True, False)
    >>> may_set("owner", "signed", None)
    False
    """
    if trait in SERVER_ONLY and how != "server":
        return False
    return rank(how) >= rank(set_by)


def is_verified(how: str | None) -> bool:
    """True for a proof nobody can forge with a public write key."""
    return how in VERIFIED


def identity(how: str | None) -> Identity:
    """What an alert tells a rep about who it is: how the person behind its signal was
    recognized, and whether that proof could be forged with a public write key.

    >>> identity("form_fill")
    {'recognized_by': 'form_fill', 'verified': False}
    """
    return {"recognized_by": how, "verified": is_verified(how)}
