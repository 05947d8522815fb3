"""Score math: decay, decayed sums and their merge, fit, the grid and hysteresis."""

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.scoring import DAY_MS, Conditions, load_scoring_model
from config.settings import CONFIG_DIR
from dataflows.rules.profile import Profile, apply_signal
from dataflows.rules.scoring import (
    CAP_DAYS_KEPT,
    Engagement,
    Given,
    campaign_name,
    capped_points,
    decay,
    fit_score,
    grade,
    is_sales_ready,
    leaves_sales_ready_at,
    link_of,
    matches,
    matching_rules,
    merge_given,
)
from tests.conftest import T0, envelope, page_view

MODEL = load_scoring_model(CONFIG_DIR / "scoring.toml")
HALF_LIVES = {"a": 10 * DAY_MS, "b": 2 * DAY_MS}


def test_decay_halves_every_half_life():
    assert decay(10, 0, DAY_MS) == 10
    assert decay(10, DAY_MS, DAY_MS) == pytest.approx(5)
    assert decay(10, 3 * DAY_MS, DAY_MS) == pytest.approx(1.25)


def test_decay_never_grows_for_negative_elapsed():
    assert decay(10, -DAY_MS, DAY_MS) == 10


def test_engagement_matches_the_closed_form_sum():
    eng = Engagement()
    signals = [("a", 10, 0), ("b", 4, DAY_MS), ("a", 6, 5 * DAY_MS)]
    for rule, points, ts in signals:
        eng.add(rule, points, ts, HALF_LIVES)
    at = 12 * DAY_MS
    expected = sum(p * 0.5 ** ((at - ts) / HALF_LIVES[r]) for r, p, ts in signals)
    assert eng.total(at, HALF_LIVES) == pytest.approx(expected)


def test_a_late_signal_counts_at_its_own_event_time():
    in_order, late = Engagement(), Engagement()
    in_order.add("a", 10, 0, HALF_LIVES)
    in_order.add("a", 10, 10 * DAY_MS, HALF_LIVES)
    late.add("a", 10, 10 * DAY_MS, HALF_LIVES)
    late.add("a", 10, 0, HALF_LIVES)
    assert late.total(10 * DAY_MS, HALF_LIVES) == pytest.approx(15)
    assert late.total(20 * DAY_MS, HALF_LIVES) == pytest.approx(
        in_order.total(20 * DAY_MS, HALF_LIVES)
    )


def test_merging_two_decayed_sums_equals_one_sum_of_all_signals():
    anon, contact, together = Engagement(), Engagement(), Engagement()
    for rule, points, ts in [("a", 10, 0), ("b", 3, 2 * DAY_MS)]:
        anon.add(rule, points, ts, HALF_LIVES)
        together.add(rule, points, ts, HALF_LIVES)
    for rule, points, ts in [("b", 8, DAY_MS), ("a", 1, 7 * DAY_MS)]:
        contact.add(rule, points, ts, HALF_LIVES)
        together.add(rule, points, ts, HALF_LIVES)
    contact.merge(anon, HALF_LIVES)
    at = 9 * DAY_MS
    assert contact.total(at, HALF_LIVES) == pytest.approx(together.total(at, HALF_LIVES))
    assert anon.total(at, HALF_LIVES) > 0, "merge must not consume the other sum"


def test_negligible_contributions_are_dropped():
    eng = Engagement()
    eng.add("b", 1, 0, HALF_LIVES)
    eng.add("a", 1, 100 * DAY_MS, HALF_LIVES)
    assert set(eng.points) == {"a"}


def test_total_is_never_negative():
    eng = Engagement()
    eng.add("a", -10, 0, HALF_LIVES)
    assert eng.total(0, HALF_LIVES) == 0


@pytest.mark.parametrize(
    ("fit", "engagement", "cell"),
    [(70, 60, "A1"), (69.9, 60, "B1"), (45, 59.9, "B2"), (20, 10, "C3"), (19, 9.9, "D4")],
)
def test_grade_bands(fit, engagement, cell):
    assert grade(fit, engagement, MODEL.grid) == cell


def test_hysteresis_keeps_a_sales_ready_lead_until_it_falls_out_by_the_margin():
    grid = MODEL.grid  # A2 from 30 engagement, margin 5
    assert is_sales_ready(80, 30, grid, was_ready=False)
    assert not is_sales_ready(80, 28, grid, was_ready=False)
    assert is_sales_ready(80, 28, grid, was_ready=True)
    assert not is_sales_ready(80, 24.9, grid, was_ready=True)


def test_fit_takes_the_first_matching_rule_per_group_and_clamps():
    traits = {"title": "VP Sales", "company_size": "201-500", "industry": "Software"}
    fit = fit_score(traits, MODEL)
    assert fit.score == 30 + 10 + 20 + 15
    assert [label for label, _ in fit.reasons] == [
        "Executive or VP",
        "Buying role (sales, marketing, revenue)",
        "Company of 200+ employees",
        "Target industry",
    ]
    full = {**traits, "country": "US", "budget": "Approved", "timeframe": "this quarter"}
    assert fit_score(full, MODEL).score == 100, "clamped"


def test_fit_negative_rules_and_floor():
    fit = fit_score({"title": "Student", "email_domain": "gmail.com"}, MODEL)
    assert fit.score == 0
    assert ("Free-mail address", -20) in fit.reasons


def test_every_default_rule_has_a_finite_half_life(tmp_path: Path):
    assert all(math.isfinite(r.half_life_ms) and r.half_life_ms > 0 for r in MODEL.engagement)


def _rules(signal) -> list[str]:
    return [rule.id for rule in matching_rules(signal, MODEL)]


def test_engagement_conditions_of_every_kind():
    assert _rules(page_view("/pricing/enterprise")) == ["page_view", "pricing_page"]
    assert _rules(page_view("/Careers/jobs")) == ["page_view", "careers_page"]
    click = envelope(type="email_click", channel="email", props={"link": "https://x.io/pricing"})
    assert _rules(click) == ["email_click", "email_pricing_click"]
    demo = envelope(type="form_submit", props={"form_id": "Demo-Request"})
    assert _rules(demo) == ["form_fill", "demo_request"]
    download = envelope(
        type="track", event="Content Downloaded", props={"content_type": "ROI calculator"}
    )
    assert _rules(download) == ["content_download", "bottom_funnel_content"]
    assert _rules(envelope(type="track", event="Email Bounced")) == ["bounced"]


def test_campaign_and_channel_conditions():
    when = Conditions(channels=("email",), campaigns=("spring*",))
    signal = envelope(
        type="email_open", channel="email", context={"campaign": {"name": "Spring-26"}}
    )
    assert matches(when, signal)
    assert not matches(when, {**signal, "channel": "web"})
    assert matches(when, {**signal, "context": {}, "props": {"campaign": "spring"}})
    assert not matches(when, {**signal, "context": {}})


def test_daily_cap_limits_a_reload_loop_and_resets_the_next_day():
    rule = next(r for r in MODEL.engagement if r.id == "pricing_page")
    given: Given = {}
    today = [capped_points(rule, T0 + n, given) for n in range(5)]
    assert today == [10, 10, 10, 0, 0]
    assert capped_points(rule, T0 + DAY_MS, given) == 10


def test_fit_bant_competitors_and_job_seekers():
    bant = {"budget": "Approved", "authority": "Decision maker", "need": "lead scoring"}
    assert fit_score({**bant, "timeframe": "this quarter"}, MODEL).score == 35
    assert fit_score({"title": "VP Sales", "email_domain": "marketo.com"}, MODEL).score == 0
    seeker = fit_score({"title": "Open to work", "company_size": 800}, MODEL)
    assert seeker.score == 0
    assert ("Job seeker", -40) in seeker.reasons


def test_leaving_sales_ready_is_found_to_the_minute():
    eng = Engagement()
    eng.add("pricing_page", 40, T0, MODEL.half_lives)
    leaves = leaves_sales_ready_at(eng, 80, T0, MODEL.grid, MODEL.half_lives)
    # 40 * 0.5 ** (t / 14 days) falls below 25 (30 - hysteresis) at t = 14 * log2(40 / 25) days
    exact = T0 + 14 * DAY_MS * math.log2(40 / 25)
    assert leaves is not None
    assert 0 <= leaves - exact < 60_000
    assert leaves_sales_ready_at(Engagement(), 80, T0, MODEL.grid, MODEL.half_lives) == T0 + 60_000


@given(
    points=st.lists(
        st.tuples(
            st.sampled_from(["pricing_page", "page_view", "demo_request"]),
            st.floats(1, 60),
            st.integers(0, 20 * DAY_MS),
        ),
        min_size=1,
        max_size=6,
    ),
    start_offset=st.integers(0, 20 * DAY_MS),
)
def test_the_cooling_minute_is_the_first_whole_minute_out_of_sales_ready(points, start_offset):
    eng = Engagement()
    for rule, value, at in points:
        eng.add(rule, value, T0 + at, MODEL.half_lives)
    start = T0 + start_offset
    floor = 30 - MODEL.grid.hysteresis  # an A lead (fit 80) stays ready down to A2's floor

    def ready(t: int) -> bool:
        return eng.total(t, MODEL.half_lives) >= floor

    leaves = leaves_sales_ready_at(eng, 80, start, MODEL.grid, MODEL.half_lives)
    assert leaves is not None
    assert leaves % 60_000 == 0
    assert leaves > start
    assert not ready(leaves)
    assert leaves - 60_000 <= start or ready(leaves - 60_000)


def test_segment_email_spec_fields_name_the_link_and_the_campaign():
    spec = {"link_url": "https://www.dbl.example/pricing", "campaign_name": "Spring"}
    signal = {"props": spec, "context": {}}
    assert link_of(spec) == "https://www.dbl.example/pricing"
    assert link_of({"link": "https://a.example/x"}) == "https://a.example/x"
    assert campaign_name(signal) == "Spring"
    click = envelope(type="email_click", channel="email", props=spec)
    assert "email_pricing_click" in [rule.id for rule in matching_rules(click, MODEL)]


def test_a_late_signal_meets_the_cap_of_its_own_day_whatever_came_between():
    """10 page views on day -3, one on day -1, then a late view dated day -3: day -3 gave
    its 10 already."""
    rule = next(r for r in MODEL.engagement if r.id == "page_view")
    given: Given = {}
    day = DAY_MS
    assert sum(capped_points(rule, T0 - 3 * day + n, given) for n in range(10)) == 10
    assert capped_points(rule, T0 - day, given) == 1
    assert capped_points(rule, T0 - 3 * day + 99, given) == 0


def test_a_late_signal_of_another_day_does_not_reset_todays_cap():
    """10 views on day -2, a late one dated day -3, 10 more on day -2: 11 points, not 21."""
    lead = Profile("dana@acme.com")
    day = DAY_MS
    views = [page_view("/x", ts=T0 - 2 * day + n, received_at=T0) for n in range(10)]
    views.append(page_view("/x", ts=T0 - 3 * day, received_at=T0))
    views += [page_view("/x", ts=T0 - 2 * day + 100 + n, received_at=T0) for n in range(10)]
    for view in views:
        apply_signal(lead, view, MODEL)
    given = lead.given_today["page_view"]
    assert given == {(T0 - 2 * day) // day: 10.0, (T0 - 3 * day) // day: 1.0}
    assert lead.engagement.total(T0, MODEL.half_lives) < 11


def test_merged_histories_share_each_days_cap_and_old_state_still_reads():
    rule = next(r for r in MODEL.engagement if r.id == "page_view")
    today = T0 // DAY_MS
    cookie: Given = {"page_view": {today: 6.0, today - 1: 2.0}}
    contact: Given = {"page_view": (today, 3.0)}  # type: ignore[dict-item]  # 0.1.0's shape
    merge_given(contact, cookie)
    assert contact == {"page_view": {today: 9.0, today - 1: 2.0}}
    assert capped_points(rule, T0 + 1, contact) == 1
    assert capped_points(rule, T0 + 2, contact) == 0


def test_a_persons_cap_memory_stays_bounded():
    rule = next(r for r in MODEL.engagement if r.id == "page_view")
    given: Given = {}
    for n in range(30):
        capped_points(rule, T0 + n * DAY_MS, given)
    assert len(given["page_view"]) == CAP_DAYS_KEPT
