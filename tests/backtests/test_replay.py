"""A replay gives what the dataflow gives on the same signals, on 1 worker or 2 processes;
a backtest gives the same report twice, and tells a worse model from a better one."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from backtests.backtest import Backtest, run_backtest
from backtests.history import from_export
from backtests.replay import Replayed, replay
from bench.markets import world, write_export
from config.settings import Settings
from contracts import codec
from contracts.envelope import ANONYMOUS_PREFIX
from tests.flows.partitioned import partitioned, run_in_process
from tests.streams import random_plan, stream

MODEL = Settings().scoring_path
CONFIG = MODEL.parent


def model_variant(directory: Path, *changes: tuple[str, str]) -> Path:
    """The shipped model with some lines changed (and the lists it reads beside it)."""
    directory.mkdir(exist_ok=True)
    for name in ("free_mail.txt", "competitors.txt"):
        (directory / name).write_bytes((CONFIG / name).read_bytes())
    text = MODEL.read_text()
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    (directory / "scoring.toml").write_text(text)
    return directory / "scoring.toml"


def replayed(tmp_path: Path, signals: list, processes: int = 1) -> Replayed:
    export = write_export(signals, tmp_path / "events.jsonl.gz")
    (tmp_path / "parts").mkdir()
    history = from_export(export, tmp_path / "parts", (None, None), lambda n: None, parts=3)
    (tmp_path / "run").mkdir()
    return replay(
        history.parts,
        MODEL,
        tmp_path / "run",
        settings=Settings(),
        routing=Settings().routing_path,
        ages_ms=(0,),
        processes=processes,
    )


@pytest.mark.parametrize("processes", [1, 2])
def test_a_replay_scores_and_alerts_as_the_dataflow_does(tmp_path: Path, processes: int):
    signals = stream(random_plan(random.Random(11), 160))
    profiles, alerts = run_in_process(partitioned(signals, 3), workers=1)
    known = {p: v for p, v in profiles.items() if not p.startswith(ANONYMOUS_PREFIX)}
    assert known, "the stream makes leads"
    assert alerts, "and alerts"

    result = replayed(tmp_path, signals, processes)

    assert {p: lead.final for p, lead in result.leads.items()} == known
    assert sorted(a.id for a in result.alerts) == sorted(a["id"] for a in alerts)
    assert result.dead_letters == {}


def test_a_backtest_reports_the_same_bytes_twice(tmp_path: Path):
    export = write_export(world(5, leads=60).signals, tmp_path / "events.jsonl.gz")
    outputs = []
    for n in range(2):
        out = tmp_path / f"out-{n}"
        test = Backtest(model=MODEL, against=MODEL, export=export, processes=1 + n)
        run_backtest(Settings(), test, out, quiet=True)
        outputs.append(
            [(out / name).read_bytes() for name in ("report.json", "report.html")]
            + [(out / "candidate" / name).read_bytes() for name in ("alerts.jsonl", "leads.jsonl")]
        )
    assert outputs[0] == outputs[1]
    report = codec.loads(outputs[0][0])
    assert report["differences"]["alerts_added"]["count"] == 0, "a model against itself"
    assert report["models"]["candidate"]["alerts"]["total"] > 0


def test_a_backtest_tells_a_model_that_ignores_buying_signals_from_one_that_counts_them(
    tmp_path: Path,
):
    market = world(7, leads=150)
    export = write_export(market.signals, tmp_path / "events.jsonl.gz")
    blind = model_variant(
        tmp_path / "blind",
        ('paths = ["/pricing*"]\npoints = 10', 'paths = ["/pricing*"]\npoints = 0'),
        (
            'paths = ["/careers*", "/jobs*"]\npoints = -10',
            'paths = ["/careers*", "/jobs*"]\npoints = 10',
        ),
    )
    test = Backtest(model=blind, against=MODEL, export=export)
    report = run_backtest(Settings(), test, tmp_path / "out", quiet=True)

    current, candidate = report["models"]["current"], report["models"]["candidate"]
    assert current["outcomes"]["leads_reaching_it"] == len(market.buyers)
    assert current["outcomes"]["ranking"]["auc"]["engagement"] > 0.9
    assert candidate["outcomes"]["ranking"]["auc"]["engagement"] < 0.5
    assert report["differences"]["grades_differ"]["count"] > 0
    assert candidate["version"] != current["version"]
