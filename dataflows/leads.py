"""A contact's lead state: absorb history, score a signal, detect a sales-ready crossing. Pure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from config.scoring import ScoringModel
from dataflows.identity import ToContact
from dataflows.profile import Assessment, Profile, absorb, apply_signal, assess


@dataclass(frozen=True, slots=True)
class LeadUpdate:
    """A contact's new read-model view, and the alert it raised, if any."""

    view: dict[str, Any]
    alert: dict[str, Any] | None


def update_lead(profile: Profile, item: ToContact, model: ScoringModel) -> LeadUpdate:
    """Apply one routed signal to a contact's profile and decide whether to alert."""
    if item.history is not None:
        absorb(profile, item.history, model)
    profile.traits["recognized_by"] = item.how
    apply_signal(profile, item.signal, model)
    assessment = assess(profile, item.signal["ts"], model)
    crossed = assessment.sales_ready and not profile.sales_ready
    profile.sales_ready = assessment.sales_ready
    view = profile_view(profile, assessment, model)
    if not crossed:
        return LeadUpdate(view, None)
    profile.crossings += 1
    return LeadUpdate(view, sales_ready_alert(profile, assessment, view))


def profile_view(profile: Profile, assessment: Assessment, model: ScoringModel) -> dict[str, Any]:
    """The profile as reps read it (Redis hash, profile API, alert payload)."""
    traits = profile.traits
    return {
        "person": profile.person,
        "email": traits.get("email"),
        "name": traits.get("name"),
        "title": traits.get("title"),
        "company": traits.get("company"),
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
    }


def account_of(traits: dict[str, Any], free_mail: frozenset[str]) -> str | None:
    """The account key: the CRM account id, else the email domain unless it is free mail."""
    if traits.get("account"):
        return str(traits["account"])
    domain = traits.get("email_domain")
    return None if domain is None or domain in free_mail else str(domain)


def alert_id(person: str, kind: str, ordinal: int) -> str:
    """Deterministic alert id: the same crossing after a replay gets the same id."""
    digest = hashlib.sha256(f"{person}\x1f{kind}\x1f{ordinal}".encode()).hexdigest()
    return digest[:32]


def sales_ready_alert(
    profile: Profile, assessment: Assessment, view: dict[str, Any]
) -> dict[str, Any]:
    """The `sales_ready` alert for the crossing that just happened."""
    why = ", ".join(f"{label} ({value:.0f})" for label, value in assessment.contributions[:3])
    return {
        "id": alert_id(profile.person, "sales_ready", profile.crossings),
        "kind": "sales_ready",
        "ts": assessment.at,
        "contact": profile.person,
        "account": view["account"],
        "owner": view["owner"],
        "grade": assessment.grade,
        "fit": view["fit"],
        "engagement": view["engagement"],
        "reason": f"entered {assessment.grade}: {why}",
        "profile": view,
    }
