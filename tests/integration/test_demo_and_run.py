"""The demo traffic and `dbl run`, as a newcomer meets them."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from config.settings import Settings
from contracts import codec
from contracts.read_model import RedisKeys
from dbl import demo
from dbl.embedded import wait_for_port
from runtime.ports import free_port
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


def test_demo_hot_visitors_reach_the_default_rep_and_others_do_not(
    running_system: Settings, redis_client: redis.Redis
):
    url = f"http://127.0.0.1:{running_system.collector_port}"
    rng = random.Random(7)
    journeys = {kind: demo.journey(rng, n, kind=kind) for n, kind in enumerate(demo.KINDS)}
    for calls in journeys.values():
        assert set(demo.play(url, calls)) == {200}
    hot_email = next(
        c.message["context"]["traits"]["email"]
        for c in journeys["hot"]
        if "traits" in c.message.get("context", {})
    )
    keys = RedisKeys(running_system.redis_prefix)

    def alerts() -> list[dict[str, str]]:
        found = []
        for rep in ("alex", "sam", "mia"):
            entries = redis_client.xrange(keys.rep_alerts(rep))
            found += [codec.loads(f[b"alert"]) for _, f in entries]  # type: ignore[union-attr]
        return found

    def contacts() -> list[str]:
        return [a["contact"] for a in alerts()]

    def kinds() -> list[str]:
        return [a["kind"] for a in alerts()]

    wait_until(lambda: "sales_ready" in kinds(), what="the hot visitor's sales_ready alert")
    assert set(contacts()) == {hot_email}
    metrics = httpx.get(f"http://127.0.0.1:{running_system.dataflow_metrics_port}/metrics").text
    assert 'dbl_alerts_emitted_total{kind="sales_ready"} 1.0' in metrics
    assert 'dbl_identity_links_total{how="form_fill"}' in metrics


def test_dbl_run_shows_alerts_within_30_seconds_and_ctrl_c_leaves_nothing_behind(
    tmp_path: Path,
):
    env = {
        **os.environ,
        "DBL_COLLECTOR_PORT": str(free_port()),
        "DBL_REP_API_PORT": str(free_port()),
        "DBL_DATAFLOW_METRICS_PORT": str(free_port()),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("REDIS_URL", None)
    out_path = tmp_path / "dbl-run.out"
    with out_path.open("wb") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "dbl.cli", "run", "--demo"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        started = time.monotonic()
        wait_until(lambda: b"ALERT sales_ready" in out_path.read_bytes(), 30, "a sales alert")
        elapsed = time.monotonic() - started
        family = psutil.Process(run.pid).children(recursive=True)
        assert len(family) >= 6, "broker, Redis, collector, dataflow, rep service, demo"
        (collector,) = [p for p in family if p.cmdline()[-2:] == ["-m", "tracking"]]
        collector.kill()
        wait_until(lambda: b"collector started again" in out_path.read_bytes(), 20, "a restart")
        wait_for_port(int(env["DBL_COLLECTOR_PORT"]), run, timeout=20)
        family = psutil.Process(run.pid).children(recursive=True)
        run.send_signal(signal.SIGINT)
        assert run.wait(20) == 0
        _, alive = psutil.wait_procs(family, timeout=10)
        assert alive == [], f"left behind: {alive}"
    finally:
        if run.poll() is None:
            run.kill()
    output = out_path.read_text()
    assert "ALERT sales_ready for " in output
    assert elapsed < 30
