"""`report.html`: the backtest report as one self-contained page (inline CSS and SVG, nothing
fetched), made from `report.json` alone.

>>> "<html" in page({"input": {"events": 0}, "models": {}, "judging": {}})
True
"""

from __future__ import annotations

from html import escape
from typing import Any, Final

from backtests.charts import bars, lines
from backtests.report import GRADES

STYLE: Final = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1540px;color:#0f172a}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0}
.sub{color:#475569}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid #e2e8f0;border-radius:8px;padding:8px 12px;min-width:130px}
.card b{display:block;font-size:20px}.card span{color:#475569;font-size:12px}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(720px,1fr));gap:16px}
figure{margin:0;max-width:760px}figcaption{font-weight:600}svg{width:100%;height:auto}
.grid{stroke:#e2e8f0}.tick{font-size:10px;fill:#475569}
.legend{font-size:12px;margin:2px 0}.key{margin-right:12px}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
td,th{border-bottom:1px solid #e2e8f0;padding:3px 8px;text-align:left}
"""
KINDS: Final = ("sales_ready", "key_action", "live_visit", "account_surge", "cooling")


def page(report: dict[str, Any]) -> str:
    """The HTML page of a report."""
    models: dict[str, Any] = report["models"]
    source = report["input"]
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        "<title>DBL backtest</title>",
        f"<style>{STYLE}</style><body>",
        "<h1>Backtest</h1>",
        f'<p class="sub">{escape(_describe(source, models, report.get("judging", {})))}</p>',
        _cards(models),
        "<h2>Alerts reps would have received</h2>",
        '<div class="cols">',
        *(_alerts_per_day(name, m) for name, m in models.items()),
        _alerts_by_rep(models),
        "</div>",
        "<h2>Grade mix over time</h2>",
        '<div class="cols">',
        *(_grade_mix(name, m) for name, m in models.items()),
        "</div>",
        "<h2>Outcomes</h2>",
        '<div class="cols">',
        _lift(models),
        _calibration(models),
        _predicted(models),
        _lead_time(models),
        "</div>",
    ]
    if "differences" in report:
        parts += ["<h2>What changes between the models</h2>", _differences(report["differences"])]
    parts.append("</body></html>\n")
    return "".join(parts)


def _describe(source: dict[str, Any], models: dict[str, Any], judging: dict[str, Any]) -> str:
    names = ", ".join(f"{name}: {m.get('file')} ({m.get('version')})" for name, m in models.items())
    span = f"{source.get('first_event')} to {source.get('last_event')}"
    outcome = judging.get("outcome")
    return (
        f"{source['events']} events from {source.get('source')}, received {span}. "
        f"Models {names}. Outcome: {outcome} within {judging.get('within_days')} days; "
        f"leads ranked at age {judging.get('at_age_days')} days."
    )


def _cards(models: dict[str, Any]) -> str:
    cards = []
    for name, m in models.items():
        sales = m["outcomes"]["sales_ready"]
        auc = m["outcomes"]["ranking"].get("auc") or {}
        figures = [
            ("alerts", m["alerts"]["total"]),
            ("leads", m["leads"]),
            ("sales_ready precision", _pct(sales["precision"])),
            ("recall", _pct(sales["recall"])),
            ("base rate", _pct(m["outcomes"]["base_rate"])),
            ("AUC at age", auc.get("score", "n/a")),
        ]
        cards += [
            f'<div class="card"><span>{escape(name)} · {escape(label)}</span><b>{value}</b></div>'
            for label, value in figures
        ]
    return f'<div class="cards">{"".join(cards)}</div>'


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _alerts_per_day(name: str, model: dict[str, Any]) -> str:
    rows = model["alerts"]["per_day"]
    days = sorted({r["day"] for r in rows})
    series = {k: [0.0] * len(days) for k in KINDS}
    for r in rows:
        series.setdefault(r["kind"], [0.0] * len(days))[days.index(r["day"])] += r["count"]
    used = {k: v for k, v in series.items() if any(v)}
    return bars(f"{name}: alerts per day by kind", [d[5:] for d in days], used, stacked=True)


def _alerts_by_rep(models: dict[str, Any]) -> str:
    reps = sorted({r for m in models.values() for r in m["alerts"]["by_rep"]})
    series = {
        name: [float(m["alerts"]["by_rep"].get(r, 0)) for r in reps] for name, m in models.items()
    }
    return bars("Alerts by rep", reps, series)


def _grade_mix(name: str, model: dict[str, Any]) -> str:
    rows = model["grade_mix"]
    bands = {
        band: [float(sum(r.get(g, 0) for g in GRADES if g[0] == band)) for r in rows]
        for band in "ABCD"
    }
    return bars(
        f"{name}: leads by fit band (A best)", [r["day"][5:] for r in rows], bands, stacked=True
    )


def _lift(models: dict[str, Any]) -> str:
    series = {
        name: [float(d["lift"] or 0) for d in m["outcomes"]["ranking"]["lift_by_decile"]]
        for name, m in models.items()
    }
    labels = [str(n) for n in range(1, 1 + max((len(v) for v in series.values()), default=0))]
    return bars("Lift by decile of the score at the fixed age (1 = top)", labels, series)


def _calibration(models: dict[str, Any]) -> str:
    grades = [
        g
        for g in GRADES
        if any(
            r["grade"] == g for m in models.values() for r in m["outcomes"]["ranking"]["by_grade"]
        )
    ]
    series = {}
    for name, m in models.items():
        rates = {r["grade"]: r["rate"] for r in m["outcomes"]["ranking"]["by_grade"]}
        series[name] = [float(rates.get(g) or 0) for g in grades]
    return bars("Share reaching the outcome, by grade at the fixed age", grades, series)


def _predicted(models: dict[str, Any]) -> str:
    """Calibration of the models that give a probability: predicted against observed."""
    series = {}
    for name, m in models.items():
        rows = m["outcomes"]["ranking"]["lift_by_decile"]
        if rows and "predicted" in rows[0]:
            series[f"{name} predicted"] = [float(r["predicted"] or 0) for r in rows]
            series[f"{name} observed"] = [float(r["rate"] or 0) for r in rows]
    if not series:
        return ""
    labels = [str(n) for n in range(1, 1 + max(len(v) for v in series.values()))]
    return lines(
        "Calibration: chance predicted and share reaching the outcome, by decile", labels, series
    )


def _lead_time(models: dict[str, Any]) -> str:
    weeks = 13
    series = {}
    for name, m in models.items():
        values = m["outcomes"]["sales_ready"]["lead_time_days"]["values"]
        counts = [0.0] * weeks
        for v in values:
            counts[min(weeks - 1, int(v // 7))] += 1
        series[name] = counts
    return lines(
        "Days from sales_ready alert to outcome (weeks)", [str(w) for w in range(weeks)], series
    )


def _differences(diff: dict[str, Any]) -> str:
    sections = []
    titles = {
        "alerts_added": "Alerts only the candidate sends",
        "alerts_removed": "Alerts only the current model sends",
        "alerts_earlier": "Alerts the candidate sends earlier",
        "alerts_later": "Alerts the candidate sends later",
        "grades_differ": "Leads whose final grade differs",
    }
    labels = ["added", "removed", "earlier", "later", "grade differs"]
    counts = {"leads or alerts": [float(diff[k]["count"]) for k in titles]}
    sections.append(f'<div class="cols">{bars("What the candidate changes", labels, counts)}</div>')
    if not any(diff[k]["count"] for k in titles):
        sections.append("<p>Both models send the same alerts and end with the same grades.</p>")
    for key, title in titles.items():
        rows = diff[key]["first"]
        if not rows:
            continue
        head = "".join(f"<th>{escape(c)}</th>" for c in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in r.values()) + "</tr>"
            for r in rows[:20]
        )
        sections.append(
            f"<h3>{escape(title)} ({diff[key]['count']})</h3><table><tr>{head}</tr>{body}</table>"
        )
    return "".join(sections)
