"""The learning loop on the running system: outcomes recorded through the collector,
`dbl train` from the topic, a backtest of the learned model against the shipped one, a
publication, and live profiles that carry the new model's probability and reasons."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis

from bench.markets import world
from config.settings import Settings
from contracts import codec
from contracts.read_model import RedisKeys, decode_profile
from dbl.embedded import EmbeddedBroker, EmbeddedRedis
from tests.conftest import fresh_settings, wait_until
from tests.integration.test_backtest import backfill, for_backfills
from tests.integration.test_commands import dbl

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SERVER = ("wk_demo_server", "")


@pytest.fixture
def settings(broker: EmbeddedBroker, redis_server: EmbeddedRedis) -> Settings:
    """A fresh namespace whose collector takes a CRM's backfill at once."""
    return for_backfills(fresh_settings(broker.bootstrap_servers, redis_server.url))


def test_train_backtest_publish_and_see_the_probability_live(
    running_system: Settings, redis_client: redis.Redis, tmp_path: Path
):
    settings = running_system
    keys = RedisKeys(settings.redis_prefix)
    now = int(time.time() * 1000)
    market = world(31, leads=500, start=now - 250 * 86_400_000, days=240, noise=0.3)
    backfill(settings, market.signals, size=500)

    learned = tmp_path / "learned" / "scoring.toml"
    done = dbl(settings, "train", "--out", str(learned))
    assert done.returncode == 0, done.stderr
    assert "# Model card" in done.stdout
    card = codec.loads((learned.parent / "model_card.json").read_bytes())
    assert card["positives"] >= 50

    done = dbl(
        settings,
        "backtest",
        "--model",
        str(learned),
        "--against",
        str(settings.scoring_path),
        "--out",
        str(tmp_path / "backtest"),
    )
    assert done.returncode == 0, done.stderr
    report = codec.loads((tmp_path / "backtest" / "report.json").read_bytes())
    auc = {n: m["outcomes"]["ranking"]["auc"]["score"] for n, m in report["models"].items()}
    assert auc["candidate"] > auc["current"]

    done = dbl(
        settings,
        "model",
        "publish",
        str(learned),
        "--evaluation",
        str(tmp_path / "backtest" / "report.json"),
    )
    assert done.returncode == 0, done.stderr
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", timeout=30
    ) as collector:
        visit = [
            {"type": "identify", "anonymousId": "c-new", "traits": {"email": "new@lead.example"}},
            {"type": "page", "anonymousId": "c-new", "properties": {"path": "/pricing"}},
        ]
        assert collector.post("/v1/batch", json={"batch": visit}, auth=SERVER).status_code == 200

    def scored() -> dict | None:
        fields = redis_client.hgetall(keys.profile("new@lead.example"))
        profile = decode_profile(fields) if fields else None  # type: ignore[arg-type]
        return profile if profile and profile["model"] == card["version"] else None

    profile = wait_until(scored, timeout=30, what="the new lead scored by the published model")
    assert isinstance(profile, dict)
    assert 0.0 < profile["probability"] < 1.0
    assert profile["probability_of"] == "won within 90 days"
    assert abs(sum(c["points"] for c in profile["contributions"]) - profile["score"]) <= 1e-6
