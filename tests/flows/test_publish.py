"""A model published through the log takes effect at the marker in each partition, on any
number of workers: signals before it are scored with the model before, those after with
the new one."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage

from config.scoring import ScoringModel, load_scoring_model
from config.settings import Settings
from contracts.envelope import ANONYMOUS_PREFIX
from contracts.models import MODEL_CHANGE_KEY, model_change
from dataflows.models import Models, UnknownModel
from tests.backtests.test_replay import model_variant
from tests.flows.partitioned import Partitions, partitioned, run_in_process
from tests.streams import random_plan, stream

BASE = load_scoring_model(Settings().scoring_path)


def with_marker(parts: Partitions, version: str, at: int) -> Partitions:
    """Each partition with a marker before its first message received at `at` or later."""
    marked: Partitions = {}
    for name, messages in parts.items():
        cut = next((n for n, m in enumerate(messages) if m.timestamp[1] >= at), len(messages))
        marker = KafkaSourceMessage(
            key=MODEL_CHANGE_KEY,
            value=model_change(version, at),
            topic="events",
            partition=messages[0].partition if messages else 0,
            offset=-1,
            timestamp=(1, at),
        )
        marked[name] = [*messages[:cut], marker, *messages[cut:]]
    return marked


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> ScoringModel:
    folder: Path = tmp_path_factory.mktemp("variant")
    path = model_variant(
        folder, ('paths = ["/pricing*"]\npoints = 10', 'paths = ["/pricing*"]\npoints = 40')
    )
    return load_scoring_model(path)


def fetching(variant: ScoringModel) -> Models:
    def fetch(version: str) -> ScoringModel:
        if version != variant.version:
            raise UnknownModel(version)
        return variant

    return Models(BASE, fetch)


@pytest.mark.parametrize("seed", [3, 4])
def test_signals_after_the_marker_are_scored_with_the_published_model(
    variant: ScoringModel, seed: int
):
    signals = stream(random_plan(random.Random(seed), 160))
    middle = signals[len(signals) // 2]["received_at"]
    parts = with_marker(partitioned(signals, 3), variant.version, middle)

    profiles, alerts = run_in_process(parts, 1, fetching(variant))
    unmarked_profiles, unmarked_alerts = run_in_process(partitioned(signals, 3), 1)

    received: dict[str, int] = {}
    for signal in signals:  # a resent signal counts where it first came
        received.setdefault(signal["id"], signal["received_at"])
    raised = [a for a in alerts if a["signal"] in received]
    assert raised, "signals raise alerts"
    for alert in raised:
        expected = variant if received[alert["signal"]] >= middle else BASE
        assert alert["model"] == expected.version, alert
    # Every person here signals again after the marker: all are scored with the new model.
    assert {p["model"] for p in profiles.values()} == {variant.version}
    # Before the marker nothing changes: the same alerts as without a publication.
    before = {a["id"] for a in unmarked_alerts if received.get(a["signal"], middle) < middle}
    assert before <= {a["id"] for a in alerts}
    assert profiles != unmarked_profiles

    many_profiles, many_alerts = run_in_process(parts, 3, fetching(variant))
    assert many_profiles == profiles
    assert sorted(a["id"] for a in many_alerts) == sorted(a["id"] for a in alerts)


def test_a_marker_naming_a_model_nobody_published_sends_its_signals_to_the_dlq():
    signals = stream(random_plan(random.Random(5), 60))
    parts = with_marker(partitioned(signals, 2), "0123456789ab", signals[0]["received_at"])
    profiles, alerts = run_in_process(parts, 1, Models(BASE))
    assert not [p for p in profiles if not p.startswith(ANONYMOUS_PREFIX)]
    assert alerts == []
