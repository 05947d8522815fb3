"""A contact's lead: absorb history, score a signal, raise its alerts. Pure: no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from config.scoring import DAY_MS, ScoringModel
from contracts.alerts import Alert
from contracts.envelope import Envelope
from contracts.read_model import ProfileView
from dataflows.rules.alerting import cool_down, react, readiness_change
from dataflows.rules.email_timing import is_delivery, machine_reason, record_delivery
from dataflows.rules.identity import ToContact
from dataflows.rules.positions import OrderKey, signal_order
from dataflows.rules.presence import presence
from dataflows.rules.profile import (
    Assessment,
    Profile,
    absorb,
    apply_signal,
    assess,
    is_late,
    recognize,
)
from dataflows.rules.scoring import (
    NEGLIGIBLE_POINTS,
    explain,
    probability_of,
    score_of,
)
from dataflows.rules.trust import identity


@dataclass(frozen=True, slots=True)
class LeadUpdate:
    """A contact's new read-model view, the alerts it raised, and where it stands in the
    stream: (receive time, signal id, person) of the signal that caused it."""

    view: ProfileView
    alerts: list[Alert]
    order: OrderKey
    # The lead was folded into another by a trusted merge: its view leaves the read model.
    gone: bool = False
    # A late signal caused it (what it raises downstream, an account surge, is late too).
    late: bool = False

    def about(self) -> dict[str, Any]:
        """What a DLQ record says of it: the signal that caused it, and whose lead it is."""
        return {"id": self.order[2], "contact": self.view["person"]}


def record(own: Profile, item: ToContact, model: ScoringModel) -> ToContact:
    """Keep a contact key's own record: what its signals and absorbed histories gave its
    lead, which is what a trusted merge later moves to another lead. Email signals are
    screened for machines here, by this address's own delivery timing; the lead follows
    that verdict. Returns the item for the lead."""
    signal = item.signal
    if is_delivery(signal):
        record_delivery(own, signal)
        return item
    reason = machine_reason(own, signal)
    if reason is not None:
        return replace(item, machine=reason)
    if item.history is not None:
        absorb(own, item.history, model)
    recognize(own, item.how)
    apply_signal(own, signal, model)
    return item


def update_lead(profile: Profile, item: ToContact, model: ScoringModel) -> list[LeadUpdate]:
    """Apply one routed signal (screened by `record`) to a lead's profile and decide which
    alerts it raises. A pending cooling that happened (in event time) before this signal is
    reported first.
    """
    updates = []
    signal = item.signal
    order = signal_order(signal, item.person)
    cooled = cool_if_due(profile, signal["ts"], model, order)
    if cooled is not None:
        updates.append(cooled)
    if is_delivery(signal):
        return [*updates, _unchanged(profile, signal["ts"], model, order)]
    if item.machine is not None:
        # Not scored, no alert; the view shows the count of machine signals by reason.
        machine = profile.machine_signals
        machine[item.machine] = machine.get(item.machine, 0) + 1
        return [*updates, _unchanged(profile, signal["ts"], model, order)]
    was_known = profile.last_seen > 0
    if item.history is not None:
        absorb(profile, item.history, model)
    recognize(profile, item.how)
    touch = apply_signal(profile, signal, model)
    assessment = assess(profile, signal["ts"], model)
    view = profile_view(profile, assessment, model)
    alerts = react(profile, signal, touch, assessment, view, model, was_known=was_known)
    for alert in alerts:
        # Told by this signal: as sure of the person as this signal's own proof is.
        alert["identity"] = identity(item.how)
    updates.append(LeadUpdate(view, alerts, order, late=touch.late))
    return updates


def fold_in(
    profile: Profile, own: Profile | None, merge: Envelope, model: ScoringModel, order: OrderKey
) -> list[LeadUpdate]:
    """A trusted merge folds another contact key's own record into this lead; the lead may
    become (or stop being) sales-ready by it. A pending cooling is reported first."""
    updates = []
    cooled = cool_if_due(profile, merge["ts"], model, order)
    if cooled is not None:
        updates.append(cooled)
    if own is not None:
        absorb(profile, own, model)
    assessment = assess(profile, merge["ts"], model)
    view = profile_view(profile, assessment, model)
    late = is_late(merge, model)
    alerts = readiness_change(profile, assessment, view, model, merge, late=late)
    updates.append(LeadUpdate(view, alerts, order))
    return updates


def dissolve(profile: Profile, merge: Envelope, model: ScoringModel, order: OrderKey) -> LeadUpdate:
    """The last word of a lead folded into another by a trusted merge: it leaves the read
    model and its account."""
    return replace(_unchanged(profile, merge["ts"], model, order), gone=True)


def _unchanged(profile: Profile, at: int, model: ScoringModel, order: OrderKey) -> LeadUpdate:
    return LeadUpdate(profile_view(profile, assess(profile, at, model), model), [], order)


def cool_if_due(
    profile: Profile, now: int, model: ScoringModel, order: OrderKey
) -> LeadUpdate | None:
    """If a sales-ready lead has decayed out of it by event time `now`, the cooling update
    (placed in the stream at `order`)."""
    if not profile.sales_ready or profile.cooling_at is None or profile.cooling_at > now:
        return None
    assessment = assess(profile, profile.cooling_at, model)
    view = profile_view(profile, assessment, model)
    return LeadUpdate(view, [cool_down(profile, view)], order)


def refresh_due(profile: Profile, model: ScoringModel) -> int | None:
    """When (event time) a quiet lead's view is next decayed to the present: the first UTC
    midnight after its latest view, until its engagement has decayed to nothing. None for a
    sales-ready lead (its cooling decides) and for one without engagement.

    >>> from config.scoring import load_scoring_model
    >>> from config.settings import Settings
    >>> from dataflows.rules.scoring import Engagement
    >>> model = load_scoring_model(Settings().scoring_path)
    >>> lead = Profile("dana@acme.com", Engagement(DAY_MS + 5, {"pricing_page": 10.0}))
    >>> lead.viewed_at = DAY_MS + 5
    >>> refresh_due(lead, model) == 2 * DAY_MS
    True
    """
    window = _refresh_window(profile, model)
    return None if window is None else window[0]


def refresh_if_due(profile: Profile, now: int, model: ScoringModel) -> LeadUpdate | None:
    """A quiet lead's view decayed to the latest UTC midnight by event time `now` (or the
    last midnight before its engagement fades), when one is due: scores read days after a
    lead's last signal are scores of that day. The moment depends on the stream alone (its
    signals and `now`), so every run of it ends with the same views. Raises no alert (its
    sales-readiness is left to signals and its cooling)."""
    window = _refresh_window(profile, model)
    if window is None or window[0] > now:
        return None
    midnight = min(now, window[1]) // DAY_MS * DAY_MS
    assessment = replace(assess(profile, midnight, model), sales_ready=profile.sales_ready)
    order = (midnight, midnight, "", profile.person)
    return LeadUpdate(profile_view(profile, assessment, model), [], order)


def _refresh_window(profile: Profile, model: ScoringModel) -> tuple[int, int] | None:
    """The next refresh's midnight and when the engagement fades (every contribution below
    `NEGLIGIBLE_POINTS`), both event time; None when no refresh is due before it fades."""
    engagement = profile.engagement
    if profile.sales_ready or not engagement.points:
        return None
    lasts = [
        half_life * math.log2(abs(points) / NEGLIGIBLE_POINTS)
        for rule_id, points in engagement.points.items()
        if (half_life := model.half_lives.get(rule_id)) and abs(points) > NEGLIGIBLE_POINTS
    ]
    faded = engagement.as_of + int(max(lasts, default=0))
    due = (profile.viewed_at // DAY_MS + 1) * DAY_MS
    return (due, faded) if due <= faded else None


def profile_view(profile: Profile, assessment: Assessment, model: ScoringModel) -> ProfileView:
    """The profile as reps read it (Redis hash, profile API, alert payload); the profile
    remembers the moment (`viewed_at`), so later views never go back in time."""
    profile.viewed_at = max(profile.viewed_at, assessment.at)
    traits = profile.traits
    contributions = explain(assessment.fit, assessment.engagement_points, model)
    score = score_of(contributions)
    return {
        "person": profile.person,
        "email": traits.get("email"),
        "name": traits.get("name"),
        "title": traits.get("title"),
        "company": traits.get("company"),
        "company_size": traits.get("company_size"),
        "industry": traits.get("industry"),
        "country": traits.get("country"),
        "account": account_of(traits, model.free_mail),
        "owner": traits.get("owner"),
        "recognized_by": traits.get("recognized_by"),
        "grade": assessment.grade,
        "fit": round(assessment.fit.score, 1),
        "engagement": round(assessment.engagement, 1),
        "sales_ready": assessment.sales_ready,
        "as_of": assessment.at,
        "last_seen": profile.last_seen,
        "fit_reasons": [[label, points] for label, points in assessment.fit.reasons],
        "top_signals": [[label, round(v, 1)] for label, v in assessment.contributions],
        "activity": [[ts, what] for ts, what in reversed(profile.activity)],
        "machine_signals": dict(profile.machine_signals),
        "model": model.version,
        "outcome": profile.outcome,
        "outcome_at": profile.outcome_at or None,
        "open_opportunity": profile.open_opportunity,
        "outcome_amount": profile.outcome_amount,
        "contributions": contributions,
        "score": score,
        "probability": probability_of(score, model),
        "probability_of": _chance_of(model),
        "lifecycle_stage": traits.get("lifecycle_stage"),
        "disqualified_at": traits.get("disqualified_at"),
        "presence": presence(
            profile.visit_start,
            profile.last_web,
            profile.page,
            profile.visit_pages,
            profile.visit_engaged,
            profile.left,
        ),
    }


def _chance_of(model: ScoringModel) -> str | None:
    """What a model's probability is the chance of, in a rep's words."""
    chance = model.probability
    return None if chance is None else f"{chance.outcome} within {chance.within_days:g} days"


def account_of(traits: dict[str, Any], free_mail: frozenset[str]) -> str | None:
    """The account key: the CRM account id, else the email domain unless it is free mail."""
    if traits.get("account"):
        return str(traits["account"])
    domain = traits.get("email_domain")
    return None if domain is None or domain in free_mail else str(domain)
