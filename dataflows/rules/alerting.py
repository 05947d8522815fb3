"""React: which alerts a lead's change raises, with deterministic ids. Pure: no I/O.

- `sales_ready` when the lead enters a sales-ready cell (any alert a late signal raised is
  marked `late`);
- `cooling` when a sales-ready lead falls out (fit dropped, or engagement decayed: then at
  the event time it decayed, known in advance as `Profile.cooling_at`);
- `key_action` for a configured signal, or when the lead's engaged time on matching pages
  reaches a configured length, once per lead and session;
- `live_visit` when a known lead that is owned or well graded starts a new web session.
"""

from __future__ import annotations

from config.scoring import ScoringModel
from contracts.alerts import Alert, alert_id, visit_thread
from contracts.envelope import Envelope
from contracts.read_model import ProfileView
from dataflows.rules.profile import Assessment, Profile, Touch
from dataflows.rules.scoring import leaves_sales_ready_at, matches
from dataflows.rules.trust import identity


def make_alert(
    kind: str,
    ordinal: int | str,
    view: ProfileView,
    reason: str,
    *,
    signal: Envelope | None = None,
    late: bool = False,
    subject: str | None = None,
    thread: str | None = None,
) -> Alert:
    """An alert in the shape of the design, with the profile that explains it. Its id is
    derived from the subject (the contact, or the account for account alerts); `thread`
    is the lead's visit it belongs to."""
    return {
        "id": alert_id(subject or view["person"], kind, ordinal),
        "kind": kind,
        "ts": view["as_of"],
        "contact": view["person"],
        "account": view["account"],
        "owner": view["owner"],
        "grade": view["grade"],
        "fit": view["fit"],
        "engagement": view["engagement"],
        "reason": reason,
        "late": late,
        "signal": signal["id"] if signal is not None else None,
        "identity": identity(view.get("recognized_by")),
        "model": view.get("model", ""),
        "probability": view.get("probability"),
        "profile": view,
        "thread": thread,
    }


def react(
    profile: Profile,
    signal: Envelope,
    touch: Touch,
    assessment: Assessment,
    view: ProfileView,
    model: ScoringModel,
    *,
    was_known: bool,
) -> list[Alert]:
    """The alerts one signal raises; updates the lead's alert state in `profile`."""
    alerts = readiness_change(profile, assessment, view, model, signal, late=touch.late)
    if touch.late or assessment.fit.score < model.alerts.min_fit:
        return alerts
    alerts += _key_actions(profile, signal, touch, view, model)
    if was_known and touch.new_web_session and _follows_live(profile, assessment, model):
        why = _why(assessment)
        reason = f"is on {_page(signal)} now, {assessment.grade}" + (f" ({why})" if why else "")
        thread = _visit(profile)
        alerts.append(
            make_alert("live_visit", signal["ts"], view, reason, signal=signal, thread=thread)
        )
    return alerts


def crossing(profile: Profile) -> str:
    """The ordinal of a lead's current sales-ready crossing in its alert ids."""
    return f"{profile.since}\x1f{profile.crossings}"


def cool_down(profile: Profile, view: ProfileView) -> Alert:
    """The cooling alert for a lead whose engagement decayed out of sales-ready."""
    profile.sales_ready = False
    profile.cooling_at = None
    reason = f"cooled to {view['grade']}: engagement decayed to {view['engagement']}"
    return make_alert("cooling", crossing(profile), view, reason)


def readiness_change(
    profile: Profile,
    assessment: Assessment,
    view: ProfileView,
    model: ScoringModel,
    signal: Envelope,
    *,
    late: bool,
) -> list[Alert]:
    """A `sales_ready` or `cooling` alert when the lead crossed in or out of sales-ready
    (updates the lead's readiness and when it will cool)."""
    alerts: list[Alert] = []
    kind = None
    if assessment.sales_ready and not profile.sales_ready:
        profile.crossings += 1
        why = _why(assessment)
        kind, reason = "sales_ready", f"entered {assessment.grade}" + (f": {why}" if why else "")
    elif profile.sales_ready and not assessment.sales_ready:
        kind, reason = "cooling", f"left sales-ready for {assessment.grade} (fit {view['fit']})"
    if kind is not None:
        thread = _visit(profile)
        alerts.append(
            make_alert(
                kind, crossing(profile), view, reason, signal=signal, late=late, thread=thread
            )
        )
    profile.sales_ready = assessment.sales_ready
    profile.cooling_at = None
    if assessment.sales_ready and model.alerts.cooling:
        profile.cooling_at = leaves_sales_ready_at(
            profile.engagement, assessment.fit.score, assessment.at, model.grid, model.half_lives
        )
    return alerts


def _key_actions(
    profile: Profile, signal: Envelope, touch: Touch, view: ProfileView, model: ScoringModel
) -> list[Alert]:
    alerts = []
    for action in model.alerts.key_actions:
        if action.engaged_seconds is not None:
            if action.id not in touch.engaged:
                continue
        elif not matches(action.when, signal):
            continue
        if profile.key_actions.get(action.id) == profile.session_start:
            continue  # already told the rep during this session
        profile.key_actions[action.id] = profile.session_start
        ordinal = f"{action.id}\x1f{signal['id']}"
        thread = _visit(profile)
        alert = make_alert("key_action", ordinal, view, action.label, signal=signal, thread=thread)
        alert["rule"] = action.id
        alerts.append(alert)
    return alerts


def _visit(profile: Profile) -> str:
    """The thread of the lead's current visit (its session)."""
    return visit_thread(profile.person, profile.session_start)


def _follows_live(profile: Profile, assessment: Assessment, model: ScoringModel) -> bool:
    rule = model.alerts.live_visit
    return (rule.owned and bool(profile.traits.get("owner"))) or assessment.grade in rule.cells


def _why(assessment: Assessment) -> str:
    return ", ".join(f"{label} ({value:.0f})" for label, value in assessment.contributions[:3])


def _page(signal: Envelope) -> str:
    page = signal["context"].get("page") or {}
    return str(page.get("path") or page.get("url") or "the site")
