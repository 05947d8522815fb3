"""Writing a model in `scoring.toml`'s own format: the deployment's alert and identity rules
kept as they are (with their comments), engagement rules, fit rules, the grade bands and
the probability given.

>>> pricing = Weighted("page_pricing_7d", "Viewed pricing", (("types", ["page"]),), 7.0, 12.5)
>>> text = model_text("[grade]\\nx = 1\\n[alerts]\\nmin_fit = 20\\n", [pricing], [],
...                   {"A": 70, "B": 45, "C": 20}, {"1": 60, "2": 30, "3": 10}, None)
>>> "[alerts]\\nmin_fit = 20" in text and "[grade]\\nx" not in text
True
>>> 'points = 12.5' in text and 'half_life_days = 7' in text
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from config.scoring import Probability
from training.candidates import Counts

# Tables a trained model writes itself; the deployment's others are kept.
REPLACED: Final = re.compile(r"^\[\[?(engagement|fit|grade|probability)\]?\]")
SALES_READY: Final = ("A1", "A2", "B1")
MIN_FIT: Final = re.compile(r"^min_fit = .*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Weighted:
    """A rule with the points it learned (and for engagement, its half-life and what it
    counts: a rule counting days gives its points once a day, `daily_cap`; one counting
    the latest signal is `latest`)."""

    id: str
    label: str
    body: tuple[tuple[str, Any], ...]
    half_life_days: float | None
    points: float
    counts: Counts = "signals"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:.6g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def _kept(base: str) -> str:
    """The base model's text without the tables a trained model writes."""
    kept: list[str] = []
    skipping = False
    for line in base.splitlines():
        if line.startswith("["):
            skipping = bool(REPLACED.match(line))
        if not skipping:
            kept.append(line)
    return "\n".join(kept).strip() + "\n"


def model_text(
    base: str,
    engagement: Sequence[Weighted],
    fit: Sequence[Weighted],
    fit_bands: dict[str, float],
    engagement_bands: dict[str, float],
    probability: Probability | None,
    header: str = "",
) -> str:
    """A whole model file."""
    lines = [header.rstrip(), ""] if header else []
    for rule in engagement:
        lines += ["[[engagement]]", f"id = {_value(rule.id)}", f"label = {_value(rule.label)}"]
        lines += [f"{key} = {_value(value)}" for key, value in rule.body]
        lines += [f"points = {_value(rule.points)}"]
        if rule.counts == "days":
            lines += [f"daily_cap = {_value(abs(rule.points))}"]
        elif rule.counts == "latest":
            lines += ["latest = true"]
        lines += [f"half_life_days = {_value(rule.half_life_days)}", ""]
    for rule in fit:
        lines += ["[[fit]]", f"id = {_value(rule.id)}", f"label = {_value(rule.label)}"]
        lines += [f"{key} = {_value(value)}" for key, value in rule.body]
        # Each rule its own group: every learned rule that matches counts.
        lines += [f"group = {_value(rule.id)}", f"points = {_value(rule.points)}", ""]
    lines += [
        "[grade]",
        f"fit_bands = {_value(fit_bands)}",
        f"engagement_bands = {_value(engagement_bands)}",
        f"sales_ready = {_value(list(SALES_READY))}",
        "hysteresis = 0",
        "",
    ]
    if probability is not None:
        lines += [
            "[probability]",
            f"outcome = {_value(probability.outcome)}",
            f"within_days = {_value(probability.within_days)}",
            f"intercept = {_value(probability.intercept)}",
            f"per_point = {_value(probability.per_point)}",
            "",
        ]
    kept = _kept(base)
    # The alert rules' fit floor is on the learned fit's scale: its lowest band.
    kept = MIN_FIT.sub(f"min_fit = {_value(float(fit_bands['C']))}", kept)
    return "\n".join(lines) + "\n" + kept
