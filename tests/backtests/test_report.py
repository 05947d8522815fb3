"""The figures of a backtest report, on replays made by hand."""

from __future__ import annotations

from typing import Any

import pytest

from backtests.leads import DAY_MS, AlertRecord, LeadRecord
from backtests.replay import Replayed
from backtests.report import (
    Judging,
    differences,
    grade_rank,
    model_report,
    primary_score,
    report_json,
)

JUDGING = Judging("won", within_ms=90 * DAY_MS, at_age_ms=30 * DAY_MS, end_ms=400 * DAY_MS)


def view(person: str, day: float, grade: str = "C3", **fields: Any) -> dict[str, Any]:
    return {
        "person": person,
        "grade": grade,
        "fit": 50.0,
        "engagement": 10.0,
        "sales_ready": False,
        "as_of": int(day * DAY_MS),
        "outcome": None,
        "outcome_at": None,
        **fields,
    }


def lead(person: str, *views: dict[str, Any]) -> LeadRecord:
    record = LeadRecord.first(views[0], (JUDGING.at_age_ms,))
    for v in views[1:]:
        record.add(v, (JUDGING.at_age_ms,))
    return record


def sales_ready(person: str, day: float) -> AlertRecord:
    return AlertRecord(f"{person}-sr", "sales_ready", int(day * DAY_MS), person, "sam", "A1", "")


def replayed(leads: dict[str, LeadRecord], alerts: list[AlertRecord]) -> Replayed:
    return Replayed(leads, alerts, {}, 0.0)


def won(person: str, day: float, grade: str = "A1") -> dict[str, Any]:
    return view(person, day, grade, outcome="won", outcome_at=int(day * DAY_MS))


def test_precision_counts_alerts_followed_by_the_outcome_within_the_window():
    leads = {
        "hit": lead("hit", view("hit", 0), won("hit", 50)),
        "too_late": lead("too_late", view("too_late", 0), won("too_late", 150)),
        "never": lead("never", view("never", 0)),
        "unalerted": lead("unalerted", view("unalerted", 0), won("unalerted", 40)),
        # Alerted too near the end of the data to be judged.
        "recent": lead("recent", view("recent", 0)),
    }
    alerts = [
        sales_ready("hit", 20),
        sales_ready("too_late", 10),
        sales_ready("never", 5),
        sales_ready("recent", 350),
    ]
    outcomes = model_report(replayed(leads, alerts), JUDGING)["outcomes"]
    sales = outcomes["sales_ready"]
    assert (sales["leads_alerted"], sales["judged"], sales["reached_within"]) == (4, 3, 1)
    assert sales["precision"] == pytest.approx(1 / 3)
    assert outcomes["base_rate"] == pytest.approx(3 / 5)
    # Of the three who won, only "hit" was alerted in the 90 days before.
    assert sales["recall"] == pytest.approx(1 / 3)
    assert sales["lead_time_days"]["values"] == [30.0]


def test_ranking_uses_the_scores_at_the_fixed_age_and_never_a_later_outcome():
    leads = {
        # Hot at 30 days, wins later: a positive ranked first.
        "a": lead("a", view("a", 0, "A1"), view("a", 60, "D4"), won("a", 70)),
        "b": lead("b", view("b", 0, "B2"), won("b", 100)),
        "c": lead("c", view("c", 0, "D4")),
        "d": lead("d", view("d", 0, "D3")),
        # Won before its 30th day: already decided, not ranked.
        "e": lead("e", view("e", 0, "D4"), won("e", 10)),
        # Too young at the end of the data to be judged.
        "f": lead("f", view("f", 300, "A1")),
    }
    ranking = model_report(replayed(leads, []), JUDGING)["outcomes"]["ranking"]
    assert (ranking["leads"], ranking["positives"]) == (4, 2)
    assert ranking["auc"]["grade"] == 1.0
    assert ranking["lift_by_decile"][0] == {"decile": 1, "leads": 1, "rate": 1.0, "lift": 2.0}
    assert [r["grade"] for r in ranking["by_grade"]] == ["A1", "B2", "D3", "D4"]


def test_a_probability_ranks_when_the_model_gives_one():
    assert primary_score({"probability": 0.2, "grade": "A1"}) == 0.2
    assert primary_score({"grade": "A4", "engagement": 3}) > primary_score(
        {"grade": "B1", "engagement": 90}
    )
    assert [grade_rank(g) for g in ("A1", "A4", "B1", "D4", "??")] == [15, 12, 11, 0, 0]


def test_differences_name_alerts_added_removed_earlier_and_later_and_grades():
    a = {"x": lead("x", view("x", 0, "A1")), "y": lead("y", view("y", 0, "B2"))}
    b = {"x": lead("x", view("x", 0, "A2")), "y": lead("y", view("y", 0, "B2"))}
    mine = [sales_ready("x", 1), sales_ready("y", 5), sales_ready("new", 3)]
    theirs = [sales_ready("x", 2), sales_ready("y", 4), sales_ready("old", 3)]
    diff = differences(replayed(a, mine), replayed(b, theirs))
    assert [r["subject"] for r in diff["alerts_added"]["first"]] == ["new"]
    assert [r["subject"] for r in diff["alerts_removed"]["first"]] == ["old"]
    assert diff["alerts_earlier"]["first"] == [
        {"kind": "sales_ready", "subject": "x", "hours": -24.0}
    ]
    assert diff["alerts_later"]["first"] == [{"kind": "sales_ready", "subject": "y", "hours": 24.0}]
    assert diff["grades_differ"]["first"] == [{"subject": "x", "candidate": "A1", "current": "A2"}]


def test_grade_mix_counts_each_lead_once_per_day_at_its_latest_grade():
    leads = {
        "x": lead("x", view("x", 0, "C3"), view("x", 0.5, "B2"), view("x", 2, "A1")),
        "y": lead("y", view("y", 1, "D4")),
    }
    mix = model_report(replayed(leads, []), JUDGING)["grade_mix"]
    assert mix == [
        {"day": "1970-01-01", "B2": 1},
        {"day": "1970-01-02", "B2": 1, "D4": 1},
        {"day": "1970-01-03", "A1": 1, "D4": 1},
    ]


def test_the_json_is_stable():
    report = {"b": 1.0, "a": [{"z": None, "y": 2}]}
    assert report_json(report) == report_json(dict(reversed(report.items())))
    assert report_json(report).startswith(b'{\n  "a"')
