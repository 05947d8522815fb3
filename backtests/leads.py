"""What a backtest keeps of each lead while the replay writes its profile: the profile
views a report needs, not every write. Pure.

>>> ages = (DAY_MS, 7 * DAY_MS)
>>> lead = LeadRecord.first({"person": "dana@acme.com", "grade": "C3", "as_of": 0,
...                          "outcome": None, "outcome_at": None}, ages)
>>> lead.add({"person": "dana@acme.com", "grade": "A1", "as_of": 3 * DAY_MS,
...           "outcome": "won", "outcome_at": 3 * DAY_MS}, ages)
>>> lead.at_ages[DAY_MS]["grade"], lead.at_ages[7 * DAY_MS]["grade"], lead.final["grade"]
('C3', 'A1', 'A1')
>>> lead.reached, lead.daily_grades
({'created': 259200000, 'won': 259200000}, {0: 'C3', 3: 'A1'})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

DAY_MS: Final = 86_400_000


@dataclass(slots=True)
class LeadRecord:
    """One known contact as the replay saw it: its first write's event time, its view at
    each of some ages (the last one written by then), the first time it reached each
    outcome, its grade at the end of each day it changed, and its last view."""

    first_ms: int
    at_ages: dict[int, Mapping[str, Any]]
    final: Mapping[str, Any]
    reached: dict[str, int] = field(default_factory=dict)
    daily_grades: dict[int, str] = field(default_factory=dict)

    @classmethod
    def first(cls, view: Mapping[str, Any], ages_ms: tuple[int, ...]) -> LeadRecord:
        """A lead from its first view, kept at every age (epoch-ms offsets from it)."""
        lead = cls(view["as_of"], dict.fromkeys(ages_ms, view), view)
        lead._note(view)
        return lead

    def add(self, view: Mapping[str, Any], ages_ms: tuple[int, ...]) -> None:
        """A later view of the same lead (in the order the replay wrote them)."""
        for age in ages_ms:
            if view["as_of"] <= self.first_ms + age:
                self.at_ages[age] = view
        self.final = view
        self._note(view)

    def _note(self, view: Mapping[str, Any]) -> None:
        self.daily_grades[view["as_of"] // DAY_MS] = view["grade"]
        outcome, at = view.get("outcome"), view.get("outcome_at")
        if outcome is None or at is None:
            return
        # Any opportunity stage means one was created; the first time each is seen counts.
        for reached in ("created", outcome):
            if reached not in self.reached or at < self.reached[reached]:
                self.reached[reached] = at


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert as a report counts it: who would have been told what, and when."""

    id: str
    kind: str
    ts: int
    subject: str
    rep: str
    grade: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON data."""
        return {
            "id": self.id,
            "kind": self.kind,
            "ts": self.ts,
            "subject": self.subject,
            "rep": self.rep,
            "grade": self.grade,
            "reason": self.reason,
        }
