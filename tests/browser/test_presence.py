"""Presence end to end in headless Chromium: a known lead reads pricing for 40 s on a site
with the snippet; her rep's page shows her on the site within 2 s, the engaged-time rule
fires once, and she is gone from the page when she closes it. A CRM sync is never presence."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser

from config.settings import Settings
from config.sites import load_sites
from contracts import codec
from contracts.read_model import RedisKeys
from tests.browser.conftest import profile, serving
from tests.browser.test_rep_page import SERVER_KEY, open_page
from tests.browser.test_snippet import LOADED, PERSON
from tests.conftest import A_BROWSER, ARTIFACTS, DANA, wait_until
from tracking import user_hash

pytestmark = [pytest.mark.integration, pytest.mark.slow]
READ = "Read pricing for 30 s or more"
PAGE = """<!doctype html><html><head><title>Pricing</title>
<script async src="http://127.0.0.1:{collector}/t.js?k=wk_demo_browser"></script>
</head><body><h1>Pricing</h1><p>Plans for every team.</p></body></html>"""


@pytest.fixture
def site(running_system: Settings, tmp_path: Path) -> Iterator[str]:
    (tmp_path / "pricing.html").write_text(PAGE.format(collector=running_system.collector_port))
    with serving(tmp_path) as url:
        yield url


def reasons(settings: Settings, client: redis.Redis, rep: str) -> list[str]:
    """What the alerts in a rep's stream said (pushed or updating their visit's thread)."""
    stream = RedisKeys(settings.redis_prefix).rep_alerts(rep)
    return [codec.loads(fields[b"alert"])["reason"] for _, fields in client.xrange(stream)]


def test_a_lead_reading_pricing_is_on_her_reps_page_until_she_closes_it(
    running_system: Settings, redis_client: redis.Redis, site: str, browser: Browser
):
    settings = running_system
    crm = {"userId": "dana@acme.com", "traits": DANA}
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", headers=A_BROWSER
    ) as collector:
        assert collector.post("/v1/identify", json=crm, auth=SERVER_KEY).status_code == 200
    synced = wait_until(lambda: profile(settings, redis_client, "dana@acme.com"), what="the CRM")
    assert isinstance(synced, dict)
    assert synced["presence"] is None, "a CRM sync is not someone on the site"

    sam = open_page(browser, settings, "sam", "demo-token-sam")
    assert sam.inner_text("#present") == ""
    secret = load_sites(settings.config_dir / "sites.toml")["wk_demo_browser"].secret
    assert secret is not None
    dana = browser.new_page(user_agent=PERSON)
    dana.goto(f"{site}/pricing.html")
    dana.wait_for_function(LOADED)
    signed = user_hash.sign(secret, "dana@acme.com")
    dana.evaluate(f"dbl.identify('dana@acme.com', {{}}, {{userHash: '{signed}'}})")
    dana.evaluate("dbl.page()")  # her next page view is hers by name
    named = time.monotonic()
    row = sam.wait_for_selector('#present li[data-person="dana@acme.com"]', timeout=5_000)
    assert row is not None
    assert time.monotonic() - named < 2.5, "on the rep's page within 2 s (+ the poll)"
    assert "on /pricing.html" in row.inner_text()

    for _ in range(8):  # she reads for 40 s, moving the mouse now and then
        dana.mouse.move(100, 100)
        time.sleep(5)
        dana.mouse.move(200, 150)
    row = sam.query_selector('#present li[data-person="dana@acme.com"]')
    assert row is not None, "still on the site after 40 s"
    assert "engaged" in row.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    sam.screenshot(path=str(ARTIFACTS / "rep-page-presence.png"), full_page=True)
    said = wait_until(
        lambda: (
            READ in reasons(settings, redis_client, "sam")
            and reasons(settings, redis_client, "sam")
        ),
        what="the engaged-time rule",
    )
    assert isinstance(said, list)
    assert said.count(READ) == 1, "fires once per visit"
    visit = profile(settings, redis_client, "dana@acme.com")
    assert visit is not None
    assert 30 <= visit["presence"]["engaged_seconds"] <= 45

    dana.close(run_before_unload=True)
    closed = time.monotonic()
    sam.wait_for_selector('#present li[data-person="dana@acme.com"]', state="detached")
    assert time.monotonic() - closed < 5, "gone when her page closes"
    assert profile(settings, redis_client, "dana@acme.com")["presence"]["left"] is True  # type: ignore[index]
