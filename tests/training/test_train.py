"""`dbl train` on small generated markets: it learns who buys, never from what happens
after the outcome, refuses too few outcomes, and writes a model DBL runs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from backtests.backtest import Backtest, run_backtest
from bench.markets import DAY, signal, world, write_export
from config.scoring import load_scoring_model
from config.settings import Settings
from contracts import codec
from contracts.envelope import Envelope
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


def recency_world(seed: int, leads: int = 400) -> list[Envelope]:
    """Every lead reads pricing; buyers once, days before they are judged (day 30), the
    others six times in their third week: how often says the opposite of who buys, how
    recently says who buys."""
    rng = random.Random(seed)
    start = 1_767_225_600_000
    signals: list[Envelope] = []
    for n in range(leads):
        email, cookie = f"lead{n}@company{n % 40}.com", f"r{seed}-{n}"
        born = start + rng.randrange(0, 60) * DAY
        buys = n % 3 == 0
        views = [rng.randrange(26, 30)] if buys else sorted(rng.sample(range(14, 21), 6))
        signals.append(_at(signals, born, type="identify", anon_id=cookie, email=email))
        for day in views:
            page = {"page": {"path": "/pricing"}}
            ts = born + day * DAY + rng.randrange(DAY)
            signals.append(_at(signals, ts, anon_id=cookie, context=page))
        if buys:
            crm = {"type": "track", "channel": "crm", "trust": "server", "email": email}
            signals.append(_at(signals, born + 45 * DAY, event="Opportunity Won", **crm))
    return sorted(signals, key=lambda s: (s["received_at"], s["id"]))


def _at(signals: list[Envelope], ts: int, **fields: object) -> Envelope:
    return signal(id=f"s{len(signals)}", ts=ts, received_at=ts, **fields)


def test_it_learns_how_recently_when_that_is_what_tells_buyers(tmp_path: Path):
    export = write_export(recency_world(31), tmp_path / "events.jsonl.gz")
    out = tmp_path / "model" / "scoring.toml"
    training = Training(export=export, ages_days=(30,), within_days=20, min_support=10)
    card = train(Settings(), training, out, quiet=True)
    assert card["held_out"]["auc"] >= 0.9
    model = load_scoring_model(out)
    strongest = max(model.engagement, key=lambda rule: rule.points)
    assert strongest.latest, strongest
    assert "latest = true" in out.read_text()
