"""The browser SDKs sites already run, from npm, pointed at the collector by configuration
alone, in headless Chromium with no request interception (the browser makes its own
preflights): Segment's analytics.js 2.0 in standard and batching mode, RudderStack's JS SDK
v3 by XHR and by beacon. Each: a page, a single-page navigation, a track and an identify
make one profile, with the anonymous history moved into the contact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import Browser, Page

from config.settings import Settings
from tests.browser.conftest import profile, serving
from tests.conftest import wait_until

pytestmark = pytest.mark.integration
SDKS = Path(__file__).parent / "sdks"
# Headless Chromium says "HeadlessChrome", which the collector rightly files as a bot.
PERSON = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"

SEGMENT = """<!doctype html><html><head><title>{title}</title>
<script src="/sdks/node_modules/@segment/analytics-next/dist/umd/index.js"></script>
<script>
const segmentIo = {{ apiKey: "wk_demo_browser", apiHost: "{collector}/v1", protocol: "http" }};
if ({batching}) {{
  segmentIo.deliveryStrategy = {{ strategy: "batching", config: {{ size: 1, timeout: 100 }} }};
}}
window.analytics = AnalyticsNext.AnalyticsBrowser.load(
  {{ writeKey: "wk_demo_browser", cdnSettings: {{ integrations: {{ "Segment.io": segmentIo }} }} }}
);
</script></head><body>{title}</body></html>"""

RUDDERSTACK = """<!doctype html><html><head><title>{title}</title>
<script src="/sdks/node_modules/@rudderstack/analytics-js/dist/npm/modern/bundled/umd/index.js">
</script>
<script>
window.analytics = new rudderanalytics.RudderAnalytics();
analytics.load("wk_demo_browser", "http://{collector}", {{
  useBeacon: {beacon},
  beaconQueueOptions: {{ maxItems: 1, flushQueueInterval: 100 }},
  getSourceConfig: () => ({{
    source: {{
      id: "dbl-test", name: "dbl test", workspaceId: "dbl", writeKey: "wk_demo_browser",
      enabled: true, config: {{}}, destinations: []
    }}
  }}),
}});
</script></head><body>{title}</body></html>"""


@pytest.fixture
def site(running_system: Settings, tmp_path: Path) -> Iterator[str]:
    """A tiny website serving the SDKs' npm bundles, on its own loopback port."""
    if not (SDKS / "node_modules" / ".installed").exists():
        pytest.fail("the SDKs are not installed: `make test` installs them from npm")
    collector = f"127.0.0.1:{running_system.collector_port}"
    for sdk, page in (("segment", SEGMENT), ("rudderstack", RUDDERSTACK)):
        for mode in ("0", "1"):
            for title in ("home", "pricing"):
                on = "true" if mode == "1" else "false"
                html = page.format(title=title, collector=collector, batching=on, beacon=on)
                (tmp_path / f"{sdk}-{mode}-{title}.html").write_text(html)
    (tmp_path / "sdks").symlink_to(SDKS)
    (tmp_path / "favicon.ico").write_bytes(b"")
    with serving(tmp_path) as url:
        yield url


def activity(view: dict[str, Any] | None) -> set[str]:
    return {what for _, what in (view or {}).get("activity", [])}


@pytest.mark.parametrize(
    ("sdk", "mode"),
    [("segment", "0"), ("segment", "1"), ("rudderstack", "0"), ("rudderstack", "1")],
    ids=["segment-standard", "segment-batching", "rudderstack-xhr", "rudderstack-beacon"],
)
def test_an_sdk_configured_for_the_collector_makes_one_profile(
    browser: Browser,
    site: str,
    running_system: Settings,
    redis_client: redis.Redis,
    sdk: str,
    mode: str,
):
    email = f"{sdk}-{mode}@initech.com"
    context = browser.new_context(user_agent=PERSON)
    page: Page = context.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(f"{r.method} {r.url}: {r.failure}"))
    page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: failed.append(f"page error: {e}"))
    page.goto(f"{site}/{sdk}-{mode}-home.html")
    assert page.evaluate("typeof window.analytics") == "object", failed
    page.evaluate("analytics.page()")
    # A single-page navigation: the address changes, the page does not reload.
    page.evaluate(f"history.pushState({{}}, '', '/{sdk}-{mode}-pricing.html')")
    page.evaluate("analytics.page()")
    page.evaluate("analytics.track('Webinar Registered', {webinar: 'Scoring 101'})")
    page.evaluate(f"analytics.identify('{email}', {{email: '{email}', title: 'VP Sales'}})")

    def moved() -> bool:
        seen = activity(profile(running_system, redis_client, email))
        return {f"Viewed /{sdk}-{mode}-home.html", f"Viewed /{sdk}-{mode}-pricing.html"} <= seen

    wait_until(moved, timeout=30, what=f"{email}'s history, browser said: {failed}")
    view = profile(running_system, redis_client, email)
    assert view is not None
    assert view["title"] == "VP Sales"
    assert failed == [], "every request reached the collector"
    context.close()
