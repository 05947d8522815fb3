"""Observation points: each lead at some ages after its first profile, with its features as
the dataflow had them at that moment and whether the outcome followed within the window.
Pure.

Features come from the lead's last view written by that moment (only signals before it),
each engagement contribution decayed on to the moment with the dataflow's own `decay`; a
fit rule that matched counts 1. A lead already past the outcome at the moment, or one
whose window runs past the end of the history, gives no observation there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backtests.leads import LeadRecord
from dataflows.rules.scoring import decay


@dataclass(frozen=True, slots=True)
class Observation:
    """One lead at one moment: its features by rule label, and the label."""

    person: str
    at: int
    features: dict[str, float]
    reached: bool


def features_at(
    view: Mapping[str, Any], at: int, half_lives: Mapping[str, float]
) -> dict[str, float]:
    """A view's contributions as features at event time `at` (ms).

    >>> view = {"as_of": 0, "contributions": [
    ...     {"kind": "engagement", "label": "pricing", "points": 2.0},
    ...     {"kind": "fit", "label": "VP", "points": 1.0}]}
    >>> features_at(view, 86_400_000, {"pricing": 86_400_000})
    {'pricing': 1.0, 'VP': 1.0}
    """
    features: dict[str, float] = {}
    elapsed = at - int(view["as_of"])
    for part in view.get("contributions") or []:
        label, points = part["label"], float(part["points"])
        if part["kind"] == "engagement" and label in half_lives:
            points = decay(points, elapsed, half_lives[label])
        features[label] = features.get(label, 0.0) + points
    return features


def observations(
    leads: Mapping[str, LeadRecord],
    ages_ms: tuple[int, ...],
    *,
    outcome: str,
    within_ms: int,
    end_ms: int,
    half_lives: Mapping[str, float],
) -> list[Observation]:
    """Every lead at every age it reached in time to be judged, oldest moment first."""
    found = []
    for person, lead in leads.items():
        reached_at = lead.reached.get(outcome)
        for age in ages_ms:
            at = lead.first_ms + age
            if at + within_ms > end_ms or (reached_at is not None and reached_at <= at):
                continue
            view = lead.at_ages[age]
            reached = reached_at is not None and reached_at <= at + within_ms
            found.append(Observation(person, at, features_at(view, at, half_lives), reached))
    found.sort(key=lambda o: (o.at, o.person))
    return found
