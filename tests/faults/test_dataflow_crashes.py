"""kill -9 the dataflow at random points while thousands of signals flow, on the real broker
and Redis with Bytewax recovery: after the last restart every profile equals the reference's
(an uninterrupted run's), and every alert reached its rep's stream exactly once. The same for
a cluster of 2 processes x 2 workers, one process killed at a time."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from config.settings import Settings
from runtime.ports import free_port
from tests.conftest import start_module, stop_processes, wait_until
from tests.faults.live import (
    LiveTraffic,
    delivered_ids,
    ids_an_uninterrupted_dispatcher_delivers,
    read_profiles,
)
from tests.streams import expected

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIGNALS = 2_000
PER_SECOND = 100.0
KILLS = 5
# A caught-up partition vouches for the wall clock less this; generous, since the test
# shares two cores with the broker, Redis and several processes.
IDLE_LAG_S = 2.0


class Dataflow:
    """`python -m dataflows` with recovery, as 1 process or a cluster of 2 x 2 workers."""

    def __init__(self, settings: Settings, directory: Path, processes: int) -> None:
        self._settings = settings.with_overrides(idle_lag_s=IDLE_LAG_S)
        self._directory = directory
        self._processes = processes
        self._running: list[subprocess.Popen[bytes]] = []
        self._starts = 0
        recovery = directory / "recovery"
        recovery.mkdir()
        init = [sys.executable, "-m", "bytewax.recovery", str(recovery), str(processes)]
        subprocess.run(init, check=True, capture_output=True, timeout=60)
        self._recovery_args = ["-r", str(recovery), "-s", "1", "-b", "0"]

    def start(self) -> None:
        """Start every process of the dataflow (resuming from the last snapshot)."""
        self._starts += 1
        if self._processes == 1:
            self._running = [self._start(self._settings, [])]
            return
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(self._processes))
        self._running = [
            self._start(
                self._settings.with_overrides(dataflow_metrics_port=free_port()),
                ["-w", "2", "-i", str(index), "-a", addresses],
            )
            for index in range(self._processes)
        ]

    def _start(self, settings: Settings, cluster: list[str]) -> subprocess.Popen[bytes]:
        log = self._directory / f"dataflow-{self._starts}-{len(self._running)}.log"
        return start_module(settings, "dataflows", log, [*cluster, *self._recovery_args])

    def kill_one(self, rng: random.Random) -> None:
        """kill -9 one process; the rest of a cluster cannot go on without it: stop them."""
        victim = rng.choice(self._running)
        assert victim.poll() is None, "the dataflow died on its own: see its log"
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        stop_processes(self._running)

    def stop(self) -> None:
        stop_processes(self._running)


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "cluster-2x2"])
def test_kill_9_at_random_points_changes_no_profile_and_no_alert(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, processes: int
):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    dispatcher = start_module(settings, "alerts", tmp_path / "alerts.log")
    dataflow = Dataflow(settings, tmp_path, processes)
    traffic = LiveTraffic(settings, SIGNALS, PER_SECOND, seed)
    try:
        dataflow.start()
        traffic.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(1.0, 3.5))
            dataflow.kill_one(rng)
            dataflow.start()
        signals = traffic.finish(timeout=120)
        want_profiles, want_alerts = expected(signals)
        assert len(want_alerts) >= 5, "a stream worth testing raises alerts"

        wait_until(
            lambda: read_profiles(redis_client, settings) == want_profiles,
            timeout=90,
            what=f"the profiles of an uninterrupted run (seed {seed})",
        )
        want_ids = ids_an_uninterrupted_dispatcher_delivers(redis_client, settings, want_alerts)
        wait_until(
            lambda: set(delivered_ids(redis_client, settings)) >= want_ids,
            timeout=30,
            what=f"every alert in the reps' streams (seed {seed})",
        )
        delivered = delivered_ids(redis_client, settings)
        assert sorted(delivered) == sorted(want_ids), f"each alert exactly once (seed {seed})"
    finally:
        dataflow.stop()
        stop_processes([dispatcher])
