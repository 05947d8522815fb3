"""The model loop on the running system: record outcomes, backtest a change, publish it,
see live leads scored with it, roll back; a backtest "as published" switches where live did."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from config.scoring import load_scoring_model
from config.settings import Settings
from contracts import codec
from contracts.read_model import RedisKeys, decode_profile
from tests.backtests.test_replay import model_variant
from tests.conftest import A_BROWSER, read_topic, wait_until
from tests.integration.test_commands import dbl

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BROWSER = ("wk_demo_browser", "")
SERVER = ("wk_demo_server", "")


def profile(client: redis.Redis, settings: Settings, person: str) -> dict[str, Any]:
    fields = client.hgetall(RedisKeys(settings.redis_prefix).profile(person))
    return decode_profile(fields) if fields else {}  # type: ignore[arg-type]


def visit(collector: httpx.Client, person: str, *paths: str) -> None:
    cookie = f"c-{person}"
    calls = [{"type": "identify", "anonymousId": cookie, "traits": {"email": person}}]
    calls += [{"type": "page", "anonymousId": cookie, "properties": {"path": p}} for p in paths]
    answer = collector.post("/v1/batch", json={"batch": calls}, auth=SERVER)
    assert answer.status_code == 200, answer.text


def markers_read(settings: Settings, version: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{settings.dataflow_metrics_port}/metrics").text
    found = re.search(rf'dbl_model_changes_total{{version="{version}"}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_backtest_publish_score_and_roll_back_through_the_log(
    running_system: Settings, redis_client: redis.Redis, tmp_path: Path
):
    settings = running_system
    base = load_scoring_model(settings.scoring_path)
    keen = model_variant(
        tmp_path / "keen",
        ('paths = ["/pricing*"]\npoints = 10', 'paths = ["/pricing*"]\npoints = 25'),
    )
    keen_version = load_scoring_model(keen).version
    collector = httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", timeout=10, headers=A_BROWSER
    )
    with collector:
        visit(collector, "ann@acme.com", "/pricing")
        ann = wait_until(lambda: profile(redis_client, settings, "ann@acme.com").get("engagement"))
        assert ann == 11.0  # 1 + 10: the deployment's model
        outcome = {"type": "track", "userId": "ann@acme.com", "event": "Opportunity Won"}
        assert collector.post("/v1/track", json=outcome, auth=SERVER).status_code == 200

        # Backtest the change on what was recorded, then publish it with its evaluation.
        history = tmp_path / "history.jsonl.gz"
        done = dbl(
            settings,
            "export-events",
            str(history),
            "--from",
            "2000-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        )
        assert done.returncode == 0, done.stderr
        out = tmp_path / "backtest"
        done = dbl(
            settings,
            "backtest",
            "--model",
            str(keen),
            "--against",
            str(settings.scoring_path),
            "--events",
            str(history),
            "--out",
            str(out),
        )
        assert done.returncode == 0, done.stderr
        assert (
            codec.loads((out / "report.json").read_bytes())["models"]["candidate"]["version"]
            == keen_version
        )

        started = time.monotonic()
        done = dbl(
            settings,
            "model",
            "publish",
            str(keen),
            "--evaluation",
            str(out / "report.json"),
            "--by",
            "ops-ada",
        )
        assert done.returncode == 0, done.stderr
        assert (
            f"model {keen_version} published: marker written to "
            f"{settings.events_partitions} partitions" in done.stdout
        )
        wait_until(
            lambda: markers_read(settings, keen_version) == settings.events_partitions,
            what="every partition to read the marker",
        )
        reached = time.monotonic() - started
        print(f"publish reached every partition's reader {reached:.2f} s after the command started")

        visit(collector, "bo@acme.com", "/pricing")
        bo = wait_until(
            lambda: (
                profile(redis_client, settings, "bo@acme.com").get("model") == keen_version
                and profile(redis_client, settings, "bo@acme.com")
            )
        )
        assert bo["engagement"] == 26.0  # 1 + 25: the published model
        # Ann is re-graded on her next signal, not at once.
        assert profile(redis_client, settings, "ann@acme.com")["model"] == base.version
        visit(collector, "ann@acme.com", "/pricing")
        wait_until(lambda: profile(redis_client, settings, "ann@acme.com")["model"] == keen_version)
        assert profile(redis_client, settings, "ann@acme.com")["engagement"] == pytest.approx(
            32.0, abs=0.01
        ), "11 before, then 1 + 20 (pricing's daily cap of 30 is shared by both models)"

        done = dbl(settings, "model", "rollback", "--by", "ops-ada")
        assert done.returncode == 0, done.stderr
        assert f"model {base.version} rolled back to" in done.stdout
        visit(collector, "cy@acme.com", "/pricing")
        cy = wait_until(
            lambda: (
                profile(redis_client, settings, "cy@acme.com").get("model") == base.version
                and profile(redis_client, settings, "cy@acme.com")
            )
        )
        assert cy["engagement"] == 11.0

    listed = dbl(settings, "model", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 3
    assert lines[1].split()[:2] == [keen_version, "publish"]
    assert "by ops-ada" in lines[1]
    assert "sales_ready precision" in lines[1]
    assert lines[2].split()[:2] == [base.version, "rollback"]
    assert lines[2].endswith("<- in effect")

    # A backtest as published switches models where live did: the same scores and alerts.
    time.sleep(3)
    done = dbl(settings, "backtest", "--model", "published", "--out", str(tmp_path / "replayed"))
    assert done.returncode == 0, done.stderr
    leads = {
        row["person"]: row
        for row in map(
            codec.loads,
            (tmp_path / "replayed" / "candidate" / "leads.jsonl").read_bytes().splitlines(),
        )
    }
    for person in ("ann@acme.com", "bo@acme.com", "cy@acme.com"):
        live = profile(redis_client, settings, person)
        assert (leads[person]["engagement"], leads[person]["model"]) == (
            live["engagement"],
            live["model"],
        )
    alerts = sorted(
        codec.loads(m.value())["id"] for m in read_topic(settings, settings.alerts_topic, 10**6, 2)
    )
    replayed = sorted(
        codec.loads(line)["id"]
        for line in (tmp_path / "replayed" / "candidate" / "alerts.jsonl").read_bytes().splitlines()
    )
    assert replayed == alerts
