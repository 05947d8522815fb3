"""Trust per trait: a weaker source never overwrites what a stronger one set, only server
sources set `owner` and `account`, `recognized_by` keeps the strongest proof, and alerts say
how sure they are of the person."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from config.scoring import load_scoring_model
from config.settings import CONFIG_DIR
from dataflows.rules.identity import ToContact
from dataflows.rules.leads import update_lead
from dataflows.rules.profile import Profile, absorb, apply_signal
from dataflows.rules.trust import RANKS, may_set, rank
from tests.conftest import T0, envelope

MODEL = load_scoring_model(CONFIG_DIR / "scoring.toml")
# The traits a learned fit may read are as protected as the rest.
CRM = {
    **{"title": "VP Sales", "company": "Acme", "company_size": 800, "owner": "alex"},
    **{"seniority": "vp", "department": "sales", "annual_revenue": 5e6, "lead_source": "event"},
}
ATTACK = {
    **{"title": "CEO", "company": "Evil", "company_size": 50000, "owner": "sam"},
    **{"seniority": "c_level", "department": "it", "annual_revenue": 9e12, "lead_source": "x"},
}


def _identify(trust: str, ts: int = T0, **fields: Any) -> Any:
    return envelope(type="identify", trust=trust, ts=ts, received_at=ts, **fields)


def _known_contact() -> Profile:
    crm = Profile("crm-42")
    apply_signal(
        crm,
        _identify("server", user_id="crm-42", email="dana@acme.com", account="acc-1", props=CRM),
        MODEL,
    )
    return crm


def test_a_browser_claim_changes_nothing_a_server_source_set():
    dana = _known_contact()
    claim = _identify(
        "browser", ts=T0 + 1, user_id="crm-42", email="attacker@evil.example", account="acc-9"
    )
    claim["props"] = {**ATTACK, "industry": "Software"}
    apply_signal(dana, claim, MODEL)
    assert {k: dana.traits[k] for k in CRM} == CRM
    assert dana.traits["email"] == "dana@acme.com"
    assert dana.traits["email_domain"] == "acme.com"
    assert dana.traits["account"] == "acc-1"
    assert dana.traits["industry"] == "Software", "a trait nobody stronger set is kept"


def test_a_form_fill_cannot_set_owner_or_account_even_on_a_new_contact():
    lead = Profile("new@acme.com")
    form = envelope(type="form_submit", email="new@acme.com", account="acc-9", props=ATTACK)
    apply_signal(lead, form, MODEL)
    assert "owner" not in lead.traits
    assert "account" not in lead.traits
    assert lead.traits["title"] == "CEO"
    assert lead.trust["title"] == "form_fill"


def test_only_a_server_source_says_what_the_crm_says():
    lead = Profile("new@acme.com")
    crm_state = {"lifecycle_stage": "customer", "disqualified_at": "2026-01-01"}
    apply_signal(lead, _identify("browser", props=crm_state), MODEL)
    apply_signal(lead, envelope(type="form_submit", ts=T0 + 1, props=crm_state), MODEL)
    apply_signal(lead, _identify("signed", ts=T0 + 2, props=crm_state), MODEL)
    assert "lifecycle_stage" not in lead.traits, "a visitor cannot hide from sales"
    assert "disqualified_at" not in lead.traits
    apply_signal(lead, _identify("server", ts=T0 + 3, props=crm_state), MODEL)
    assert {k: lead.traits[k] for k in crm_state} == crm_state


def test_a_form_fill_overrides_a_plain_claim_and_not_the_reverse():
    lead = Profile("new@acme.com")
    apply_signal(lead, _identify("browser", props={"title": "Intern"}), MODEL)
    form = envelope(type="form_submit", ts=T0 + 1, received_at=T0 + 1, props={"title": "CTO"})
    apply_signal(lead, form, MODEL)
    apply_signal(lead, _identify("browser", ts=T0 + 2, props={"title": "Intern"}), MODEL)
    assert lead.traits["title"] == "CTO"


def test_absorbing_a_claimed_history_keeps_the_stronger_traits():
    dana = _known_contact()
    cookie = Profile("anon:c1")
    apply_signal(cookie, _identify("browser", props=ATTACK), MODEL)
    cookie.traits["recognized_by"] = "browser_identify"
    dana.traits["recognized_by"] = "server"
    absorb(dana, cookie, MODEL)
    assert {k: dana.traits[k] for k in CRM} == CRM
    assert dana.traits["recognized_by"] == "server"


def test_recognized_by_keeps_the_strongest_proof_and_alerts_say_this_signals_own():
    dana = _known_contact()
    dana.traits["recognized_by"] = "server"
    demo = envelope(
        type="form_submit",
        ts=T0 + 60_000,
        received_at=T0 + 60_000,
        email="dana@acme.com",
        props={"form_id": "demo-request", **ATTACK},
    )
    (update,) = update_lead(dana, ToContact("crm-42", demo, "form_fill"), MODEL)
    assert update.view["recognized_by"] == "server"
    assert update.view["owner"] == "alex"
    assert update.alerts, "a demo request is still news for the owner"
    for alert in update.alerts:
        assert alert["owner"] == "alex"
        assert alert["identity"] == {"recognized_by": "form_fill", "verified": False}


PROOFS = st.sampled_from([*RANKS, None])
TRAITS = st.sampled_from(["title", "email", "owner", "account", "company_size"])


@given(TRAITS, PROOFS, PROOFS)
def test_only_an_equal_or_stronger_source_may_set_a_trait(trait, how, set_by):
    if how is None:
        return
    allowed = may_set(trait, how, set_by)
    if trait in ("owner", "account"):
        assert allowed == (how == "server" and rank(set_by) <= rank("server"))
    else:
        assert allowed == (rank(how) >= rank(set_by))
