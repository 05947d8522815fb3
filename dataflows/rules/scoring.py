"""Score math, free of I/O: decaying engagement, fit from traits, and the A-D x 1-4 grid.

Engagement at time t is `sum(points_i * 0.5 ** ((t - t_i) / half_life_i))`. It is kept
per engagement rule as values decayed to one reference time `as_of`, so an update costs
O(rules touched), two sums merge exactly, and the order signals arrive in does not matter.
All times are event times in epoch milliseconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from fnmatch import translate
from functools import lru_cache
from typing import Any, Final, cast

from config.scoring import (
    DAY_MS,
    MINUTE_MS,
    Conditions,
    EngagementRule,
    FitRule,
    Grid,
    ScoringModel,
)
from contracts.read_model import Contribution

_LEADING_DIGITS: Final = re.compile(r"[0-9]+")
# Days per capped rule and person whose points are remembered: a late signal dated within
# them still meets its day's cap; one dated before counts up to the cap on its own.
CAP_DAYS_KEPT: Final = 8
# Rule id -> UTC day number -> points the rule gave that day.
Given = dict[str, dict[int, float]]
# Contributions that decayed below this are dropped, keeping per-person state small.
NEGLIGIBLE_POINTS = 0.01


def decay(points: float, elapsed_ms: float, half_life_ms: float) -> float:
    """Points left after `elapsed_ms` when they halve every `half_life_ms`."""
    if elapsed_ms <= 0:
        return points
    return float(points * 0.5 ** (elapsed_ms / half_life_ms))


@dataclass(slots=True)
class Engagement:
    """Decayed points per engagement rule, all as of event time `as_of` (ms).

    Points of a rule the model in effect does not have (a published model dropped or
    renamed it) count for nothing and are dropped as time moves on:

    >>> engagement = Engagement(0, {"gone": 5.0, "kept": 2.0})
    >>> engagement.total(0, {"kept": 1.0})
    2.0
    >>> engagement.advance(1, {"kept": 1.0}); sorted(engagement.points)
    ['kept']
    """

    as_of: int = 0
    points: dict[str, float] = field(default_factory=dict)

    def add(
        self,
        rule_id: str,
        points: float,
        ts: int,
        half_lives: Mapping[str, float],
        latest: Collection[str] = (),
    ) -> None:
        """Add a signal's points at event time `ts` (earlier or later than `as_of`); a rule
        in `latest` keeps the larger of what it had and this signal's points, so its value
        is that of its latest signal whatever order signals arrive in.

        >>> engagement = Engagement()
        >>> for ts in (0, 1_000, 500):
        ...     engagement.add("pricing_seen", 10.0, ts, {"pricing_seen": 1_000}, {"pricing_seen"})
        >>> engagement.points
        {'pricing_seen': 10.0}
        """
        if ts >= self.as_of:
            self.advance(ts, half_lives)
            value = points
        else:
            value = decay(points, self.as_of - ts, half_lives[rule_id])
        self._fold(rule_id, value, latest)

    def advance(self, ts: int, half_lives: Mapping[str, float]) -> None:
        """Decay every contribution forward to `ts`; never moves backwards."""
        elapsed = ts - self.as_of
        if elapsed <= 0:
            return
        decayed = self.contributions(ts, half_lives)
        self.points = {k: v for k, v in decayed.items() if abs(v) >= NEGLIGIBLE_POINTS}
        self.as_of = ts

    def merge(
        self, other: Engagement, half_lives: Mapping[str, float], latest: Collection[str] = ()
    ) -> None:
        """Fold another person's decayed sums into this one (each counted once; a `latest`
        rule keeps the later of the two)."""
        later = max(self.as_of, other.as_of)
        self.advance(later, half_lives)
        incoming = Engagement(other.as_of, dict(other.points))
        incoming.advance(later, half_lives)
        for rule_id, value in incoming.points.items():
            self._fold(rule_id, value, latest)

    def _fold(self, rule_id: str, value: float, latest: Collection[str]) -> None:
        """Add a value (decayed to `as_of`) to a rule's points; a `latest` rule keeps the
        later signal's: of two decayed values of one rule's points, the larger in size."""
        had = self.points.get(rule_id, 0.0)
        if rule_id not in latest:
            self.points[rule_id] = had + value
        elif abs(value) > abs(had):
            self.points[rule_id] = value

    def contributions(self, at: int, half_lives: Mapping[str, float]) -> dict[str, float]:
        """Each rule's points decayed to `at` (never earlier than `as_of`)."""
        elapsed = max(0, at - self.as_of)
        # A model has a few half-lives and many rules: one power per half-life (the same
        # arithmetic as `decay`, so the same floats).
        factors: dict[float, float] = {}
        decayed = {}
        for rule_id, value in self.points.items():
            half_life = half_lives.get(rule_id)
            if half_life is None:
                continue
            factor = factors.get(half_life)
            if factor is None:
                factor = factors[half_life] = 0.5 ** (elapsed / half_life) if elapsed else 1.0
            decayed[rule_id] = value * factor
        return decayed

    def total(self, at: int, half_lives: Mapping[str, float]) -> float:
        """Engagement at `at`: the sum of all contributions, never below 0."""
        return max(0.0, sum(self.contributions(at, half_lives).values()))


def matching_rules(signal: Mapping[str, Any], model: ScoringModel) -> list[EngagementRule]:
    """The engagement rules whose conditions all match an event envelope (rules sharing
    their conditions share one object: each is checked once)."""
    checked: dict[int, bool] = {}
    matched = []
    for rule in model.candidates(signal["type"], signal.get("event")):
        hit = checked.get(id(rule.when))
        if hit is None:
            hit = checked[id(rule.when)] = matches(rule.when, signal)
        if hit:
            matched.append(rule)
    return matched


def matches(when: Conditions, signal: Mapping[str, Any]) -> bool:
    """True when a signal meets every condition given in `when`."""
    if when.types and signal["type"] not in when.types:
        return False
    if when.channels and signal["channel"] not in when.channels:
        return False
    if when.events and signal.get("event") not in when.events:
        return False
    props = signal["props"]
    if when.paths and not _any_glob(page_path(signal), when.paths):
        return False
    if when.forms and not _any_glob(props.get("form_id"), when.forms):
        return False
    if when.campaigns and not _any_glob(campaign_name(signal), when.campaigns):
        return False
    if when.links and not _any_glob(link_of(props), when.links):
        return False
    return not when.content_types or _any_glob(props.get("content_type"), when.content_types)


def link_of(props: Mapping[str, Any]) -> Any:
    """The link a click followed: Segment's `link_url` (its `Email Link Clicked` spec),
    else `link`, else `url`."""
    return props.get("link_url") or props.get("link") or props.get("url")


def campaign_name(signal: Mapping[str, Any]) -> str | None:
    """The campaign a signal belongs to: context.campaign.name, else Segment's email spec
    `properties.campaign_name`, else props.campaign."""
    campaign = signal["context"].get("campaign") or {}
    props = signal["props"]
    name = campaign.get("name") or props.get("campaign_name") or props.get("campaign")
    return name if isinstance(name, str) and name else None


def page_path(signal: Mapping[str, Any]) -> str:
    """The path of the page a signal came from ("" if none)."""
    page = signal["context"].get("page") or {}
    return str(page.get("path") or "")


def _any_glob(value: Any, patterns: tuple[str, ...]) -> bool:
    if not isinstance(value, str) or not value:
        return False
    return _glob_matcher(patterns)(value.lower()) is not None


@lru_cache(maxsize=4096)
def _glob_matcher(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """One compiled, case-insensitive regular expression for a rule's glob patterns (each
    signal is matched against the same few tuples, so they are compiled once)."""
    return re.compile("|".join(f"(?:{translate(p.lower())})" for p in patterns)).match


def capped_points(rule: EngagementRule, ts: int, given: Given) -> float:
    """The points a signal may still add on its own UTC day under the rule's daily cap
    (whatever order signals arrive in); records them."""
    if rule.daily_cap is None:
        return rule.points
    day = ts // DAY_MS
    days = given_days(given, rule.id)
    so_far = days.get(day, 0.0)
    room = max(0.0, rule.daily_cap - abs(so_far))
    points = max(-room, min(room, rule.points))
    days[day] = so_far + points
    _keep_recent(days)
    return points


def given_days(given: Given, rule_id: str) -> dict[int, float]:
    """What a capped rule gave, per UTC day (state packed before this release kept only
    the last day, as a (day, points) pair).

    >>> given_days({"page_view": (20454, 3.0)}, "page_view")
    {20454: 3.0}
    """
    days: Any = given.get(rule_id)
    if isinstance(days, tuple):
        days = {days[0]: days[1]}
    elif days is None:
        days = {}
    given[rule_id] = days
    return cast(dict[int, float], days)


def merge_given(into: Given, other: Given) -> None:
    """Fold another history's per-day points into `into` (each day's points add up)."""
    for rule_id in list(other):
        days = given_days(into, rule_id)
        for day, points in given_days(other, rule_id).items():
            days[day] = days.get(day, 0.0) + points
        _keep_recent(days)


def _keep_recent(days: dict[int, float]) -> None:
    while len(days) > CAP_DAYS_KEPT:
        del days[min(days)]


@dataclass(frozen=True, slots=True)
class Fit:
    """A fit score (0..100) and the rules that made it."""

    score: float
    reasons: tuple[tuple[str, float], ...]


def fit_score(traits: Mapping[str, Any], model: ScoringModel) -> Fit:
    """Fit from explicit traits: per rule group, the first matching rule in file order counts."""
    decided: set[str] = set()
    reasons: list[tuple[str, float]] = []
    for rule in model.fit:
        if rule.group in decided:
            continue
        value = traits.get(rule.trait)
        if value is not None and _fit_matches(rule, value):
            decided.add(rule.group)
            reasons.append((rule.label, rule.points))
    score = min(100.0, max(0.0, sum(points for _, points in reasons)))
    return Fit(score, tuple(reasons))


def _fit_matches(rule: FitRule, value: Any) -> bool:
    if rule.at_least is not None:
        number = _leading_number(value)
        return number is not None and number >= rule.at_least
    text = str(value).strip().lower()
    if rule.values:
        return text in rule.values
    return bool(rule.matches) and _glob_matcher(rule.matches)(text) is not None


def _leading_number(value: Any) -> float | None:
    """A number from 500, "500" or a range such as "201-500" (its lower end). Only ASCII
    digits count: `str.isdigit` also accepts superscripts and circled digits, which are no
    number `float` reads.

    >>> [_leading_number(text) for text in ("201-500", "10²", "²", "1,200")]
    [201.0, 10.0, None, 1200.0]
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().replace(",", "")
    digits = _LEADING_DIGITS.match(text)
    return float(digits.group()) if digits else None


def explain(fit: Fit, engagement: Mapping[str, float], model: ScoringModel) -> list[Contribution]:
    """Every contribution to a score, largest first: the fit rules that matched, then each
    engagement rule's decayed points (rules the model no longer has count for nothing).

    >>> from config.scoring import load_scoring_model
    >>> from config.settings import Settings
    >>> model = load_scoring_model(Settings().scoring_path)
    >>> parts = explain(Fit(30.0, (("VP title", 30.0),)), {"pricing_page": 9.5}, model)
    >>> [(c["kind"], c["label"], c["points"]) for c in parts]
    [('fit', 'VP title', 30.0), ('engagement', 'Viewed pricing', 9.5)]
    >>> score_of(parts)
    39.5
    """
    parts: list[Contribution] = [
        {"kind": "fit", "label": label, "points": points} for label, points in fit.reasons
    ]
    for rule_id, points in engagement.items():
        label = model.labels.get(rule_id)
        if label is not None and points:
            parts.append({"kind": "engagement", "label": label, "points": points})
    parts.sort(key=lambda c: (-abs(c["points"]), c["label"]))
    return parts


def score_of(contributions: list[Contribution]) -> float:
    """The score: the sum of its contributions."""
    return math.fsum(c["points"] for c in contributions)


def probability_of(score: float, model: ScoringModel) -> float | None:
    """The chance of the model's outcome at this score, when the model knows it."""
    chance = model.probability
    if chance is None:
        return None
    logit = chance.intercept + chance.per_point * score
    return 1.0 / (1.0 + math.exp(-max(-700.0, min(700.0, logit))))


def grade(fit: float, engagement: float, grid: Grid) -> str:
    """The grid cell, letter for fit (A best) and digit for engagement (1 hottest)."""
    letter = next((name for name, floor in grid.fit_bands if fit >= floor), "D")
    digit = next((name for name, floor in grid.engagement_bands if engagement >= floor), "4")
    return letter + digit


def is_sales_ready(fit: float, engagement: float, grid: Grid, *, was_ready: bool) -> bool:
    """In a sales-ready cell; a lead already there stays until it falls out by the margin."""
    if grade(fit, engagement, grid) in grid.sales_ready:
        return True
    return was_ready and grade(fit, engagement + grid.hysteresis, grid) in grid.sales_ready


def staying_floor(fit: float, grid: Grid) -> float | None:
    """The lowest engagement at which a sales-ready lead of this fit stays sales-ready
    (hysteresis included), or None if no cell of its fit letter is sales-ready."""
    letter = grade(fit, 0.0, grid)[0]
    floors = [
        threshold - grid.hysteresis
        for digit, threshold in (*grid.engagement_bands, ("4", 0.0))
        if letter + digit in grid.sales_ready
    ]
    return min(floors) if floors else None


def leaves_sales_ready_at(
    engagement: Engagement,
    fit: float,
    start: int,
    grid: Grid,
    half_lives: Mapping[str, float],
    horizon_ms: int = 365 * DAY_MS,
) -> int | None:
    """The first whole minute after `start` at which a sales-ready lead, left alone, has
    decayed out of sales-ready (with hysteresis), or None within `horizon_ms`."""

    floor = staying_floor(fit, grid)
    if floor is None:
        return start
    if floor <= 0:
        return None  # a lead ready at any engagement never cools by decay

    def ready(t: int) -> bool:
        return engagement.total(t, half_lives) >= floor

    step = 7 * DAY_MS
    low = start
    while low - start < horizon_ms:
        high = low + step
        if not ready(high):
            return _first_minute_out(ready, low, high)
        low = high
    return None


def _first_minute_out(ready: Callable[[int], bool], low: int, high: int) -> int:
    """The first whole minute after `low` at which `ready` is false, knowing it is false at
    `high` and (engagement only decays) true before the crossing: a bisection over minutes."""
    low_minute, high_minute = low // MINUTE_MS, -(-high // MINUTE_MS)
    while high_minute - low_minute > 1:
        middle = (low_minute + high_minute) // 2
        if ready(middle * MINUTE_MS):
            low_minute = middle
        else:
            high_minute = middle
    return high_minute * MINUTE_MS
