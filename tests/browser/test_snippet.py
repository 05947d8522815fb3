"""The tracking snippet on a small test site, in headless Chromium, through the whole
pipeline: page views, single-page navigation, the cookie across reloads, a form that names
the visitor, a signed email click that links the browser, and privacy signals honoured."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import Browser, Page

from config.settings import Settings
from config.sites import load_sites
from contracts import codec, email_links
from tests.browser.conftest import profile, serving
from tests.conftest import read_topic, wait_until
from tracking import user_hash

pytestmark = pytest.mark.integration
# Headless Chromium says "HeadlessChrome", which the collector rightly files as a bot.
PERSON = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"
# (An expression that yields a function would be called by Playwright on every poll.)
LOADED = "typeof window.dbl === 'object' && typeof window.dbl.track === 'function'"

PAGE = """<!doctype html><html><head><title>{title}</title>
<script async src="http://127.0.0.1:{collector}/t.js?k=wk_demo_browser&forms=1"></script>
</head><body><h1>{title}</h1>
<form id="demo-request" action="/thanks.html">
  <input type="email" name="email"><input name="name"><input name="title">
  <input name="company"><input type="password" name="password"><input name="card-number">
  <input name="phone"><textarea name="message"></textarea><button>Send</button>
</form></body></html>"""


@pytest.fixture
def site(running_system: Settings, tmp_path: Path) -> Iterator[str]:
    """A tiny website with the snippet on every page, on its own loopback port."""
    for name in ("index", "pricing", "thanks", "landing"):
        page = PAGE.format(title=name, collector=running_system.collector_port)
        (tmp_path / f"{name}.html").write_text(page)
    with serving(tmp_path) as url:
        yield url


def cookie(page: Page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "dbl_aid")


def activity(view: dict[str, Any] | None) -> list[str]:
    return [what for _, what in (view or {}).get("activity", [])]


def test_page_views_spa_navigation_reloads_and_a_form_reach_the_profile(
    running_system: Settings, redis_client: redis.Redis, site: str, browser: Browser
):
    page = browser.new_page(user_agent=PERSON)
    page.goto(f"{site}/index.html")
    page.wait_for_function(LOADED)
    anon = cookie(page)
    wait_until(lambda: profile(running_system, redis_client, f"anon:{anon}"), what="a page view")

    page.evaluate("history.pushState({}, '', '/pricing.html')")
    wait_until(
        lambda: (
            "Viewed /pricing.html"
            in activity(profile(running_system, redis_client, f"anon:{anon}"))
        ),
        what="the single-page navigation",
    )
    page.reload()
    page.wait_for_function(LOADED)
    assert cookie(page) == anon, "the cookie survives a reload"
    expires = next(c["expires"] for c in page.context.cookies() if c["name"] == "dbl_aid")
    # The snippet asks for two years; Chromium caps every cookie at 400 days.
    assert expires - time.time() > 399 * 86_400

    page.fill("input[name=email]", "Dana@Acme.com")
    page.fill("input[name=name]", "Dana Ruiz")
    page.fill("input[name=title]", "VP Sales")
    page.fill("input[name=company]", "Acme")
    page.fill("input[name=password]", "hunter2")
    page.fill("input[name=card-number]", "4111 1111 1111 1111")
    page.fill("input[name=phone]", "+1 555 0100")
    page.fill("textarea[name=message]", "my private notes")
    page.click("button")
    page.wait_for_url("**/thanks.html?**")

    dana = wait_until(
        lambda: profile(running_system, redis_client, "dana@acme.com"), what="the form fill"
    )
    assert isinstance(dana, dict)
    assert dana["recognized_by"] == "form_fill"
    assert dana["title"] == "VP Sales"
    seen = activity(dana)
    assert {"Viewed /index.html", "Viewed /pricing.html", "Submitted form demo-request"} <= set(
        seen
    )
    assert "hunter2" not in str(dana)
    stored = read_topic(running_system, running_system.events_topic, 1000, until=b"form_submit")
    (form,) = [r.value() for r in stored if b'"form_submit"' in r.value()]
    assert set(codec.loads(form)["props"]) == {
        *("form_id", "email", "name", "title", "company", "phone"),
    }
    for secret in (b"hunter2", b"4111", b"private notes"):
        assert secret not in form, "only the allowed fields leave"
    assert profile(running_system, redis_client, f"anon:{anon}") is None, "history moved"


def test_a_signed_email_click_links_the_browser_to_the_contact(
    running_system: Settings, redis_client: redis.Redis, site: str, browser: Browser
):
    demo = load_sites(running_system.config_dir / "sites.toml")["wk_demo_browser"]
    token = email_links.mint(
        demo, "lee@globex.io", "spring", f"{site}/landing.html?ref=mail", int(time.time()) + 60
    )
    page = browser.new_page(user_agent=PERSON)
    page.goto(f"http://127.0.0.1:{running_system.collector_port}/e/c/{token}")
    page.wait_for_function(LOADED)
    page.wait_for_function("!location.search.includes('dbl_t')")
    assert page.url == f"{site}/landing.html?ref=mail", "the token is removed from the address"
    lee = wait_until(
        lambda: (
            (p := profile(running_system, redis_client, "lee@globex.io"))
            and p["recognized_by"] == "signed"
            and p
        ),
        what="the signed identity",
    )
    assert "Clicked email 'spring'" in activity(lee if isinstance(lee, dict) else None)
    page.goto(f"{site}/index.html")
    wait_until(
        lambda: (
            "Viewed /index.html" in activity(profile(running_system, redis_client, "lee@globex.io"))
        ),
        what="later page views landing on the contact",
    )


def test_an_identify_with_the_sites_user_hash_is_signed_and_a_forged_one_refused(
    running_system: Settings, redis_client: redis.Redis, site: str, browser: Browser
):
    demo = load_sites(running_system.config_dir / "sites.toml")["wk_demo_browser"]
    assert demo.secret is not None
    good = user_hash.sign(demo.secret, "kim@initech.com")  # what the site's backend renders
    page = browser.new_page(user_agent=PERSON)
    page.goto(f"{site}/index.html")
    page.wait_for_function(LOADED)
    page.evaluate(f"dbl.identify('Kim@Initech.com', {{}}, {{userHash: '{good}'}})")
    page.evaluate("dbl.identify('max@initech.com', {}, {userHash: 'forged'})")
    kim = wait_until(
        lambda: profile(running_system, redis_client, "kim@initech.com"), what="the signed one"
    )
    assert isinstance(kim, dict)
    assert kim["recognized_by"] == "signed"
    time.sleep(1)
    assert profile(running_system, redis_client, "max@initech.com") is None, "refused (400)"


def test_global_privacy_control_means_no_cookie_and_no_tracking(
    running_system: Settings, site: str, browser: Browser
):
    context = browser.new_context(user_agent=PERSON)
    context.add_init_script(
        "Object.defineProperty(navigator, 'globalPrivacyControl', {value: true})"
    )
    page = context.new_page()
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if "/v1/" in request.url else None)
    page.goto(f"{site}/index.html")
    page.wait_for_function(LOADED)
    page.evaluate("dbl.track('Clicked', {}); dbl.identify('x@y.com', {})")
    time.sleep(0.5)
    assert sent == []
    assert [c for c in context.cookies() if c["name"] == "dbl_aid"] == []
    context.close()


def test_with_consent_required_nothing_is_sent_until_the_site_grants_it(
    running_system: Settings, site: str, browser: Browser, tmp_path: Path
):
    page = browser.new_page(user_agent=PERSON)
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if "/v1/" in request.url else None)
    page.goto(f"{site}/index.html")
    page.wait_for_function(LOADED)
    page.evaluate(
        f"""() => new Promise((done) => {{
        delete window.dbl;
        const s = document.createElement('script');
        s.src = 'http://127.0.0.1:{running_system.collector_port}/t.js?k=wk_demo_browser&consent=1';
        s.onload = done;
        document.head.append(s);
    }})"""
    )
    sent.clear()
    page.evaluate("dbl.track('Waiting', {})")
    time.sleep(0.5)
    assert sent == []
    page.evaluate("dbl.consent(true)")
    page.wait_for_timeout(500)
    assert len(sent) == 1
