"""A shadow model beside the live one: its own profiles, alerts nobody is pushed, and the
ops page that compares the two (admin only), in headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser

from config.settings import Settings
from contracts import codec
from contracts.read_model import RedisKeys, decode_profile
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from tests.backtests.test_replay import model_variant
from tests.conftest import (
    ARTIFACTS,
    DANA,
    fresh_settings,
    read_topic,
    start_module,
    stop_processes,
    wait_until,
)

pytestmark = pytest.mark.integration
SERVER = ("wk_demo_server", "")
ADMIN = {"authorization": "Bearer demo-admin-token"}


@pytest.fixture
def with_shadow(
    broker: EmbeddedBroker, redis_server: EmbeddedRedis, tmp_path: Path
) -> Iterator[Settings]:
    """The system with a challenger whose engagement bands are lower: it grades sooner."""
    challenger = model_variant(
        tmp_path / "challenger",
        (
            'engagement_bands = { "1" = 60, "2" = 30, "3" = 10 }',
            'engagement_bands = { "1" = 20, "2" = 10, "3" = 5 }',
        ),
    )
    settings = fresh_settings(broker.bootstrap_servers, redis_server.url).with_overrides(
        shadow_model=str(challenger)
    )
    started = [
        start_module(settings, "tracking", tmp_path / "collector.log"),
        start_module(settings, "dataflows", tmp_path / "dataflow.log"),
        start_module(settings, "dataflows", tmp_path / "shadow.log", ["--shadow"]),
        start_module(settings, "alerts", tmp_path / "alerts.log"),
    ]
    try:
        wait_for_port(settings.collector_port, started[0], timeout=20)
        wait_for_port(settings.rep_api_port, started[3], timeout=20)
        yield settings
    finally:
        stop_processes(started)


def profile(client: redis.Redis, keys: RedisKeys, person: str) -> dict:
    fields = client.hgetall(keys.profile(person))
    return decode_profile(fields) if fields else {}  # type: ignore[arg-type]


def test_the_shadow_scores_apart_pushes_nothing_and_ops_see_the_difference(
    with_shadow: Settings, redis_client: redis.Redis, browser: Browser
):
    settings = with_shadow
    keys = RedisKeys(settings.redis_prefix)
    calls = [{"type": "identify", "anonymousId": "c-dana", "traits": DANA}]
    calls += [{"type": "page", "anonymousId": "c-dana", "properties": {"path": "/pricing"}}] * 2
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", timeout=10
    ) as collector:
        assert collector.post("/v1/batch", json={"batch": calls}, auth=SERVER).status_code == 200

    live = wait_until(
        lambda: (
            (p := profile(redis_client, keys, "dana@acme.com")) and len(p["activity"]) == 3 and p
        )
    )
    shadow = wait_until(
        lambda: (
            (p := profile(redis_client, keys.shadow, "dana@acme.com"))
            and len(p["activity"]) == 3
            and p
        )
    )
    assert isinstance(live, dict)
    assert isinstance(shadow, dict)
    assert (live["grade"], shadow["grade"]) == ("A3", "A1")
    assert live["engagement"] == shadow["engagement"] == 22.0
    assert live["model"] != shadow["model"]

    # The shadow's sales_ready is only in its own log: not on the alerts topic, not pushed.
    shadow_alerts = wait_until(lambda: redis_client.xrange(keys.shadow.raised))
    assert "sales_ready" in {codec.loads(f[b"alert"])["kind"] for _, f in shadow_alerts}
    topic = [codec.loads(m.value()) for m in read_topic(settings, settings.alerts_topic, 100, 3)]
    assert {a["model"] for a in topic} <= {live["model"]}
    assert "sales_ready" not in {a["kind"] for a in topic}
    sam = [codec.loads(f[b"alert"]) for _, f in redis_client.xrange(keys.rep_alerts("sam"))]
    assert "sales_ready" not in {a["kind"] for a in sam}

    rep_api = f"http://127.0.0.1:{settings.rep_api_port}"
    assert httpx.get(f"{rep_api}/v1/shadow").status_code == 401
    assert (
        httpx.get(
            f"{rep_api}/v1/shadow", headers={"authorization": "Bearer demo-token-sam"}
        ).status_code
        == 401
    )
    found = httpx.get(f"{rep_api}/v1/shadow", headers=ADMIN).json()
    assert found["shadow_running"] is True
    assert [(r["person"], r["live"], r["shadow"]) for r in found["grades_differ"]] == [
        ("dana@acme.com", "A3", "A1")
    ]
    assert [(r["kind"], r["subject"]) for r in found["only_shadow"]] == [
        ("sales_ready", "dana@acme.com")
    ]

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{rep_api}/ops/shadow?token=demo-admin-token")
    page.wait_for_selector("#grades tbody tr", timeout=10_000)
    assert page.inner_text("#grades tbody").split("\t")[:3] == ["dana@acme.com", "A3", "A1"]
    assert "sales_ready" in page.inner_text("#only-shadow tbody")
    page.screenshot(path=str(ARTIFACTS / "shadow-page.png"), full_page=True)
    page.close()
