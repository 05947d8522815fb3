"""Random multi-channel streams (`tests/streams.py`) through the real flow give exactly the
reference's profiles and alerts, on 1 worker, 3 workers and a cluster of 2 processes, and
with a crash and a recovery in the middle. Partitions are read by different workers, so a
contact's signals reach the score step by different paths in any interleaving.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import Settings
from contracts import codec
from dataflows.flow import build_flow
from tests.flows.partitioned import final_profiles, partitioned, run_cluster, run_in_process
from tests.flows.test_flow import as_messages
from tests.streams import KINDS, LATENESS, PAGES, PEOPLE, expected, stream

# One step of somebody's behaviour: (kind, person, cookie, page, gap, lateness).
steps = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, len(PEOPLE) - 1),
    st.integers(0, 2),
    st.integers(0, len(PAGES) - 1),
    st.integers(1, 90_000),  # ms since the previous signal was received
    st.sampled_from(LATENESS),
)


def by_id(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ids = [a["id"] for a in alerts]
    assert len(ids) == len(set(ids)), "every alert once"
    return {a["id"]: a for a in alerts}


PLANS = st.lists(steps, min_size=5, max_size=60)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("workers", [1, 3])
@FAST
@given(plan=PLANS, partitions=st.integers(1, 4))
def test_the_flow_equals_the_reference(workers: int, plan, partitions: int):
    signals = stream(plan)
    profiles, alerts = run_in_process(partitioned(signals, partitions), workers)
    want_profiles, want_alerts = expected(signals)
    assert profiles == want_profiles
    assert by_id(alerts) == by_id(want_alerts)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(steps, min_size=30, max_size=60))
def test_a_cluster_of_two_processes_equals_the_reference(plan, tmp_path_factory):
    signals = stream(plan)
    directory: Path = tmp_path_factory.mktemp("cluster")
    profiles, alerts = run_cluster(partitioned(signals, 4), directory)
    want_profiles, want_alerts = expected(signals)
    assert profiles == want_profiles
    assert by_id(alerts) == by_id(want_alerts)


def _run_with_recovery(items: list[Any], db_dir: Path, writes: list[Any], alerts: list[Any]):
    flow = build_flow(
        Settings(),
        events=TestingSource(items, batch_size=3),
        profiles=TestingSink(writes),
        alerts=TestingSink(alerts),
        dead_letters=TestingSink([]),
    )
    run_main(flow, epoch_interval=timedelta(0), recovery_config=RecoveryConfig(str(db_dir)))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=st.lists(steps, min_size=10, max_size=50), crash_at=st.floats(0.1, 0.9))
def test_a_crash_and_recovery_in_the_middle_changes_nothing(plan, crash_at, tmp_path_factory):
    signals = stream(plan)
    messages = as_messages(list(signals))
    cut = int(len(messages) * crash_at)
    items: list[Any] = [*messages[:cut], TestingSource.ABORT(), *messages[cut:]]
    db_dir: Path = tmp_path_factory.mktemp("recovery")
    init_db_dir(db_dir, 1)
    writes: list[Any] = []
    alerts: list[Any] = []
    _run_with_recovery(items, db_dir, writes, alerts)  # stops at the ABORT
    _run_with_recovery(items, db_dir, writes, alerts)  # resumes from the last snapshot

    want_profiles, want_alerts = expected(signals)
    assert final_profiles(writes) == want_profiles
    # Output of the epoch the crash interrupted is written again: alerts keep their ids,
    # and delivery keeps one of each.
    assert {a["id"]: a for a in map(lambda m: codec.loads(m.value), alerts)} == by_id(want_alerts)
