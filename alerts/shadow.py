"""Comparing the live model with a shadow (challenger) model on the same stream: alerts
only one of them raised, and leads whose grade differs. Pure.

>>> live = [{"kind": "sales_ready", "contact": "a@x.com", "account": "x.com", "ts": 1}]
>>> shadow = [{"kind": "sales_ready", "contact": "b@x.com", "account": "x.com", "ts": 2}]
>>> found = compare(live, shadow, {"a@x.com": ({"grade": "A1"}, {"grade": "B2"})})
>>> [a["subject"] for a in found["only_live"]], [a["subject"] for a in found["only_shadow"]]
(['a@x.com'], ['b@x.com'])
>>> found["grades_differ"][0]["live"], found["grades_differ"][0]["shadow"]
('A1', 'B2')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

LISTED: Final = 100
SHOWN: Final = ("grade", "engagement", "sales_ready", "model")


def _subject(alert: Mapping[str, Any]) -> str:
    return str(alert.get("contact") or alert.get("account") or "")


def _first(alerts: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    first: dict[tuple[str, str], Mapping[str, Any]] = {}
    for alert in alerts:
        first.setdefault((str(alert.get("kind")), _subject(alert)), alert)
    return first


def _row(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind": alert.get("kind"),
        "subject": _subject(alert),
        "ts": alert.get("ts"),
        "grade": alert.get("grade"),
        "reason": alert.get("reason"),
        "model": alert.get("model"),
    }


def _newest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: -int(r["ts"] or 0))[:LISTED]


def compare(
    live: Sequence[Mapping[str, Any]],
    shadow: Sequence[Mapping[str, Any]],
    profiles: Mapping[str, tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]],
) -> dict[str, Any]:
    """Alerts (matched by kind and subject) only one model raised, newest first, and the
    leads (person -> (live profile, shadow profile)) whose grades differ, hottest first."""
    mine, theirs = _first(live), _first(shadow)
    only_live = [_row(a) for key, a in mine.items() if key not in theirs]
    only_shadow = [_row(a) for key, a in theirs.items() if key not in mine]
    differ = []
    for person, (in_live, in_shadow) in profiles.items():
        if in_live is None or in_shadow is None or in_live.get("grade") == in_shadow.get("grade"):
            continue
        row: dict[str, Any] = {"person": person}
        for name in SHOWN:
            row[f"live_{name}" if name != "grade" else "live"] = in_live.get(name)
            row[f"shadow_{name}" if name != "grade" else "shadow"] = in_shadow.get(name)
        differ.append(row)
    differ.sort(
        key=lambda r: -max(float(r["live_engagement"] or 0), float(r["shadow_engagement"] or 0))
    )
    return {
        "live_alerts": len(live),
        "shadow_alerts": len(shadow),
        "only_live": _newest(only_live),
        "only_shadow": _newest(only_shadow),
        "only_live_count": len(only_live),
        "only_shadow_count": len(only_shadow),
        "grades_differ": differ[:LISTED],
        "grades_differ_count": len(differ),
        "leads_compared": len(profiles),
    }
