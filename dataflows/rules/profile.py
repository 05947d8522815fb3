"""A person's compact profile and how signals update it. Pure: no I/O, no Bytewax.

The same functions score an anonymous cookie (in the identity step) and a known contact
(in the score step), so a cookie's history moves into its contact unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from config.scoring import ScoringModel
from contracts.envelope import Envelope
from contracts.feedback import describe_feedback, is_feedback
from dataflows.rules.outcomes import amount_of, outcome_of
from dataflows.rules.presence import LEFT, count_engaged, credit, is_engaged_time, path_of
from dataflows.rules.scoring import (
    Engagement,
    Fit,
    Given,
    campaign_name,
    capped_points,
    fit_score,
    grade,
    is_sales_ready,
    matching_rules,
    merge_given,
)
from dataflows.rules.trust import how_recognized, may_set, rank, stronger

ACTIVITY_LENGTH: Final = 20
TOP_CONTRIBUTIONS: Final = 5
# Calls that say who someone is, not that they are on the site.
NOT_PRESENCE: Final = frozenset({"identify", "alias", "group", "forget"})
# Identify traits kept on the profile (fit reads them; reps see them).
KEPT_TRAITS: Final = (
    *("title", "company", "company_size", "industry", "country", "phone", "owner"),
    *("budget", "authority", "need", "timeframe"),
    *("seniority", "department", "annual_revenue", "lead_source"),
    # CRM state that decides which alerts a rep is told (server sources only).
    *("lifecycle_stage", "disqualified_at"),
)


@dataclass(slots=True)
class Profile:
    """Everything kept about one person (a contact, or an anonymous cookie)."""

    person: str
    engagement: Engagement = field(default_factory=Engagement)
    traits: dict[str, Any] = field(default_factory=dict)
    # Recent meaningful actions, oldest first: (event time ms, what happened).
    activity: list[tuple[int, str]] = field(default_factory=list)
    last_seen: int = 0
    # Points each capped rule gave on each recent UTC day (`scoring.capped_points`).
    given_today: Given = field(default_factory=dict)
    # Sessions (event time): the current one's start, and the last web signal.
    session_start: int = 0
    last_web: int = 0
    # Key actions already alerted: action id -> the session it fired in.
    key_actions: dict[str, int] = field(default_factory=dict)
    sales_ready: bool = False
    # How many times this lead entered sales-ready, and when (receive time) the lead began:
    # together they make alert ids deterministic, and unique even for a key that becomes a
    # lead again after a merge or a forget.
    crossings: int = 0
    since: int = 0
    # When a sales-ready lead's engagement will have decayed out of sales-ready.
    cooling_at: int | None = None
    # Email timing, to tell scanners from people: campaign -> delivered at; last clicks.
    delivered: dict[str, int] = field(default_factory=dict)
    email_clicks: list[int] = field(default_factory=list)
    # Signals kept out of the score because a machine made them, by reason.
    machine_signals: dict[str, int] = field(default_factory=dict)
    # The fit last computed, and the trait values it was computed from.
    fit_memo: tuple[tuple[Any, ...], Fit] | None = None
    # How strongly the source that set each trait proved who it was (`dataflows/rules/trust.py`).
    trust: dict[str, str] = field(default_factory=dict)
    # What became of the lead (`rules/outcomes.py`): the latest outcome by event time, when,
    # whether an opportunity is open, and its amount.
    outcome: str | None = None
    outcome_at: int = 0
    open_opportunity: bool = False
    outcome_amount: float | None = None
    # The version of the model in effect at the latest signal ("" for the deployment's own):
    # timed decisions about this profile use it.
    model: str = ""
    # The latest web visit (`rules/presence.py`): its start, the page of its latest browser
    # signal, pages viewed, engaged seconds, whether that page closed.
    visit_start: int = 0
    page: str = ""
    visit_pages: int = 0
    visit_engaged: float = 0.0
    left: bool = False
    # Engaged seconds counted by engaged-time key actions: this visit's by action id, and
    # per UTC day (action id -> day number -> seconds) for those counted over days. None
    # until used: most of a million visitors never use them (an empty dict is 64 bytes).
    dwell: dict[str, float] | None = None
    dwell_days: dict[str, dict[int, float]] | None = None
    # The latest event time (ms) a view of this profile was written as of, by a signal or a
    # timer (`rules/leads.py` `refresh_if_due`): views never go back in time.
    viewed_at: int = 0


@dataclass(frozen=True, slots=True)
class Assessment:
    """A profile's scores at one event time."""

    at: int
    fit: Fit
    engagement: float
    grade: str
    sales_ready: bool
    # The largest engagement contributions, by label; and every one, by rule id.
    contributions: tuple[tuple[str, float], ...]
    engagement_points: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Touch:
    """What one signal meant for the person's sessions (all in event time)."""

    late: bool
    new_session: bool
    new_web_session: bool
    # Engaged-time key actions whose threshold this signal's engaged time crossed.
    engaged: tuple[str, ...] = ()


def apply_signal(profile: Profile, signal: Envelope, model: ScoringModel) -> Touch:
    """Record one signal: engagement points, explicit traits, sessions and the timeline. An
    outcome is recorded as such, a rep's feedback on the timeline: no points, no session."""
    ts = signal["ts"]
    profile.model = signal.get("model", "")
    outcome = outcome_of(signal)
    if outcome is not None:
        _record_outcome(profile, outcome, ts, amount_of(signal))
        _update_traits(profile, signal)
        _record_activity(profile, ts, describe(signal))
        return Touch(is_late(signal, model), new_session=False, new_web_session=False)
    if is_feedback(signal):  # a rep's word on an alert: on the timeline, nothing else
        _record_activity(profile, ts, describe(signal))
        return Touch(is_late(signal, model), new_session=False, new_web_session=False)
    previous_web = profile.last_web
    touch = _touch_sessions(profile, signal, model)
    if is_presence(signal) and not touch.late and ts >= previous_web:
        touch = replace(touch, engaged=_record_visit(profile, signal, touch, previous_web, model))
    for rule in matching_rules(signal, model):
        points = capped_points(rule, ts, profile.given_today)
        if points:
            profile.engagement.add(rule.id, points, ts, model.half_lives, model.latest)
    _update_traits(profile, signal)
    if not is_engaged_time(signal):  # a page's report of time is no action of its own
        _record_activity(profile, ts, describe(signal))
    return touch


def _record_visit(
    profile: Profile, signal: Envelope, touch: Touch, previous_web: int, model: ScoringModel
) -> tuple[str, ...]:
    """Follow the person's web visit; the engaged-time key actions this signal crossed."""
    ts = signal["ts"]
    if touch.new_web_session:
        profile.visit_start, profile.visit_pages, profile.visit_engaged = ts, 0, 0.0
        profile.dwell = None
    profile.page = path_of(signal) or profile.page
    profile.left = signal["event"] == LEFT
    if signal["type"] in ("page", "screen"):
        profile.visit_pages += 1
    if not is_engaged_time(signal):
        return ()
    seconds = credit(signal, previous_web, ts)
    profile.visit_engaged += seconds
    dwell, dwell_days = profile.dwell or {}, profile.dwell_days or {}
    crossed = count_engaged(dwell, dwell_days, signal, seconds, model)
    profile.dwell, profile.dwell_days = dwell or None, dwell_days or None
    return crossed


def _touch_sessions(profile: Profile, signal: Envelope, model: ScoringModel) -> Touch:
    ts, gap = signal["ts"], model.alerts.live_visit.session_gap_ms
    late = is_late(signal, model)
    new_session = not late and ts - profile.last_seen > gap
    is_web = is_presence(signal)
    new_web_session = not late and is_web and ts - profile.last_web > gap
    if new_session:
        profile.session_start = ts
    profile.last_seen = max(profile.last_seen, ts)
    if is_web:
        profile.last_web = max(profile.last_web, ts)
    return Touch(late, new_session, new_web_session)


def _record_outcome(profile: Profile, outcome: str, ts: int, amount: float | None) -> None:
    """The latest outcome by event time wins (a late one from before changes nothing)."""
    if ts < profile.outcome_at:
        return
    profile.outcome, profile.outcome_at = outcome, ts
    profile.open_opportunity = outcome == "created"
    if amount is not None:
        profile.outcome_amount = amount


def is_presence(signal: Envelope) -> bool:
    """A browser signal on the website (a page view, a click or form sent while a page is
    open): the person is on the site. A server's call (a CRM sync) or an identify, alias
    or group call never is."""
    return (
        signal["channel"] == "web"
        and signal["trust"] != "server"
        and signal["type"] not in NOT_PRESENCE
    )


def is_late(signal: Envelope, model: ScoringModel) -> bool:
    """A signal that arrived later than the configured lateness after it happened."""
    return signal["received_at"] - signal["ts"] > model.alerts.late_after_ms


def absorb(profile: Profile, history: Profile, model: ScoringModel) -> None:
    """Fold a history into a contact's profile: a cookie's anonymous one (once per link), or
    another contact key's own record (once per trusted merge)."""
    profile.engagement.merge(history.engagement, model.half_lives, model.latest)
    merge_given(profile.given_today, history.given_today)
    _absorb_traits(profile, history)
    merged = sorted(profile.activity + history.activity)
    profile.activity = merged[-ACTIVITY_LENGTH:]
    profile.last_seen = max(profile.last_seen, history.last_seen)
    if history.last_web > profile.last_web:  # the cookie's visit is the person's latest
        profile.visit_start, profile.page, profile.left = (
            history.visit_start,
            history.page,
            history.left,
        )
        profile.visit_pages, profile.visit_engaged = history.visit_pages, history.visit_engaged
        profile.dwell = dict(history.dwell) if history.dwell else None
    for action, days in (history.dwell_days or {}).items():
        profile.dwell_days = profile.dwell_days or {}
        mine = profile.dwell_days.setdefault(action, {})
        for day, seconds in days.items():
            mine[day] = mine.get(day, 0.0) + seconds
    profile.last_web = max(profile.last_web, history.last_web)
    profile.session_start = max(profile.session_start, history.session_start)
    if history.outcome is not None:
        _record_outcome(profile, history.outcome, history.outcome_at, history.outcome_amount)
    for reason, count in history.machine_signals.items():
        profile.machine_signals[reason] = profile.machine_signals.get(reason, 0) + count


def assess(profile: Profile, at: int, model: ScoringModel) -> Assessment:
    """Fit, engagement, grade and sales-readiness as of event time `at` (never earlier
    than the latest signal or view: a late signal is judged with everything known)."""
    at = max(at, profile.engagement.as_of, profile.viewed_at)
    fit = _fit(profile, model)
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
        engagement_points=contributions,
    )


def _fit(profile: Profile, model: ScoringModel) -> Fit:
    """Fit changes only with the traits it reads: recompute only then."""
    key = tuple(profile.traits.get(trait) for trait in model.fit_traits)
    if profile.fit_memo is None or profile.fit_memo[0] != key:
        profile.fit_memo = (key, fit_score(profile.traits, model))
    return profile.fit_memo[1]


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
    if is_feedback(signal):
        return describe_feedback(signal["props"])
    return str(signal["event"] or kind)


def _campaign(signal: Envelope) -> str:
    name = campaign_name(signal)
    return f"'{name}'" if name else ""


def _update_traits(profile: Profile, signal: Envelope) -> None:
    """Keep the signal's traits its proof allows: never over a stronger source's value."""
    how = how_recognized(signal)
    props = signal["props"]
    if signal["type"] in ("identify", "form_submit"):
        for key in KEPT_TRAITS:
            value = props.get(key)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                _set_trait(profile, key, value, how)
    traits, trust = profile.traits, profile.trust
    for key in ("email", "name", "account"):
        value = signal[key]  # type: ignore[literal-required]
        # Most signals repeat what the profile holds, from a source as strong: nothing to do.
        if value and (traits.get(key) != value or trust.get(key) != how):
            _set_trait(profile, key, value, how)


def _set_trait(profile: Profile, key: str, value: Any, how: str) -> None:
    if may_set(key, how, profile.trust.get(key)):
        _put_trait(profile, key, value, how)


def _put_trait(profile: Profile, key: str, value: Any, how: str | None) -> None:
    """Keep a trait and the proof that set it (none for state kept before traits had one);
    the email's domain follows the email."""
    profile.traits[key] = value
    if how is not None:
        profile.trust[key] = how
    if key == "email":
        profile.traits["email_domain"] = str(value).rpartition("@")[2]


def _absorb_traits(profile: Profile, history: Profile) -> None:
    """A history's traits join where the profile has none, or where a stronger source set
    them; `recognized_by` keeps the stronger proof."""
    traits = profile.traits
    for key, value in history.traits.items():
        how = history.trust.get(key)
        if key == "recognized_by":
            traits[key] = stronger(traits.get(key), value)
        elif key == "email_domain":
            continue  # follows the email
        elif key not in traits:
            _put_trait(profile, key, value, how)
        elif how is not None and rank(how) > rank(profile.trust.get(key)):
            _set_trait(profile, key, value, how)


def recognize(profile: Profile, how: str) -> None:
    """Note how the person behind a signal was recognized: the strongest proof stays."""
    profile.traits["recognized_by"] = stronger(profile.traits.get("recognized_by"), how)


def _record_activity(profile: Profile, ts: int, what: str) -> None:
    # Lines repeat across people ("Viewed /pricing"): one shared string each, freed once
    # no profile holds it.
    profile.activity.append((ts, sys.intern(what)))
    if len(profile.activity) > 1 and profile.activity[-2][0] > ts:
        profile.activity.sort()
    del profile.activity[:-ACTIVITY_LENGTH]
