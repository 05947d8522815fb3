"""What a backtest keeps of each lead while the replay writes its profile: the profile
views a report needs, not every write. Pure.

>>> lead = LeadRecord.first({"person": "dana@acme.com", "grade": "C3", "as_of": 0,
...                          "outcome": None, "outcome_at": None})
>>> lead.add({"person": "dana@acme.com", "grade": "A1", "as_of": 3 * DAY_MS,
...           "outcome": "won", "outcome_at": 3 * DAY_MS}, at_age_ms=DAY_MS)
>>> lead.at_age["grade"], lead.final["grade"], lead.reached, lead.daily_grades
('C3', 'A1', {'created': 259200000, 'won': 259200000}, {0: 'C3', 3: 'A1'})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

DAY_MS: Final = 86_400_000
# The fields of a view a report reads at a lead's fixed age.
SCORE_FIELDS: Final = ("grade", "fit", "engagement", "sales_ready", "probability", "as_of")


@dataclass(slots=True)
class LeadRecord:
    """One known contact as the replay saw it: its first write's event time, its view at a
    fixed age (the last one written by then), the first time it reached each outcome, its
    grade at the end of each day it changed, and its last view."""

    first_ms: int
    at_age: dict[str, Any]
    final: Mapping[str, Any]
    reached: dict[str, int] = field(default_factory=dict)
    daily_grades: dict[int, str] = field(default_factory=dict)

    @classmethod
    def first(cls, view: Mapping[str, Any]) -> LeadRecord:
        """A lead from its first view."""
        lead = cls(view["as_of"], _scores(view), view)
        lead._note(view)
        return lead

    def add(self, view: Mapping[str, Any], *, at_age_ms: int) -> None:
        """A later view of the same lead (in the order the replay wrote them)."""
        if view["as_of"] <= self.first_ms + at_age_ms:
            self.at_age = _scores(view)
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


def _scores(view: Mapping[str, Any]) -> dict[str, Any]:
    return {name: view.get(name) for name in SCORE_FIELDS}


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
