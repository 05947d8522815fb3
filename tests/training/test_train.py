"""`dbl train` on small generated markets: it learns who buys, never from what happens
after the outcome, refuses too few outcomes, and writes a model DBL runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtests.backtest import Backtest, run_backtest
from bench.markets import world, write_export
from config.scoring import load_scoring_model
from config.settings import Settings
from contracts import codec
from contracts.errors import DBLError
from training.train import Training, train

pytestmark = pytest.mark.slow

MODEL = Settings().scoring_path


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A market whose buyers read pricing and demo pages (with noise), and open the
    customer portal only after they won; the model learned from it."""
    folder = tmp_path_factory.mktemp("learned")
    market = world(21, leads=600, days=240, noise=0.3, after_win=4)
    export = write_export(market.signals, folder / "events.jsonl.gz")
    out = folder / "model" / "scoring.toml"
    card = train(Settings(), Training(export=export, min_support=10), out, quiet=True)
    return export, out, card


def test_it_learns_who_buys_in_a_world_whose_buyers_are_known(learned):
    _, out, card = learned
    assert card["held_out"]["auc"] >= 0.85
    assert card["held_out"]["lift_by_decile"][0]["lift"] >= 2.5
    precision = card["held_out"]["sales_ready_precision"]
    assert precision is not None
    assert precision >= 1.5 * card["held_out"]["base_rate"]
    model = load_scoring_model(out)
    assert model.version == card["version"]
    assert model.probability is not None
    assert model.probability.outcome == "won"
    assert (out.parent / "model_card.md").read_text().startswith("# Model card")
    assert codec.loads((out.parent / "model_card.json").read_bytes())["version"] == model.version


def test_it_never_learns_from_what_follows_the_outcome(learned):
    _, out, _ = learned
    model = load_scoring_model(out)
    portal = [r for r in model.engagement if "portal" in r.id]
    # Opening the portal happens only after a deal: at any observation point it is either
    # not there yet, or the lead is past its outcome and not observed.
    assert not [r for r in portal if r.points > 0], portal


def test_the_learned_model_backtests_better_than_the_hand_set_one(learned, tmp_path: Path):
    export, out, _ = learned
    report = run_backtest(
        Settings(), Backtest(model=out, against=MODEL, export=export), tmp_path, quiet=True
    )
    mine = report["models"]["candidate"]["outcomes"]["ranking"]["auc"]
    theirs = report["models"]["current"]["outcomes"]["ranking"]["auc"]
    assert "probability" in mine
    assert mine["score"] > theirs["score"]


def test_the_same_history_gives_the_same_model_on_any_number_of_processes(learned, tmp_path: Path):
    export, first, _ = learned
    again = tmp_path / "two" / "scoring.toml"
    train(Settings(), Training(export=export, min_support=10, processes=2), again, quiet=True)
    assert again.read_bytes() == first.read_bytes()
    assert (again.parent / "model_card.md").read_bytes() == (
        first.parent / "model_card.md"
    ).read_bytes()


def test_it_refuses_with_too_few_outcomes(tmp_path: Path):
    market = world(22, leads=60, days=150)
    export = write_export(market.signals, tmp_path / "events.jsonl.gz")
    with pytest.raises(DBLError, match=r"a model needs at least 50"):
        train(Settings(), Training(export=export, min_support=5), tmp_path / "m.toml", quiet=True)
    assert not (tmp_path / "m.toml").exists()
