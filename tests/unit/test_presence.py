"""Presence and engaged time: a visit from browser signals only, engaged time credited no
faster than the clock, and engaged-time key actions firing once when crossed."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from config.scoring import load_scoring_model
from config.settings import CONFIG_DIR
from contracts.envelope import Envelope
from contracts.read_model import is_on_site
from tests.conftest import envelope, page_view
from tests.unit.test_alerting import VP, Lead, at

MODEL = load_scoring_model(CONFIG_DIR / "scoring.toml")


def engaged(
    path: str, seconds: Any, ts: int, event: str = "Page Engaged", **fields: Any
) -> Envelope:
    return envelope(
        type="track",
        event=event,
        props={"engaged_seconds": seconds},
        context={"page": {"path": path}},
        ts=ts,
        received_at=ts,
        **fields,
    )


def seconds_after(minutes: float, seconds: float) -> int:
    return at(minutes) + int(seconds * 1000)


def test_a_visit_counts_pages_and_engaged_time_and_ends_when_the_page_closes():
    lead = Lead(**VP)
    lead.send(page_view("/", ts=at(0), received_at=at(0)))
    lead.send(page_view("/pricing", ts=seconds_after(0, 5), received_at=seconds_after(0, 5)))
    lead.send(engaged("/pricing", 15, seconds_after(0, 20)))
    view = lead.send(engaged("/pricing", 10, seconds_after(0, 30), event="Page Left"))
    visit = view["presence"]
    assert visit == {
        "since": at(0),
        "last": seconds_after(0, 30),
        "page": "/pricing",
        "pages": 2,
        "engaged_seconds": 25.0,
        "left": True,
    }
    assert not is_on_site(visit, seconds_after(0, 31), 45_000)
    assert [what for _, what in view["activity"]] == ["Viewed /pricing", "Viewed /"], (
        "reports of engaged time are no actions on the timeline"
    )


def test_engaged_time_is_credited_no_faster_than_the_clock():
    lead = Lead(**VP)
    lead.send(page_view("/pricing", ts=at(0), received_at=at(0)))
    for second in range(1, 11):  # ten reports in ten seconds, each claiming an hour
        view = lead.send(engaged("/pricing", 3600, seconds_after(0, second)))
    assert view["presence"]["engaged_seconds"] <= 10 + 10, "one second of slack per report"
    assert "Read pricing for 30 s or more" not in [a["reason"] for a in lead.alerts]


def test_bad_claims_of_engaged_time_count_nothing():
    lead = Lead(**VP)
    lead.send(page_view("/pricing", ts=at(0), received_at=at(0)))
    claims = [-5, "30", "\uff13\uff10", "\u0663\u0660", None, True, float("inf"), [30], {"s": 30}]
    for n, claim in enumerate(claims, start=1):
        view = lead.send(engaged("/pricing", claim, seconds_after(0, 15 * n)))
    assert view["presence"]["engaged_seconds"] == 0.0


def test_pricing_read_for_30_seconds_fires_once_per_visit():
    lead = Lead(**VP)
    lead.send(page_view("/pricing", ts=at(0), received_at=at(0)))
    for n in range(1, 5):  # 15 s reports: 30 s is reached by the second
        lead.send(engaged("/pricing", 15, seconds_after(0, 15 * n)))
    lead.send(page_view("/pricing", ts=at(100), received_at=at(100)))  # a new visit
    lead.send(engaged("/pricing", 15, seconds_after(100, 15)))
    lead.send(engaged("/pricing", 15, seconds_after(100, 30)))
    reads = [a for a in lead.alerts if a["reason"] == "Read pricing for 30 s or more"]
    assert [a["ts"] for a in reads] == [seconds_after(0, 30), seconds_after(100, 30)]
    assert reads[0]["kind"] == "key_action"
    assert reads[0]["thread"] == lead.alerts[0]["thread"], "the visit's thread"


def test_time_on_other_pages_does_not_count_for_pricing():
    lead = Lead(**VP)
    lead.send(page_view("/blog", ts=at(0), received_at=at(0)))
    for n in range(1, 5):
        lead.send(engaged("/blog", 15, seconds_after(0, 15 * n)))
    assert "Read pricing for 30 s or more" not in [a["reason"] for a in lead.alerts]


def test_ten_minutes_on_the_site_this_week_adds_up_over_visits_and_fires_once():
    lead = Lead(**VP)
    day = 24 * 60
    for visit in range(4):  # 4 visits on 4 days, 3 minutes each: 10 minutes in the 4th
        start = visit * day
        lead.send(page_view("/docs", ts=at(start), received_at=at(start)))
        for n in range(1, 13):
            lead.send(engaged("/docs", 15, seconds_after(start, 15 * n)))
    week = [a for a in lead.alerts if a["reason"] == "Spent 10 minutes on the site this week"]
    assert [a["ts"] for a in week] == [seconds_after(3 * day, 15 * 4)]


def test_time_from_more_than_a_week_ago_falls_out():
    lead = Lead(**VP)
    day = 24 * 60
    for start in (0, 8 * day):  # 6 minutes, then 6 minutes eight days later
        lead.send(page_view("/docs", ts=at(start), received_at=at(start)))
        for n in range(1, 25):
            lead.send(engaged("/docs", 15, seconds_after(start, 15 * n)))
    assert "Spent 10 minutes on the site this week" not in [a["reason"] for a in lead.alerts]


def test_a_server_or_crm_signal_is_never_presence():
    lead = Lead(**VP)
    view = lead.send(
        envelope(type="identify", channel="crm", trust="server", anon_id=None, user_id="dana")
    )
    assert view["presence"] is None
    view = lead.send(engaged("/pricing", 15, at(1), trust="server", channel="web"))
    assert view["presence"] is None, "a server's report of engaged time is no presence"
    assert "live_visit" not in lead.kinds()


@given(st.lists(st.tuples(st.integers(0, 120_000), st.floats(-1e9, 1e9)), max_size=30))
def test_engaged_time_never_exceeds_the_visits_length(reports):
    lead = Lead(**VP)
    lead.send(page_view("/pricing", ts=at(0), received_at=at(0)))
    ts = at(0)
    for gap, claim in reports:
        ts += gap
        lead.send(engaged("/pricing", claim, ts))
    visit = lead.send(page_view("/pricing", ts=ts, received_at=ts))["presence"]
    # Bounded by the visit's length, give or take a second of clock slack per report.
    assert (
        0
        <= visit["engaged_seconds"]
        <= (visit["last"] - visit["since"]) / 1000 + len(reports) + 0.1
    )
