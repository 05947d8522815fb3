"""Outcomes: what became of a lead (an opportunity created, won or lost), told by a server
source. Recorded on the profile and kept in the log for backtests and training; never
engagement. Pure.

>>> signal = {"type": "track", "trust": "server", "event": "Opportunity Won",
...           "props": {"amount": 12000}, "ts": 5}
>>> outcome_of(signal)
'won'
>>> outcome_of({**signal, "trust": "browser"}) is None  # anyone can claim a deal
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# Segment-style event names of a CRM's opportunity stages -> the outcome.
OUTCOMES: Final = {
    "Opportunity Created": "created",
    "Opportunity Won": "won",
    "Opportunity Lost": "lost",
}


def outcome_of(signal: Mapping[str, Any]) -> str | None:
    """The outcome a signal reports: a server key's `track` of an opportunity stage."""
    if signal["type"] != "track" or signal["trust"] != "server":
        return None
    return OUTCOMES.get(signal.get("event") or "")


def amount_of(signal: Mapping[str, Any]) -> float | None:
    """The opportunity's amount (`properties.amount`), when it is a plain number."""
    amount = signal["props"].get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return None
    return float(amount) if amount == amount and abs(amount) < 1e15 else None
