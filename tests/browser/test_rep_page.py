"""The rep's live page in headless Chromium, fed by the whole pipeline."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import Browser, Page

from config.settings import Settings
from tests.conftest import A_BROWSER, ARTIFACTS, DANA, alert, publish

pytestmark = pytest.mark.integration
BROWSER_KEY = ("wk_demo_browser", "")
SERVER_KEY = ("wk_demo_server", "")
HOSTILE_NAME = "Dana <img src=x onerror=window.pwned=1> Ruiz"


def open_page(browser: Browser, settings: Settings, rep: str, token: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"http://127.0.0.1:{settings.rep_api_port}/reps/{rep}?token={token}")
    page.wait_for_selector(".status.live", timeout=10_000)
    return page


def test_an_alert_appears_on_its_reps_page_within_two_seconds_and_nowhere_else(
    running_system: Settings, browser: Browser
):
    settings = running_system
    sam = open_page(browser, settings, "sam", "demo-token-sam")
    alex = open_page(browser, settings, "alex", "demo-token-alex")
    collector = httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", timeout=10, headers=A_BROWSER
    )
    traits = {**DANA, "name": HOSTILE_NAME}
    # The CRM names her and her owner; her browser views pricing.
    calls = [("/v1/identify", {"anonymousId": "c-page", "traits": traits}, SERVER_KEY)]
    page = ("/v1/page", {"anonymousId": "c-page", "properties": {"path": "/pricing"}}, BROWSER_KEY)
    calls += [page] * 3
    with collector:
        for path, body, key in calls:
            assert collector.post(path, json=body, auth=key).status_code == 200
    sent = time.monotonic()
    card = sam.wait_for_selector(".alert.sales_ready", timeout=2_000)
    assert time.monotonic() - sent < 2.0
    assert card is not None
    assert HOSTILE_NAME in card.inner_text(), "visitor text is shown as text"
    assert sam.evaluate("window.pwned") is None, "and never run"
    assert "entered A2" in card.inner_text()
    # Her visit is one thread: one card that says all of it, whatever order it came in.
    sam.wait_for_selector('.alert[data-alerts="3"]', timeout=2_000)  # key action, visit, ready
    cards = sam.query_selector_all(".alert")
    assert len(cards) == 1, "one card per lead visit"
    told = cards[0].inner_text().lower()
    assert "key action · live visit · sales ready" in told
    assert "is looking at pricing, then is on /pricing now" in told
    sam.wait_for_selector("#hot li", timeout=11_000)
    assert "A2" in sam.inner_text("#hot")
    assert "Viewed pricing" in sam.inner_text("#hot"), "and why"
    sam.click(".alert.sales_ready summary")
    assert "Viewed /pricing" in sam.inner_text(".alert.sales_ready .activity")
    assert not sam.is_visible(".alert.sales_ready .identity"), "the CRM named her: verified"
    claimed = alert("claimed-1", kind="sales_ready")  # never throttled
    claimed["identity"] = {"recognized_by": "form_fill", "verified": False}
    publish(settings, claimed)
    note = sam.wait_for_selector('[data-alert-id="claimed-1"] .identity', timeout=5_000)
    assert note is not None
    assert "Unverified claim (form fill)" in note.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    sam.screenshot(path=str(ARTIFACTS / "rep-page-sam.png"), full_page=True)

    time.sleep(1.0)
    assert alex.query_selector_all(".alert") == [], "another rep's page shows nothing of it"
    assert "Dana" not in alex.inner_text("body")


def test_a_wrong_token_gets_401_and_no_page(running_system: Settings, browser: Browser):
    page = browser.new_page()
    response = page.goto(f"http://127.0.0.1:{running_system.rep_api_port}/reps/sam?token=nope")
    assert response is not None
    assert response.status == 401
    assert "Live leads" not in page.content()


def test_a_learned_models_chance_shows_beside_the_grade(running_system: Settings, browser: Browser):
    settings = running_system
    page = open_page(browser, settings, "sam", "demo-token-sam")
    profile = {
        "person": "dana@acme.com",
        "name": "Dana Ruiz",
        "owner": "sam",
        "probability_of": "won within 90 days",
        "top_signals": [["Viewed pricing (30-day)", 12.4]],
        "fit_reasons": [["seniority: vp", 9.0]],
        "activity": [],
    }
    publish(settings, alert("a-learned-1", probability=0.234, profile=profile))
    page.wait_for_selector(".alert", timeout=5_000)
    scores = page.inner_text(".alert .scores")
    assert "won within 90 days: 23 %" in scores
    page.click(".alert summary")
    why = page.inner_text(".alert .why")
    assert "Viewed pricing (30-day): 12.4" in why
    assert "seniority: vp (9)" in why


def test_a_rep_rates_an_alert_from_the_page_and_precision_counts_it(
    running_system: Settings, browser: Browser
):
    settings = running_system
    page = open_page(browser, settings, "sam", "demo-token-sam")
    publish(settings, alert("rated-1", kind="key_action", rule="pricing"))
    page.wait_for_selector('[data-alert-id="rated-1"] .feedback button', timeout=5_000)
    labels = page.locator('[data-alert-id="rated-1"] .feedback button').all_inner_texts()
    assert labels == [
        *("Useful", "Not useful", "Already working it"),
        *("Snooze lead 7 d", "Snooze account 7 d"),
    ]
    page.click('[data-alert-id="rated-1"] button[data-action="useful"]')
    page.wait_for_selector('[data-alert-id="rated-1"][data-feedback="useful"]', timeout=5_000)
    assert page.get_attribute('button[data-action="useful"]', "aria-pressed") == "true"
    admin = {"authorization": "Bearer demo-admin-token"}
    base = f"http://127.0.0.1:{settings.rep_api_port}"
    rated = httpx.get(f"{base}/v1/alerts/precision", headers=admin).json()
    assert rated["by_rule"]["pricing"] == {
        **{"useful": 1, "not_useful": 0, "already_working": 0},
        **{"rated": 1, "precision": 1.0},
    }
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "rep-page-feedback.png"), full_page=True)
