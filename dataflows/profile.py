"""A person's compact profile and how signals update it. Pure: no I/O, no Bytewax.

The same functions score an anonymous cookie (in the identity step) and a known contact
(in the score step), so a cookie's history moves into its contact unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from config.scoring import ScoringModel
from dataflows.scoring import Engagement, Fit, fit_score, grade, is_sales_ready, matching_rules
from tracking.envelope import Envelope

ACTIVITY_LENGTH: Final = 20
TOP_CONTRIBUTIONS: Final = 5
# Identify traits kept on the profile (fit reads them; reps see them).
KEPT_TRAITS: Final = ("title", "company", "company_size", "industry", "country", "phone", "owner")


@dataclass(slots=True)
class Profile:
    """Everything kept about one person (a contact, or an anonymous cookie)."""

    person: str
    engagement: Engagement = field(default_factory=Engagement)
    traits: dict[str, Any] = field(default_factory=dict)
    # Recent meaningful actions, oldest first: (event time ms, what happened).
    activity: list[tuple[int, str]] = field(default_factory=list)
    last_seen: int = 0
    sales_ready: bool = False
    # How many times this lead entered sales-ready: makes alert ids deterministic.
    crossings: int = 0


@dataclass(frozen=True, slots=True)
class Assessment:
    """A profile's scores at one event time."""

    at: int
    fit: Fit
    engagement: float
    grade: str
    sales_ready: bool
    contributions: tuple[tuple[str, float], ...]


def apply_signal(profile: Profile, signal: Envelope, model: ScoringModel) -> None:
    """Record one signal: engagement points, explicit traits, and the activity timeline."""
    for rule in matching_rules(signal, model):
        profile.engagement.add(rule.id, rule.points, signal["ts"], model.half_lives)
    _update_traits(profile, signal)
    _record_activity(profile, signal["ts"], describe(signal))
    profile.last_seen = max(profile.last_seen, signal["ts"])


def absorb(profile: Profile, history: Profile, model: ScoringModel) -> None:
    """Fold an anonymous history into a contact's profile (call once per link)."""
    profile.engagement.merge(history.engagement, model.half_lives)
    for key, value in history.traits.items():
        profile.traits.setdefault(key, value)
    merged = sorted(profile.activity + history.activity)
    profile.activity = merged[-ACTIVITY_LENGTH:]
    profile.last_seen = max(profile.last_seen, history.last_seen)


def assess(profile: Profile, at: int, model: ScoringModel) -> Assessment:
    """Fit, engagement, grade and sales-readiness as of event time `at`."""
    fit = fit_score(profile.traits, model)
    contributions = profile.engagement.contributions(at, model.half_lives)
    engagement = max(0.0, sum(contributions.values()))
    top = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))[:TOP_CONTRIBUTIONS]
    return Assessment(
        at=at,
        fit=fit,
        engagement=engagement,
        grade=grade(fit.score, engagement, model.grid),
        sales_ready=is_sales_ready(
            fit.score, engagement, model.grid, was_ready=profile.sales_ready
        ),
        contributions=tuple((model.labels.get(k, k), v) for k, v in top),
    )


def describe(signal: Envelope) -> str:
    """One line a rep can read: what the person did."""
    page = signal["context"].get("page") or {}
    kind = signal["type"]
    if kind in ("page", "screen"):
        return f"Viewed {page.get('path') or page.get('url') or 'a page'}"
    if kind == "email_open":
        return f"Opened email {_campaign(signal)}".rstrip()
    if kind == "email_click":
        return f"Clicked email {_campaign(signal)}".rstrip()
    if kind == "form_submit":
        return f"Submitted form {signal['props'].get('form_id') or ''}".rstrip()
    if kind == "identify":
        return "Identified"
    return str(signal["event"] or kind)


def _campaign(signal: Envelope) -> str:
    campaign = signal["context"].get("campaign") or {}
    name = campaign.get("name") or signal["props"].get("campaign")
    return f"'{name}'" if name else ""


def _update_traits(profile: Profile, signal: Envelope) -> None:
    props = signal["props"]
    if signal["type"] in ("identify", "form_submit"):
        for key in KEPT_TRAITS:
            value = props.get(key)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                profile.traits[key] = value
    for key in ("email", "name", "account"):
        value = signal[key]  # type: ignore[literal-required]
        if value:
            profile.traits[key] = value
    if signal["email"]:
        profile.traits["email_domain"] = signal["email"].rpartition("@")[2]


def _record_activity(profile: Profile, ts: int, what: str) -> None:
    profile.activity.append((ts, what))
    if len(profile.activity) > 1 and profile.activity[-2][0] > ts:
        profile.activity.sort()
    del profile.activity[:-ACTIVITY_LENGTH]
