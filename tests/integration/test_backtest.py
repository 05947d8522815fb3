"""`dbl backtest` against what the live system did: the same scores and alert ids from the
recorded events topic, and not one push, profile write or stream entry while it runs."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bench.markets import world
from config.routing import load_routing
from config.settings import Settings
from contracts import codec
from contracts.envelope import ANONYMOUS_PREFIX, Envelope
from contracts.read_model import RedisKeys, decode_profile
from dbl.embedded import EmbeddedBroker, EmbeddedRedis
from tests.conftest import fresh_settings, read_all, wait_until
from tests.integration.test_commands import dbl

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SERVER = ("wk_demo_server", "")
MINUTE = 60_000


@pytest.fixture
def settings(broker: EmbeddedBroker, redis_server: EmbeddedRedis) -> Settings:
    """A fresh namespace whose collector takes a CRM's backfill at once, and whose dataflow
    waits long enough for a signal in flight to keep its place in the stream (live, one that
    comes later than `idle_lag_s` is scored out of order; a replay puts it back in place)."""
    return for_backfills(fresh_settings(broker.bootstrap_servers, redis_server.url)).with_overrides(
        idle_lag_s=2.0
    )


def for_backfills(settings: Settings) -> Settings:
    """No rate limits: a CRM's backfill comes from one address, all at once."""
    limits = {"event_limit_per_s": 1e6, "event_limit_burst": 1e6}
    return settings.with_overrides(rate_limit_per_s=1e6, rate_limit_burst=1e6, **limits)


def backfill(settings: Settings, signals: list[Envelope], size: int = 200) -> None:
    """Send signals (those that already happened) as a site's backend would, in batches."""
    now = int(time.time() * 1000)
    calls = [segment_call(s) for s in signals if s["ts"] < now]
    url = f"http://127.0.0.1:{settings.collector_port}"
    with httpx.Client(base_url=url, timeout=30) as collector:
        for n in range(0, len(calls), size):
            answer = collector.post("/v1/batch", json={"batch": calls[n : n + size]}, auth=SERVER)
            assert answer.status_code == 200, answer.text


def segment_call(signal: Envelope) -> dict[str, Any]:
    """The Segment call a site's backend would send for a world's signal."""
    at = datetime.fromtimestamp(signal["ts"] / 1000, UTC).isoformat()
    if signal["type"] == "identify":
        traits = {**signal["props"], "email": signal["email"]}
        return {
            "type": "identify",
            "anonymousId": signal["anon_id"],
            "traits": traits,
            "timestamp": at,
        }
    if signal["type"] == "track":
        return {
            "type": "track",
            "userId": signal["email"],
            "event": signal["event"],
            "properties": signal["props"],
            "timestamp": at,
        }
    path = signal["context"]["page"]["path"]
    return {
        "type": "page",
        "anonymousId": signal["anon_id"],
        "properties": {"path": path},
        "timestamp": at,
    }


def live_profiles(client: redis.Redis, keys: RedisKeys) -> dict[str, dict[str, Any]]:
    found = {}
    for key in client.scan_iter(match=keys.profile("*")):
        person = key.decode().split(":profile:", 1)[1]
        if not person.startswith(ANONYMOUS_PREFIX):
            found[person] = decode_profile(client.hgetall(key))  # type: ignore[arg-type]
    return found


def test_a_backtest_of_the_live_model_gives_the_live_scores_and_alert_ids_and_pushes_nothing(
    running_system: Settings, redis_client: redis.Redis, tmp_path: Path
):
    settings = running_system
    keys = RedisKeys(settings.redis_prefix)
    # A market compressed into the last hour (a "day" is a minute), so signals are on time.
    now = int(time.time() * 1000)
    market = world(9, leads=40, start=now - 60 * MINUTE, days=150, day_ms=MINUTE // 3)
    backfill(settings, market.signals)

    # Everything is scored once the profiles and the alerts stop changing.
    def settled() -> tuple[int, int] | None:
        state = (
            len(live_profiles(redis_client, keys)),
            len(read_all(settings, settings.alerts_topic)),
        )
        time.sleep(2)
        again = (
            len(live_profiles(redis_client, keys)),
            len(read_all(settings, settings.alerts_topic)),
        )
        return state if state == again and state[0] == 40 else None

    wait_until(settled, timeout=60, what="the live system to score every signal")
    profiles = live_profiles(redis_client, keys)
    alert_ids = sorted(
        codec.loads(m.value())["id"] for m in read_all(settings, settings.alerts_topic)
    )
    assert alert_ids, "the market raised alerts"
    reps = list(load_routing(settings.routing_path).reps)
    streams_before = {rep: redis_client.xlen(keys.rep_alerts(rep)) for rep in reps}
    keys_before = redis_client.dbsize()

    done = dbl(
        settings, "backtest", "--model", str(settings.scoring_path), "--out", str(tmp_path / "out")
    )
    assert done.returncode == 0, done.stderr
    assert "replaying" in done.stderr, "a progress bar"

    out = tmp_path / "out" / "candidate"
    leads = {
        row["person"]: row
        for row in map(codec.loads, (out / "leads.jsonl").read_bytes().splitlines())
    }
    assert sorted(leads) == sorted(profiles)
    for person, lead in leads.items():
        live = profiles[person]
        fields = ("grade", "fit", "engagement", "score", "probability", "sales_ready", "as_of")
        fields += ("model", "outcome")
        assert {f: lead[f] for f in fields} == {f: live[f] for f in fields}, person
    replayed = sorted(
        codec.loads(line)["id"] for line in (out / "alerts.jsonl").read_bytes().splitlines()
    )
    assert replayed == alert_ids

    # Isolated: nothing reached the alerts topic, a rep's stream or the read model.
    assert len(read_all(settings, settings.alerts_topic)) == len(alert_ids)
    assert {rep: redis_client.xlen(keys.rep_alerts(rep)) for rep in reps} == streams_before
    assert redis_client.dbsize() == keys_before
    assert live_profiles(redis_client, keys) == profiles
