"""What a backtest tells ops: the alerts a model would have sent to whom, how grades moved,
how its `sales_ready` alerts and scores line up with outcomes, and how two models differ.

Everything here is a function of the replay's results: the same input and model give the
same report, byte for byte (`report_json`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import quantiles
from typing import Any, Final

import orjson

from backtests.leads import DAY_MS, AlertRecord, LeadRecord
from backtests.replay import Replayed

FORMAT: Final = 1
LISTED: Final = 100
DECILES: Final = 10
FIT_BANDS: Final = "ABCD"
GRADES: Final = tuple(f + e for f in FIT_BANDS for e in "1234")


@dataclass(frozen=True, slots=True)
class Judging:
    """How outcomes are judged: which outcome, within how long after an alert or after the
    fixed age, and at what age leads are ranked."""

    outcome: str
    within_ms: int
    at_age_ms: int
    end_ms: int


def day(ms: int) -> str:
    """The UTC day of an epoch-ms time.

    >>> day(0)
    '1970-01-01'
    """
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def grade_rank(grade: str | None) -> int:
    """A grade's place from D4 (0) to A1 (15).

    >>> grade_rank("A1"), grade_rank("D4"), grade_rank("B3")
    (15, 0, 9)
    """
    if not grade or len(grade) != 2 or grade[0] not in FIT_BANDS or grade[1] not in "1234":
        return 0
    return (3 - FIT_BANDS.index(grade[0])) * 4 + (4 - int(grade[1]))


def model_report(replayed: Replayed, judging: Judging) -> dict[str, Any]:
    """One model's figures."""
    return {
        "leads": len(replayed.leads),
        "alerts": _alerts(replayed.alerts),
        "grade_mix": _grade_mix(replayed.leads),
        "final_grades": dict(
            sorted(Counter(v.final["grade"] for v in replayed.leads.values()).items())
        ),
        "dead_letters": replayed.dead_letters,
        "outcomes": _outcomes(replayed, judging),
    }


def _alerts(alerts: Sequence[AlertRecord]) -> dict[str, Any]:
    per_day = Counter((day(a.ts), a.kind, a.rep) for a in alerts)
    return {
        "total": len(alerts),
        "by_kind": dict(sorted(Counter(a.kind for a in alerts).items())),
        "by_rep": dict(sorted(Counter(a.rep for a in alerts).items())),
        "per_day": [
            {"day": d, "kind": k, "rep": r, "count": n} for (d, k, r), n in sorted(per_day.items())
        ],
    }


def _grade_mix(leads: dict[str, LeadRecord]) -> list[dict[str, Any]]:
    """Leads by grade at the end of each day on which some grade changed."""
    changes: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for person, lead in leads.items():
        for d, g in lead.daily_grades.items():
            changes[d].append((person, g))
    current: dict[str, str] = {}
    counts: Counter[str] = Counter()
    rows = []
    for d in sorted(changes):
        for person, g in changes[d]:
            if person in current:
                counts[current[person]] -= 1
            current[person] = g
            counts[g] += 1
        rows.append({"day": day(d * DAY_MS), **{g: counts[g] for g in GRADES if counts[g]}})
    return rows


def _first_alerts(alerts: Iterable[AlertRecord], kind: str | None = None) -> dict[str, int]:
    first: dict[str, int] = {}
    for a in alerts:
        if (kind is None or a.kind == kind) and a.subject not in first:
            first[a.subject] = a.ts
    return first


def _outcomes(replayed: Replayed, judging: Judging) -> dict[str, Any]:
    leads = replayed.leads
    reached = {
        p: v.reached[judging.outcome] for p, v in leads.items() if judging.outcome in v.reached
    }
    alerted = _first_alerts(replayed.alerts, "sales_ready")
    within = judging.within_ms
    judged = {p: t for p, t in alerted.items() if t + within <= judging.end_ms and p in leads}
    hits = [p for p, t in judged.items() if p in reached and t <= reached[p] <= t + within]
    recalled = [p for p, t in reached.items() if p in alerted and t - within <= alerted[p] <= t]
    base_rate = len(reached) / len(leads) if leads else None
    precision = len(hits) / len(judged) if judged else None
    lead_days = sorted((reached[p] - judged[p]) / DAY_MS for p in hits)
    return {
        "outcome": judging.outcome,
        "within_days": within / DAY_MS,
        "leads_reaching_it": len(reached),
        "base_rate": _round(base_rate),
        "sales_ready": {
            "leads_alerted": len(alerted),
            "judged": len(judged),
            "reached_within": len(hits),
            "precision": _round(precision),
            "lift": _round(precision / base_rate if precision is not None and base_rate else None),
            "recall": _round(len(recalled) / len(reached) if reached else None),
            "lead_time_days": _spread(lead_days),
        },
        "ranking": _ranking(leads, judging),
    }


def _spread(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "values": []}
    cuts = quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {
        "count": len(values),
        "p25": _round(cuts[0]),
        "median": _round(cuts[1]),
        "p75": _round(cuts[2]),
        "values": [_round(v) for v in values],
    }


def primary_score(view: dict[str, Any]) -> float:
    """What ranks leads: the model's probability when it gives one, else the grade with
    engagement breaking ties."""
    probability = view.get("probability")
    if isinstance(probability, int | float):
        return float(probability)
    return grade_rank(view.get("grade")) * 1e6 + min(float(view.get("engagement") or 0), 999_999)


def _ranking(leads: dict[str, LeadRecord], judging: Judging) -> dict[str, Any]:
    """Leads old enough to have reached the fixed age, and not past the outcome by then,
    ranked by their scores at that age against whether the outcome followed in time."""
    sample: list[tuple[str, dict[str, Any], int]] = []
    for person, lead in leads.items():
        at = lead.first_ms + judging.at_age_ms
        if at + judging.within_ms > judging.end_ms:
            continue
        when = lead.reached.get(judging.outcome)
        if when is not None and when <= at:
            continue
        positive = int(when is not None and when <= at + judging.within_ms)
        sample.append((person, dict(lead.at_ages[judging.at_age_ms]), positive))
    labels = [s[2] for s in sample]
    result: dict[str, Any] = {
        "at_age_days": judging.at_age_ms / DAY_MS,
        "leads": len(sample),
        "positives": sum(labels),
    }
    if not sample or len(set(labels)) < 2:
        return {**result, "auc": None, "lift_by_decile": [], "by_grade": []}
    scores = {
        "score": [primary_score(v) for _, v, _ in sample],
        "grade": [float(grade_rank(v["grade"])) for _, v, _ in sample],
        "engagement": [float(v["engagement"] or 0) for _, v, _ in sample],
        "fit": [float(v["fit"] or 0) for _, v, _ in sample],
    }
    if all(isinstance(v.get("probability"), int | float) for _, v, _ in sample):
        scores["probability"] = [float(v["probability"]) for _, v, _ in sample]
    # Imported here: scikit-learn takes seconds to import, and every `dbl` command loads this.
    from sklearn.metrics import roc_auc_score

    auc = {name: _round(float(roc_auc_score(labels, values))) for name, values in scores.items()}
    rate = sum(labels) / len(labels)
    ranked = sorted(
        zip(scores["score"], [s[0] for s in sample], labels, strict=True),
        key=lambda x: (-x[0], x[1]),
    )
    deciles = []
    # Fewer leads than deciles: one group per lead.
    groups = min(DECILES, len(ranked))
    for n in range(groups):
        chunk = ranked[n * len(ranked) // groups : (n + 1) * len(ranked) // groups]
        got = sum(c[2] for c in chunk) / len(chunk)
        row = {
            "decile": n + 1,
            "leads": len(chunk),
            "rate": _round(got),
            "lift": _round(got / rate),
        }
        if "probability" in scores:
            # Calibration: the chance the model gave against the share that got there.
            row["predicted"] = _round(sum(c[0] for c in chunk) / len(chunk))
        deciles.append(row)
    by_grade: dict[str, list[int]] = defaultdict(list)
    for _, view, label in sample:
        by_grade[view["grade"]].append(label)
    calibration = [
        {"grade": g, "leads": len(v), "rate": _round(sum(v) / len(v))}
        for g, v in sorted(by_grade.items(), key=lambda kv: -grade_rank(kv[0]))
    ]
    return {
        **result,
        "base_rate": _round(rate),
        "auc": auc,
        "lift_by_decile": deciles,
        "by_grade": calibration,
    }


def differences(candidate: Replayed, current: Replayed) -> dict[str, Any]:
    """Alerts and final grades that differ between two replays of the same history: an
    alert is matched by its kind and subject; its first time decides earlier or later."""
    mine = _first_by_kind(candidate.alerts)
    theirs = _first_by_kind(current.alerts)
    added = sorted((t, k, s) for (k, s), t in mine.items() if (k, s) not in theirs)
    removed = sorted((t, k, s) for (k, s), t in theirs.items() if (k, s) not in mine)
    moved = [
        (mine[ks] - theirs[ks], ks) for ks in mine.keys() & theirs.keys() if mine[ks] != theirs[ks]
    ]
    earlier = sorted((d, ks) for d, ks in moved if d < 0)
    later = sorted(((d, ks) for d, ks in moved if d > 0), reverse=True)
    grades = sorted(
        (p, candidate.leads[p].final["grade"], current.leads[p].final["grade"])
        for p in candidate.leads.keys() & current.leads.keys()
        if candidate.leads[p].final["grade"] != current.leads[p].final["grade"]
    )
    return {
        "alerts_added": _listed(
            [{"ts": t, "day": day(t), "kind": k, "subject": s} for t, k, s in added]
        ),
        "alerts_removed": _listed(
            [{"ts": t, "day": day(t), "kind": k, "subject": s} for t, k, s in removed]
        ),
        "alerts_earlier": _listed(
            [{"kind": k, "subject": s, "hours": _round(d / 3_600_000)} for d, (k, s) in earlier]
        ),
        "alerts_later": _listed(
            [{"kind": k, "subject": s, "hours": _round(d / 3_600_000)} for d, (k, s) in later]
        ),
        "grades_differ": _listed(
            [{"subject": p, "candidate": a, "current": b} for p, a, b in grades]
        ),
    }


def _first_by_kind(alerts: Iterable[AlertRecord]) -> dict[tuple[str, str], int]:
    first: dict[tuple[str, str], int] = {}
    for a in alerts:
        first.setdefault((a.kind, a.subject), a.ts)
    return first


def _listed(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(rows), "first": rows[:LISTED]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def report_json(report: dict[str, Any]) -> bytes:
    """The report as stable JSON: sorted keys, two-space indent."""
    return orjson.dumps(report, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
