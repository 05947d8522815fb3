"""Outcomes on the profile: told by server sources only, the latest by event time wins,
never engagement, kept across merges."""

from __future__ import annotations

from config.scoring import load_scoring_model
from config.settings import CONFIG_DIR
from contracts.envelope import Envelope
from dataflows.rules.leads import profile_view
from dataflows.rules.outcomes import amount_of
from dataflows.rules.profile import Profile, absorb, apply_signal, assess
from tests.conftest import T0, envelope, page_view

MODEL = load_scoring_model(CONFIG_DIR / "scoring.toml")
HOUR = 3_600_000


def deal(event: str, at: int, trust: str = "server", **props: object) -> Envelope:
    return envelope(
        type="track",
        event=event,
        trust=trust,
        user_id="u-1",
        ts=T0 + at,
        received_at=T0 + at,
        props=props,
    )


def _lead() -> Profile:
    lead = Profile("u-1")
    apply_signal(lead, page_view("/pricing", user_id="u-1"), MODEL)
    return lead


def test_a_won_deal_is_recorded_and_is_no_engagement():
    lead = _lead()
    before = dict(lead.engagement.points)
    apply_signal(lead, deal("Opportunity Created", HOUR, amount=12_000), MODEL)
    assert (lead.outcome, lead.open_opportunity, lead.outcome_amount) == ("created", True, 12e3)
    apply_signal(lead, deal("Opportunity Won", 2 * HOUR), MODEL)
    assert (lead.outcome, lead.outcome_at, lead.open_opportunity) == ("won", T0 + 2 * HOUR, False)
    assert lead.outcome_amount == 12_000, "the amount stays when the close names none"
    assert lead.engagement.points == before
    view = profile_view(lead, assess(lead, lead.last_seen, MODEL), MODEL)
    assert (view["outcome"], view["outcome_at"], view["open_opportunity"]) == (
        "won",
        T0 + 2 * HOUR,
        False,
    )
    assert [what for _, what in lead.activity][-1] == "Opportunity Won"


def test_a_browser_cannot_claim_a_deal():
    lead = _lead()
    apply_signal(lead, deal("Opportunity Won", HOUR, trust="browser"), MODEL)
    assert lead.outcome is None


def test_an_older_outcome_arriving_late_changes_nothing():
    lead = _lead()
    apply_signal(lead, deal("Opportunity Lost", 3 * HOUR), MODEL)
    apply_signal(lead, deal("Opportunity Created", HOUR), MODEL)
    assert (lead.outcome, lead.open_opportunity) == ("lost", False)


def test_a_merge_keeps_the_latest_outcome_of_either_side():
    lead, other = _lead(), Profile("bo@acme.com")
    apply_signal(lead, deal("Opportunity Created", HOUR), MODEL)
    apply_signal(other, deal("Opportunity Won", 2 * HOUR), MODEL)
    absorb(lead, other, MODEL)
    assert (lead.outcome, lead.outcome_at) == ("won", T0 + 2 * HOUR)


def test_only_a_plain_number_is_an_amount():
    signal = deal("Opportunity Won", 0)
    cases = [(12_000, 12_000.0), ("12000", None), (True, None), (float("nan"), None)]
    cases += [("\u0661\u0662", None), ({"value": [1, {"deep": 2}]}, None), (10**400, None)]
    for given, read in cases:
        assert amount_of({**signal, "props": {"amount": given}}) == read
