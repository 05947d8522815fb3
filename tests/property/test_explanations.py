"""Every profile explains its score: the contributions add up to it within 1e-6, whatever
the signals; a model that knows the chance of its outcome gives a probability with it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.errors import ConfigError
from config.scoring import ScoringModel, load_scoring_model
from config.settings import Settings
from dataflows.rules.leads import profile_view
from dataflows.rules.profile import Profile, apply_signal, assess
from tests.backtests.test_replay import model_variant
from tests.conftest import DANA, T0, envelope

PATHS = ["/pricing", "/blog", "/careers", "/demo", "/product", "/jobs/1"]
BASE = load_scoring_model(Settings().scoring_path)
CHANCE = '\n[probability]\noutcome = "won"\nwithin_days = 90\nintercept = -4.0\nper_point = 0.04\n'


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> ScoringModel:
    path = model_variant(
        tmp_path_factory.mktemp("learned"), ("[identity]", CHANCE + "\n[identity]")
    )
    return load_scoring_model(path)


def lead_after(signals: list[tuple[int, int]], model: ScoringModel, traits: dict) -> dict:
    profile = Profile("dana@acme.com")
    ts = T0
    identify = envelope(type="identify", email="dana@acme.com", props=traits, trust="server")
    apply_signal(profile, identify, model)
    for gap_h, page in signals:
        ts += gap_h * 3_600_000
        path = PATHS[page]
        apply_signal(
            profile, envelope(ts=ts, received_at=ts, context={"page": {"path": path}}), model
        )
    return dict(profile_view(profile, assess(profile, ts, model), model))


signals = st.lists(
    st.tuples(st.integers(0, 24 * 20), st.integers(0, len(PATHS) - 1)), min_size=0, max_size=40
)
traits = st.sampled_from([DANA, {"title": "Student"}, {}, {**DANA, "title": "Intern"}])


@given(signals, traits)
def test_the_contributions_add_up_to_the_score(steps: list[tuple[int, int]], who: dict):
    view = lead_after(steps, BASE, who)
    assert abs(sum(c["points"] for c in view["contributions"]) - view["score"]) <= 1e-6
    assert {c["kind"] for c in view["contributions"]} <= {"fit", "engagement"}
    assert view["probability"] is None, "the hand-set model knows no chance"
    ordered = [abs(c["points"]) for c in view["contributions"]]
    assert ordered == sorted(ordered, reverse=True)


@given(steps=signals, who=traits)
def test_a_learned_model_gives_the_chance_of_its_outcome(
    learned: ScoringModel, steps: list[tuple[int, int]], who: dict
):
    view = lead_after(steps, learned, who)
    logit = -4.0 + 0.04 * view["score"]
    assert view["probability"] == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-12)
    assert 0.0 <= view["probability"] <= 1.0


def test_a_bad_probability_table_is_refused_naming_the_key(tmp_path: Path):
    path = model_variant(
        tmp_path, ("[identity]", CHANCE.replace('"won"', '"signed"') + "\n[identity]")
    )
    with pytest.raises(ConfigError, match=r"probability\.outcome"):
        load_scoring_model(path)
