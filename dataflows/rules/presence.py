"""Presence and engaged time: who is on the site, on which page, and for how long they
really looked. Pure: no I/O.

Pages running the snippet report engaged time (the page visible, the person active) as
`Page Engaged` every few seconds of it, and `Page Left` when the page closes. What a page
says is a claim: a signal is credited at most the time since the person's previous browser
signal, and never more than `MAX_CREDIT_S`, so no client can buy an hour with one request.

>>> credit({"event": "Page Engaged", "props": {"engaged_seconds": 15}}, 60_000, 75_000)
15.0
>>> credit({"event": "Page Engaged", "props": {"engaged_seconds": 900}}, 60_000, 61_000)
2.0
>>> credit({"event": "Page Engaged", "props": {"engaged_seconds": "a lot"}}, 0, 60_000)
0.0
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any, Final

from config.scoring import DAY_MS, ScoringModel
from contracts.read_model import Presence
from dataflows.rules.scoring import matches, page_path

ENGAGED: Final = "Page Engaged"
LEFT: Final = "Page Left"
ENGAGED_TIME_EVENTS: Final = frozenset({ENGAGED, LEFT})
# The most one report may add: the snippet reports every 15 s of engaged time.
MAX_CREDIT_S: Final = 60.0
# The clock of the previous browser signal and of this one differ by whole seconds at worst.
CLOCK_SLACK_S: Final = 1.0


def is_engaged_time(signal: Mapping[str, Any]) -> bool:
    """A report of engaged time: not an action of its own (no timeline line; only a rule
    that names these events gives it points)."""
    return signal.get("type") == "track" and signal.get("event") in ENGAGED_TIME_EVENTS


def credit(signal: Mapping[str, Any], previous_web: int, ts: int) -> float:
    """The engaged seconds a report is credited: its claim, bounded by the time since the
    person's previous browser signal (`previous_web`, event time ms) and `MAX_CREDIT_S`."""
    claim = signal["props"].get("engaged_seconds")
    if not isinstance(claim, int | float) or isinstance(claim, bool) or not math.isfinite(claim):
        return 0.0
    elapsed = max(0.0, (ts - previous_web) / 1000 + CLOCK_SLACK_S)
    return float(max(0.0, min(claim, MAX_CREDIT_S, elapsed)))


def count_engaged(
    dwell: dict[str, float],
    dwell_days: dict[str, dict[int, float]],
    signal: Mapping[str, Any],
    seconds: float,
    model: ScoringModel,
) -> tuple[str, ...]:
    """Add a report's engaged seconds to every engaged-time key action it matches (this
    visit's counters in `dwell`, per-day ones in `dwell_days`); the ids of those whose
    total crossed their threshold with it."""
    crossed = []
    day = signal["ts"] // DAY_MS
    for action in model.alerts.key_actions:
        if action.engaged_seconds is None or not matches(action.when, signal):
            continue
        if action.over_days is None:
            before = dwell.get(action.id, 0.0)
            dwell[action.id] = before + seconds
        else:
            days = dwell_days.setdefault(action.id, {})
            for old in [d for d in days if d <= day - action.over_days]:
                del days[old]
            before = sum(days.values())
            days[day] = days.get(day, 0.0) + seconds
        if before < action.engaged_seconds <= before + seconds:
            crossed.append(action.id)
    return tuple(crossed)


def presence(
    visit_start: int, last_web: int, page: str, pages: int, engaged: float, left: bool
) -> Presence | None:
    """The person's web visit as the read model shows it (None: never on the site)."""
    if not last_web:
        return None
    return {
        "since": visit_start,
        "last": last_web,
        "page": page,
        "pages": pages,
        "engaged_seconds": round(engaged, 1),
        "left": left,
    }


def path_of(signal: Mapping[str, Any]) -> str:
    """The page a browser signal came from: one shared string per distinct path (a million
    visitors of a site's few hundred pages keep a few hundred strings, not a million;
    interned strings are freed once nothing holds them)."""
    return sys.intern(page_path(signal)[:512])
