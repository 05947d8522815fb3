"""`dbl backtest`: replay recorded history with a model (and the model it would replace),
and write `report.json` and `report.html`."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from backtests.history import History, from_broker, from_export
from backtests.leads import DAY_MS
from backtests.page import page
from backtests.replay import Replayed, replay
from backtests.report import FORMAT, Judging, day, differences, model_report, report_json
from config.scoring import load_scoring_model
from config.settings import Settings
from contracts import codec
from contracts.errors import DBLError

OUTCOMES = ("won", "created", "lost")
# Progress comes in bursts (each replay process reports twice a second): the ETA is from
# the average rate since the start, not the last burst.
ETA_SMOOTHING = 0.0
# What `leads.jsonl` keeps of each lead's last profile.
LEAD_FIELDS = (
    *("grade", "fit", "engagement", "sales_ready", "as_of", "last_seen", "model", "owner"),
    *("score", "probability", "outcome", "outcome_at"),
)


@dataclass(frozen=True, slots=True)
class Backtest:
    """What to replay, with which models, and how to judge it."""

    # A model file, or None: the models as published in the log.
    model: Path | None
    against: Path | None = None
    export: Path | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    outcome: str = "won"
    within_days: float = 90
    at_age_days: float = 30
    processes: int = 1
    workers_per_process: int = 1
    # Compare with the models as published in the log (`--against published`).
    compare_with_published: bool = False

    def check(self) -> None:
        """Refuse what cannot run, before reading anything."""
        if self.outcome not in OUTCOMES:
            raise DBLError(f"--outcome must be one of {', '.join(OUTCOMES)}")
        if self.within_days <= 0 or self.at_age_days < 0:
            raise DBLError("--within-days must be above 0 and --at-age-days not below 0")
        if self.start_ms is not None and self.end_ms is not None and self.end_ms <= self.start_ms:
            raise DBLError("--to must be after --from")
        if self.processes < 1 or self.workers_per_process < 1:
            raise DBLError("--processes and --workers must be at least 1")
        for path in (self.model, self.against):
            if path is not None:
                load_scoring_model(path)  # a bad model is refused naming file and key


def run_backtest(
    settings: Settings, test: Backtest, out: Path, *, quiet: bool = False
) -> dict[str, Any]:
    """Run the backtest, write `out/report.json` and `out/report.html`; returns the report."""
    test.check()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dbl-backtest-") as work:
        root = Path(work)
        history = _history(settings, test, root, quiet)
        if history.events == 0:
            raise DBLError("no events in that window: nothing to replay")
        judging = Judging(
            test.outcome,
            int(test.within_days * DAY_MS),
            int(test.at_age_days * DAY_MS),
            test.end_ms if test.end_ms is not None else (history.last_ms or 0) + 1,
        )
        models: dict[str, Path | None] = {"candidate": test.model}
        if test.against is not None or test.compare_with_published:
            models["current"] = test.against
        replays: dict[str, Replayed] = {}
        for name, path in models.items():
            directory = root / name
            directory.mkdir()
            replays[name] = _replay(settings, test, history, path, directory, judging, name, quiet)
    report: dict[str, Any] = {
        "format": FORMAT,
        "input": {
            "source": history.source,
            "events": history.events,
            "first_event": day(history.first_ms or 0),
            "last_event": day(history.last_ms or 0),
            "from_ms": test.start_ms,
            "to_ms": test.end_ms,
        },
        "judging": {
            "outcome": test.outcome,
            "within_days": test.within_days,
            "at_age_days": test.at_age_days,
        },
        "models": {
            name: {
                **_named(models[name]),
                **model_report(replayed, judging),
            }
            for name, replayed in replays.items()
        },
    }
    if "current" in replays:
        report["differences"] = differences(replays["candidate"], replays["current"])
    for name, replayed in replays.items():
        _write_outputs(replayed, out / name)
    (out / "report.json").write_bytes(report_json(report))
    (out / "report.html").write_text(page(report), encoding="utf-8")
    report["seconds"] = {name: r.seconds for name, r in replays.items()}
    return report


def _named(model: Path | None) -> dict[str, str]:
    if model is None:
        return {"file": "as published", "version": "the log's"}
    return {"file": model.name, "version": load_scoring_model(model).version}


def _write_outputs(replayed: Replayed, directory: Path) -> None:
    """Every alert the model would have raised (with its rep) and every lead's last scores,
    as JSON Lines, for ops to look into (and to compare with what the live system did)."""
    directory.mkdir(exist_ok=True)
    with (directory / "alerts.jsonl").open("wb") as file:
        for alert in replayed.alerts:
            file.write(codec.dumps(alert.as_dict()) + b"\n")
    with (directory / "leads.jsonl").open("wb") as file:
        for person, lead in replayed.leads.items():
            scores = {k: lead.final.get(k) for k in LEAD_FIELDS}
            file.write(codec.dumps({"person": person, **scores}) + b"\n")


def _history(settings: Settings, test: Backtest, root: Path, quiet: bool) -> History:
    window = (test.start_ms, test.end_ms)
    parts = root / "history"
    parts.mkdir()
    with tqdm(desc="reading history", unit="event", file=sys.stderr, disable=quiet) as bar:
        progress = _updater(bar)
        if test.export is not None:
            return from_export(test.export, parts, window, progress)
        return from_broker(settings, parts, window, progress)


def _replay(
    settings: Settings,
    test: Backtest,
    history: History,
    model: Path | None,
    directory: Path,
    judging: Judging,
    name: str,
    quiet: bool,
) -> Replayed:
    with tqdm(
        total=history.events,
        desc=f"replaying ({name})",
        unit="event",
        file=sys.stderr,
        disable=quiet,
        smoothing=ETA_SMOOTHING,
    ) as bar:
        return replay(
            history.parts,
            model,
            directory,
            settings=settings,
            routing=settings.routing_path,
            ages_ms=(judging.at_age_ms,),
            processes=test.processes,
            workers_per_process=test.workers_per_process,
            report=_updater(bar),
        )


def _updater(bar: tqdm[Any]) -> Callable[[int], None]:
    def update(done: int) -> None:
        bar.update(done - bar.n)

    return update
