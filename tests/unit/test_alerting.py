"""Each alert rule kind: sales_ready (and late), cooling, key_action, live_visit, surge."""

from __future__ import annotations

from typing import Any

from config.routing import load_routing, route
from config.scoring import DAY_MS, MINUTE_MS, load_scoring_model
from config.settings import CONFIG_DIR
from contracts.envelope import Envelope
from dataflows.rules.accounts import Account, roll_up
from dataflows.rules.alerting import readiness_change
from dataflows.rules.identity import ToContact
from dataflows.rules.leads import cool_if_due, record, update_lead
from dataflows.rules.profile import Assessment, Profile
from dataflows.rules.scoring import Fit
from tests.conftest import T0, envelope, page_view

MODEL = load_scoring_model(CONFIG_DIR / "scoring.toml")
ORDER = (0, 0, "", "lead")  # where a cooling update stands in the stream (not under test)
VP = {"title": "VP Sales", "company_size": 800, "industry": "Software", "country": "US"}
SMALL = {"company_size": 60, "country": "US"}  # fit 20: C, the lowest fit that alerts


class Lead:
    """A contact driven signal by signal through the pure lead logic (its own record, which
    screens email signals, then its lead)."""

    def __init__(self, person: str = "dana@acme.com", **traits: Any) -> None:
        self.own = Profile(person)
        self.profile = Profile(person)
        self.profile.traits.update({"email": person, **traits})
        self.alerts: list[dict[str, Any]] = []

    def send(self, signal: Envelope, how: str = "server") -> dict[str, Any]:
        item = record(self.own, ToContact(self.profile.person, signal, how), MODEL)
        updates = update_lead(self.profile, item, MODEL)
        for update in updates:
            self.alerts += update.alerts
        return updates[-1].view

    def kinds(self) -> list[str]:
        return [a["kind"] for a in self.alerts]


def at(minutes: float) -> int:
    return T0 + int(minutes * MINUTE_MS)


def pricing(minutes: float, **fields: Any) -> Envelope:
    return page_view("/pricing", ts=at(minutes), received_at=at(minutes), **fields)


def test_sales_ready_fires_once_when_entering_a_cell():
    lead = Lead(**VP)  # fit 85: A
    for minute in range(3):
        lead.send(pricing(minute))  # 11, 22, 33 -> A2 at the third
    assert lead.kinds().count("sales_ready") == 1
    alert = next(a for a in lead.alerts if a["kind"] == "sales_ready")
    assert alert["grade"] == "A2"
    assert alert["ts"] == at(2)
    assert alert["late"] is False
    assert alert["reason"].startswith("entered A2: Viewed pricing (30)")
    assert alert["profile"]["fit_reasons"][0] == ["Executive or VP", 30.0]


def test_a_late_signal_is_scored_at_its_own_time_and_its_crossing_is_marked_late():
    lead = Lead(**VP)
    lead.send(pricing(60 * 24))
    lead.send(pricing(60 * 24 + 1))
    imported = envelope(
        type="track",
        event="Webinar Attended",
        channel="event",
        ts=at(0),  # yesterday
        received_at=at(60 * 24 + 2),
    )
    view = lead.send(imported)
    # Yesterday's 20 points have decayed by a day of a 30-day half-life when judged now.
    assert view["engagement"] == round(22 + 20 * 0.5 ** (1 / 30), 1)
    (crossing,) = [a for a in lead.alerts if a["kind"] == "sales_ready"]
    assert crossing["late"] is True
    assert "key_action" not in [a["kind"] for a in lead.alerts if a["signal"] == imported["id"]]


def test_key_actions_fire_once_per_session():
    lead = Lead(**VP)
    lead.send(pricing(0))
    lead.send(pricing(5))
    lead.send(pricing(100))  # a new session, 95 minutes later
    actions = [a for a in lead.alerts if a["kind"] == "key_action"]
    assert [a["ts"] for a in actions] == [at(0), at(100)]
    assert actions[0]["reason"] == "Is looking at pricing"
    assert actions[0]["id"] != actions[1]["id"]


def test_a_demo_request_is_a_key_action():
    lead = Lead(**SMALL)
    lead.send(envelope(type="form_submit", props={"form_id": "demo-request"}))
    assert lead.kinds() == ["key_action"]
    assert lead.alerts[0]["reason"] == "Requested a demo"


def test_live_visit_when_a_known_owned_lead_starts_a_web_session():
    lead = Lead(owner="sam", **SMALL)  # C: only ownership qualifies
    lead.send(envelope(type="email_click", channel="email", ts=at(0), received_at=at(0)))
    lead.send(page_view("/blog", ts=at(10), received_at=at(10)))
    lead.send(page_view("/docs", ts=at(20), received_at=at(20)))  # same session
    lead.send(page_view("/blog", ts=at(120), received_at=at(120)))
    visits = [a for a in lead.alerts if a["kind"] == "live_visit"]
    assert [v["ts"] for v in visits] == [at(10), at(120)]
    assert visits[0]["reason"].startswith("is on /blog now")


def test_no_live_visit_for_an_unowned_cold_lead_a_first_signal_or_a_late_one():
    cold = Lead(**SMALL)
    cold.send(page_view("/blog", ts=at(0), received_at=at(0)))
    cold.send(page_view("/blog", ts=at(120), received_at=at(120)))
    assert "live_visit" not in cold.kinds()

    owned = Lead(owner="sam", **SMALL)
    owned.send(page_view("/blog", ts=at(0), received_at=at(0)))
    assert "live_visit" not in owned.kinds(), "the first signal is no return visit"
    owned.send(page_view("/blog", ts=at(120), received_at=at(60 * 10)))
    assert "live_visit" not in owned.kinds(), "a beacon delivered hours late is no live visit"


def test_d_fit_leads_raise_no_key_action_or_live_visit():
    student = Lead(owner="sam", title="Student")
    student.send(page_view("/blog", ts=at(0), received_at=at(0)))
    student.send(pricing(120))
    student.send(envelope(type="form_submit", props={"form_id": "demo"}, ts=at(121)))
    assert student.kinds() == []


def test_a_well_graded_unowned_lead_gets_a_live_visit():
    lead = Lead(**VP)
    lead.send(page_view("/blog", ts=at(0), received_at=at(0)))
    lead.send(page_view("/blog", ts=at(45), received_at=at(45)))  # fit A: A4 is not a cell
    assert "live_visit" not in lead.kinds()
    for minute in range(3):
        lead.send(pricing(50 + minute))
    lead.send(page_view("/blog", ts=at(200), received_at=at(200)))
    assert lead.kinds()[-1] == "live_visit"


def test_cooling_is_scheduled_in_event_time_and_fires_once():
    lead = Lead(**VP)
    for minute in range(3):
        lead.send(pricing(minute))  # 33 -> A2; leaves below 25
    cooling_at = lead.profile.cooling_at
    assert cooling_at is not None

    # Pricing halves every 14 days, page views every 7: find the moment by hand.
    def total(t: int) -> float:
        return sum(
            10 * 0.5 ** ((t - at(m)) / (14 * DAY_MS)) + 0.5 ** ((t - at(m)) / (7 * DAY_MS))
            for m in range(3)
        )

    assert total(cooling_at) < 25 <= total(cooling_at - MINUTE_MS)
    assert cool_if_due(lead.profile, cooling_at - MINUTE_MS, MODEL, ORDER) is None
    cooled = cool_if_due(lead.profile, cooling_at, MODEL, ORDER)
    assert cooled is not None
    (alert,) = cooled.alerts
    assert (alert["kind"], alert["ts"], alert["grade"]) == ("cooling", cooling_at, "A3")
    assert cool_if_due(lead.profile, cooling_at + DAY_MS, MODEL, ORDER) is None, "only once"


def test_a_later_signal_reports_a_cooling_that_happened_before_it():
    lead = Lead(**VP)
    for minute in range(3):
        lead.send(pricing(minute))
    cooling_at = lead.profile.cooling_at
    assert cooling_at is not None
    lead.send(page_view("/blog", ts=cooling_at + DAY_MS, received_at=cooling_at + DAY_MS))
    assert lead.kinds()[-2:] == ["cooling", "live_visit"], "the cooling came first"
    assert lead.alerts[-2]["ts"] == cooling_at


def test_hysteresis_no_alerts_while_hovering_at_the_band_edge():
    lead = Lead(**VP)
    for minute in range(3):
        lead.send(pricing(minute))  # 33: A2
    # A careers page (-10) drops it to 23.1... then back up: it hovers around 30.
    lead.send(page_view("/careers", ts=at(10), received_at=at(10)))  # 24: below 25
    assert lead.kinds().count("cooling") == 1
    lead.send(page_view("/product", ts=at(11), received_at=at(11)))  # 28: A3, no re-cross
    lead.send(page_view("/product", ts=at(12), received_at=at(12)))  # 32: A2 again
    assert lead.kinds().count("sales_ready") == 2
    assert [k for k in lead.kinds() if k != "key_action"] == [
        "sales_ready",
        "cooling",
        "sales_ready",
    ]


def test_a_fit_drop_cools_a_lead_at_once():
    lead = Lead(**VP)
    for minute in range(3):
        lead.send(pricing(minute))
    lead.send(envelope(type="identify", ts=at(5), received_at=at(5), props={"title": "Student"}))
    assert lead.kinds()[-1] == "cooling"
    assert lead.alerts[-1]["reason"].startswith("left sales-ready for")


def test_account_surge_with_three_engaged_contacts_in_a_week():
    account, rule = Account(), MODEL.alerts.account_surge
    views = [
        {"person": f"p{n}@acme.com", "account": "acme.com", "as_of": at(n * 60 * 24), **_scores()}
        for n in range(3)
    ]
    assert roll_up(account, views[0], rule) is None
    assert roll_up(account, views[1], rule) is None
    alert = roll_up(account, views[2], rule)
    assert alert is not None
    assert alert["kind"] == "account_surge"
    assert alert["reason"].startswith("acme.com is surging: 3 engaged contacts in 7 days")
    assert alert["contacts"] == ["p0@acme.com", "p1@acme.com", "p2@acme.com"]
    assert roll_up(account, {**views[2], "as_of": at(3 * 60 * 24)}, rule) is None, "once"


def test_an_account_surge_is_about_the_account_and_goes_to_its_owner():
    """Not one contact's grade, name or rep: the account, its engaged contacts, and the
    owner most of them have (whoever's signal tipped it)."""
    account, rule = Account(), MODEL.alerts.account_surge
    owners = ["mia", "sam", "mia"]
    alert = None
    for n, owner in enumerate(owners):
        view = {
            "person": f"p{n}@initech.com",
            "account": "initech.com",
            "as_of": at(n),
            **_scores(engagement=20.0 + n, owner=owner),
            "name": f"Person {n}",
            "grade": "D4" if n == 1 else "A2",
        }
        alert = roll_up(account, view, rule)
    assert alert is not None
    assert alert["contact"] is None
    assert (alert["grade"], alert["fit"]) == (None, None)
    assert alert["account"] == "initech.com"
    assert alert["owner"] == "mia"
    assert alert["engagement"] == 63.0
    profile = alert["profile"]
    assert profile["person"] == "initech.com"
    assert [c["person"] for c in profile["contacts"]] == [
        "p2@initech.com",
        "p1@initech.com",
        "p0@initech.com",
    ], "most engaged first"
    assert profile["contacts"][0] == {
        "person": "p2@initech.com",
        "name": "Person 2",
        "title": None,
        "grade": "A2",
        "owner": "mia",
    }
    routing = load_routing(CONFIG_DIR / "routing.toml")
    assert route(profile, routing) == "mia"


def test_contacts_engaged_more_than_a_week_apart_do_not_surge():
    account, rule = Account(), MODEL.alerts.account_surge
    for n in range(3):
        view = {"person": f"p{n}", "account": "acme.com", "as_of": at(n * 60 * 24 * 5)}
        assert roll_up(account, {**view, **_scores()}, rule) is None


def test_summed_account_engagement_surges():
    account, rule = Account(), MODEL.alerts.account_surge
    view = {"person": "p0", "account": "acme.com", "as_of": T0, **_scores(engagement=160.0)}
    assert roll_up(account, view, rule) is not None


def _scores(engagement: float = 20.0, owner: str | None = None) -> dict[str, Any]:
    return {
        "engagement": engagement,
        "owner": owner,
        "grade": "B3",
        "fit": 50.0,
        "name": None,
        "title": None,
    }


def test_a_crm_reassignment_moves_later_alerts_to_the_new_owner():
    routing = load_routing(CONFIG_DIR / "routing.toml")
    lead = Lead(owner="sam", **VP)
    lead.send(pricing(0))
    crm_update = envelope(
        type="identify", ts=at(10), received_at=at(10), trust="server", props={"owner": "mia"}
    )
    lead.send(crm_update)
    lead.send(pricing(100))
    owners = [route(a["profile"], routing) for a in lead.alerts if a["kind"] == "key_action"]
    assert owners == ["sam", "mia"]


def _email(kind: str, ts: int, campaign: str = "spring", **fields: Any) -> Envelope:
    return envelope(
        type=kind,
        channel="email",
        anon_id=None,
        ts=ts,
        received_at=ts,
        context={"campaign": {"name": campaign}},
        **fields,
    )


def test_opens_and_clicks_at_delivery_are_a_scanners_and_not_scored():
    lead = Lead(**VP)
    delivered = at(0)
    lead.send(
        envelope(
            type="track",
            event="Email Delivered",
            channel="email",
            anon_id=None,
            ts=delivered,
            received_at=delivered,
            context={"campaign": {"name": "spring"}},
        )
    )
    view = lead.send(_email("email_click", delivered + 5_000))
    assert view["engagement"] == 0
    assert view["machine_signals"] == {"clicked_at_delivery": 1}
    person = lead.send(_email("email_click", delivered + 10 * MINUTE_MS))
    assert person["engagement"] == 5, "a click minutes later is a person"


def test_a_burst_of_clicks_is_a_scanner():
    lead = Lead(**VP)
    views = [lead.send(_email("email_click", at(60) + n * 1_000)) for n in range(4)]
    assert [v["engagement"] for v in views][:2] == [5, 10]
    assert views[-1]["engagement"] == 10, "the third and fourth click in 10 s are not counted"
    assert views[-1]["machine_signals"] == {"click_burst": 2}


def test_a_crm_sync_is_never_a_visit():
    """Server identifies two hours apart for an owned contact, a browser identify and a
    server-side page call: nobody is on the site, so no `live_visit`."""
    lead = Lead(owner="sam", **VP)
    lead.send(envelope(type="identify", trust="server", ts=at(0), received_at=at(0)))
    lead.send(envelope(type="identify", trust="server", ts=at(120), received_at=at(120)))
    lead.send(envelope(type="identify", ts=at(240), received_at=at(240)))
    lead.send(page_view("/pricing", trust="server", ts=at(360), received_at=at(360)))
    assert "live_visit" not in lead.kinds()
    lead.send(page_view("/blog", ts=at(480), received_at=at(480)))
    assert lead.kinds()[-1] == "live_visit", "a browser page view is"


def test_a_cooling_a_late_signal_caused_is_marked_late():
    lead = Lead(**VP)
    for minute in range(3):
        lead.send(pricing(minute))
    late = envelope(type="identify", ts=at(5), received_at=at(5 + 120), props={"title": "Student"})
    lead.send(late)
    assert lead.kinds()[-1] == "cooling"
    assert lead.alerts[-1]["late"] is True


def test_a_reason_without_contributions_ends_cleanly():
    profile = Profile("dana@acme.com")
    assessment = Assessment(at(0), Fit(85.0, ()), 0.0, "A1", True, (), {})
    view = {"person": "dana@acme.com", "account": None, "owner": None, "grade": "A1"}
    view |= {"fit": 85.0, "engagement": 0.0, "as_of": at(0)}
    (alert,) = readiness_change(profile, assessment, view, MODEL, pricing(0), late=False)
    assert alert["reason"] == "entered A1"


def test_an_account_surge_a_late_signal_caused_says_late():
    account, rule = Account(), MODEL.alerts.account_surge
    view = {"person": "p0", "account": "acme.com", "as_of": T0, **_scores(engagement=160.0)}
    alert = roll_up(account, view, rule, late=True)
    assert alert is not None
    assert alert["late"] is True


def test_every_profile_and_alert_names_the_model_that_made_it():
    lead = Lead(owner="sam", **VP)
    for minute in range(4):
        lead.send(pricing(minute))
    assert lead.alerts
    assert {alert["model"] for alert in lead.alerts} == {MODEL.version}
    assert lead.alerts[-1]["profile"]["model"] == MODEL.version
