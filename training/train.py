"""`dbl train`: a scoring model learned from the recorded signals and outcomes.

1. The history (the events topic, or an export) is laid out as a backtest lays it out.
2. Candidate rules come from what it holds (`candidates.py`).
3. The history is replayed through the dataflow with a candidate model: every candidate
   worth 1 point (fit rules each in their own group, no daily caps), so each lead's
   contributions are its decayed counts, computed by the dataflow's own rules.
4. Each lead is observed at some ages (`observations.py`); the label is the outcome within
   the window after the moment, never before it.
5. A regularized logistic regression (`estimator.py`) weighs the candidates; rows in time
   order, the latest quarter held out to choose its strength and to judge it.
6. The weights become points (the largest worth 30), the intercept and the points-to-logit
   factor the `[probability]` table, the grade bands the spread of the learned scores; the
   model is written in `scoring.toml`'s format with a model card beside it.
"""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from backtests.backtest import ETA_SMOOTHING
from backtests.history import EVENT, History, from_broker, from_export, read_part
from backtests.leads import DAY_MS
from backtests.replay import replay
from backtests.report import day
from config.scoring import FREE_MAIL_FILE, Probability, load_scoring_model
from config.settings import Settings
from contracts import codec
from contracts.envelope import InvalidEvent, decode
from contracts.errors import DBLError
from training.candidates import Candidate, Seen
from training.estimator import RuleScorer
from training.model_file import SALES_READY, Weighted, model_text
from training.observations import Observation, observations

# The largest learned rule is worth this many points (a scale a rep can read).
TOP_POINTS: Final = 30.0
NEGLIGIBLE: Final = 0.05
DECILES: Final = 10
# The share of observed leads the learned bands make sales-ready: the top tenth, where a
# model's lift is highest.
SALES_READY_SHARE: Final = 0.1


@dataclass(frozen=True, slots=True)
class Training:
    """What to learn from, and how to judge it."""

    outcome: str = "won"
    within_days: float = 90
    ages_days: tuple[float, ...] = (7, 30, 60)
    export: Path | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    min_positives: int = 50
    min_support: int = 20
    processes: int = 1

    def check(self) -> None:
        """Refuse what cannot run, before reading anything."""
        if self.outcome not in ("won", "created"):
            raise DBLError("--outcome must be won or created")
        if not 0 < self.within_days < math.inf:
            raise DBLError("--within-days must be a number of days above 0")
        if not self.ages_days or not all(0 <= age < math.inf for age in self.ages_days):
            raise DBLError("--ages-days must be numbers of days, none below 0")


def train(
    settings: Settings, training: Training, out: Path, *, quiet: bool = False
) -> dict[str, Any]:
    """Learn a model, write it to `out` (with its lists and model card beside it); returns
    the model card."""
    training.check()
    ages = tuple(int(days * DAY_MS) for days in training.ages_days)
    within = int(training.within_days * DAY_MS)
    with tempfile.TemporaryDirectory(prefix="dbl-train-") as work:
        root = Path(work)
        history = _history(settings, training, root, quiet)
        seen = _seen(history)
        engagement = seen.engagement_rules(training.min_support)
        fit = seen.fit_rules(training.min_support)
        if not engagement:
            raise DBLError(
                f"no engagement seen at least {training.min_support} times: nothing to learn from"
            )
        candidate_model = _candidate_model(settings, root / "candidates", engagement, fit)
        (root / "replay").mkdir()
        with tqdm(
            total=history.events,
            desc="replaying",
            unit="event",
            file=sys.stderr,
            disable=quiet,
            smoothing=ETA_SMOOTHING,
        ) as bar:
            replayed = replay(
                history.parts,
                candidate_model,
                root / "replay",
                settings=settings,
                routing=settings.routing_path,
                ages_ms=ages,
                processes=training.processes,
                report=lambda done: bar.update(done - bar.n),
            )
    end = training.end_ms if training.end_ms is not None else (history.last_ms or 0) + 1
    half_lives = {c.id: (c.half_life_days or 0) * DAY_MS for c in engagement}
    found = observations(
        replayed.leads,
        ages,
        outcome=training.outcome,
        within_ms=within,
        end_ms=end,
        half_lives=half_lives,
    )
    positives = sum(o.reached for o in found)
    if positives < training.min_positives:
        raise DBLError(
            f"only {positives} observations reached '{training.outcome}' within "
            f"{training.within_days:g} days (of {len(found)}); a model needs at least "
            f"{training.min_positives}: record more outcomes or a longer history"
        )
    candidates = [*engagement, *fit]
    X = _matrix(found, candidates)
    y = np.array([o.reached for o in found], dtype=int)
    scorer = RuleScorer()
    with tqdm(
        total=len(scorer.strengths) + 1,
        desc=f"fitting {len(found)} observations x {len(candidates)} rules",
        unit="fit",
        file=sys.stderr,
        disable=quiet,
    ) as bar:
        scorer.on_fit = lambda: bar.update(1)
        scorer.fit(X, y)
    per_point = float(max(abs(scorer.coef_)) / TOP_POINTS) if scorer.coef_.any() else 1.0
    points = scorer.coef_ / per_point
    learned_engagement = _weighted(engagement, points[: len(engagement)])
    learned_fit = _weighted(fit, points[len(engagement) :])
    if not learned_engagement:
        raise DBLError(
            "no engagement rule predicts the outcome in this history: nothing to publish"
        )
    fit_scores = X[:, len(engagement) :] @ points[len(engagement) :]
    engagement_scores = X[:, : len(engagement)] @ points[: len(engagement)]
    fit_bands = _bands(np.clip(fit_scores, 0, 100), "ABC", (0.8, 0.5, 0.2))
    engagement_bands = _engagement_bands(fit_scores, engagement_scores, fit_bands)
    chance = Probability(training.outcome, training.within_days, scorer.intercept_, per_point)
    card = _card(
        training,
        history,
        found,
        scorer,
        X,
        y,
        fit_bands,
        engagement_bands,
        per_point,
        points,
        len(engagement),
    )
    header = (
        f"# Learned by `dbl train` from {history.events} events ({card['window']['first']} to "
        f"{card['window']['last']}): {card['observations']} observations, {positives} reached "
        f"'{training.outcome}' within {training.within_days:g} days. Model card: model_card.md"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    base = settings.scoring_path.read_text(encoding="utf-8")
    out.write_text(
        model_text(
            base, learned_engagement, learned_fit, fit_bands, engagement_bands, chance, header
        )
    )
    (out.parent / FREE_MAIL_FILE).write_bytes(
        (settings.scoring_path.parent / FREE_MAIL_FILE).read_bytes()
    )
    card["version"] = load_scoring_model(out).version
    (out.parent / "model_card.json").write_bytes(codec.dumps(card) + b"\n")
    (out.parent / "model_card.md").write_text(card_text(card))
    return card


def _history(settings: Settings, training: Training, root: Path, quiet: bool) -> History:
    parts = root / "history"
    parts.mkdir()
    window = (training.start_ms, training.end_ms)
    with tqdm(desc="reading history", unit="event", file=sys.stderr, disable=quiet) as bar:

        def update(done: int) -> None:
            bar.update(done - bar.n)

        if training.export is not None:
            return from_export(training.export, parts, window, update)
        return from_broker(settings, parts, window, update)


def _seen(history: History) -> Seen:
    seen = Seen()
    for part in history.parts:
        for _, kind, raw in read_part(part):
            if kind != EVENT:
                continue
            try:
                seen.add(decode(raw))
            except InvalidEvent:
                continue
    return seen


def _candidate_model(
    settings: Settings, folder: Path, engagement: Sequence[Candidate], fit: Sequence[Candidate]
) -> Path:
    """Every candidate worth 1 point, labelled by its id (features are read by label)."""
    folder.mkdir()
    ones = [Weighted(c.id, c.id, c.body, c.half_life_days, 1.0, c.counts) for c in engagement]
    fits = [Weighted(c.id, c.id, c.body, None, 1.0) for c in fit]
    base = settings.scoring_path.read_text(encoding="utf-8")
    bands = {"A": 70.0, "B": 45.0, "C": 20.0}, {"1": 60.0, "2": 30.0, "3": 10.0}
    (folder / "scoring.toml").write_text(model_text(base, ones, fits, *bands, None))
    (folder / FREE_MAIL_FILE).write_bytes(
        (settings.scoring_path.parent / FREE_MAIL_FILE).read_bytes()
    )
    return folder / "scoring.toml"


def _matrix(found: Sequence[Observation], candidates: Sequence[Candidate]) -> Any:
    index = {c.id: n for n, c in enumerate(candidates)}
    X = np.zeros((len(found), len(candidates)))
    for row, observation in enumerate(found):
        for label, value in observation.features.items():
            column = index.get(label)
            if column is not None:
                X[row, column] = value
    return X


def _weighted(candidates: Sequence[Candidate], points: Any) -> list[Weighted]:
    return [
        Weighted(c.id, c.label, c.body, c.half_life_days, round(float(p), 3), c.counts)
        for c, p in zip(candidates, points, strict=True)
        if abs(p) >= NEGLIGIBLE
    ]


def _bands(values: Any, names: str, quantiles: tuple[float, ...]) -> dict[str, float]:
    """Thresholds at quantiles of the learned scores, best band first (equal thresholds
    when the scores do not spread: a fit no trait moves puts everyone in A)."""
    cuts = {
        name: round(float(np.quantile(values, q)), 1) if len(values) else 0.1
        for name, q in zip(names, quantiles, strict=True)
    }
    return {
        name: max(cuts[name], *(cuts[n] for n in names[names.index(name) + 1 :]), 0.0)
        for name in names
    }


def _engagement_bands(fit: Any, engagement: Any, fit_bands: dict[str, float]) -> dict[str, float]:
    """Engagement bands that put about `SALES_READY_SHARE` of the observations in the
    sales-ready cells: bands 1, 2, 3 at the (1 - k), (1 - 2k), (1 - 3k) quantiles of the
    engaged observations, k found by bisection (none engaged at all is always "4")."""
    engaged = engagement[engagement > 0]
    if not len(engaged):
        return _bands(engaged, "123", (0.75, 0.5, 0.25))
    low, high = 0.0, 1 / 3
    for _ in range(30):
        share = (low + high) / 2
        bands = _bands(engaged, "123", (1 - share, 1 - 2 * share, 1 - 3 * share))
        ready = np.mean([g in SALES_READY for g in _grades(fit, engagement, fit_bands, bands)])
        low, high = (share, high) if ready < SALES_READY_SHARE else (low, share)
    return _bands(engaged, "123", (1 - high, 1 - 2 * high, 1 - 3 * high))


def _grades(
    fit: Any, engagement: Any, fit_bands: dict[str, float], engagement_bands: dict[str, float]
) -> list[str]:
    cells = []
    for f, e in zip(np.clip(fit, 0, 100), np.maximum(engagement, 0), strict=True):
        letter = next((n for n in "ABC" if f >= fit_bands[n]), "D")
        digit = next((n for n in "123" if e >= engagement_bands[n]), "4")
        cells.append(letter + digit)
    return cells


def _card(
    training: Training,
    history: History,
    found: Sequence[Observation],
    scorer: RuleScorer,
    X: Any,
    y: Any,
    fit_bands: dict[str, float],
    engagement_bands: dict[str, float],
    per_point: float,
    points: Any,
    engagement_count: int,
) -> dict[str, Any]:
    """How the model was made and how it does on the latest quarter, held out."""
    cut = int(len(y) * (1 - scorer.validation_share))
    held = RuleScorer(strengths=(scorer.strength_,)).fit(X[:cut], y[:cut]) if cut else scorer
    test_X, test_y = X[cut:], y[cut:]
    chance = held.predict_proba(test_X)
    scored = held.coef_ / per_point
    grades = _grades(
        test_X[:, engagement_count:] @ scored[engagement_count:],
        test_X[:, :engagement_count] @ scored[:engagement_count],
        fit_bands,
        engagement_bands,
    )
    ready = [g in SALES_READY for g in grades]
    base_rate = float(test_y.mean()) if len(test_y) else 0.0
    precision = float(test_y[np.array(ready, dtype=bool)].mean()) if any(ready) else None
    order = np.argsort(-chance, kind="stable")
    deciles = []
    for n in range(DECILES):
        chunk = order[n * len(order) // DECILES : (n + 1) * len(order) // DECILES]
        if len(chunk):
            rate = float(test_y[chunk].mean())
            deciles.append(
                {
                    "decile": n + 1,
                    "rows": len(chunk),
                    "rate": round(rate, 4),
                    "predicted": round(float(chance[chunk].mean()), 4),
                    "lift": round(rate / base_rate, 3) if base_rate else None,
                }
            )
    both = len(set(test_y.tolist())) == 2
    return {
        "outcome": training.outcome,
        "within_days": training.within_days,
        "ages_days": list(training.ages_days),
        "window": {
            "events": history.events,
            "first": _day(history.first_ms),
            "last": _day(history.last_ms),
        },
        "observations": len(found),
        "positives": int(y.sum()),
        "negatives": int(len(y) - y.sum()),
        "held_out": {
            "from": _day(found[cut].at) if cut < len(found) else None,
            "observations": len(test_y),
            "positives": int(test_y.sum()),
            "auc": round(float(roc_auc_score(test_y, chance)), 4) if both else None,
            "base_rate": round(base_rate, 4),
            "sales_ready_precision": None if precision is None else round(precision, 4),
            "sales_ready_recall": round(float(np.array(ready)[test_y == 1].mean()), 4)
            if test_y.any()
            else None,
            "lift_by_decile": deciles,
        },
        "regularization": {
            "chosen": scorer.strength_,
            "validation_auc": {f"{c:g}": round(a, 4) for c, a in scorer.validation_auc_.items()},
        },
        "rules": {
            "candidates": len(points),
            "kept": int(np.sum(np.abs(points) >= NEGLIGIBLE)),
            "per_point": float(per_point),
            "intercept": scorer.intercept_,
        },
        "grade": {"fit_bands": fit_bands, "engagement_bands": engagement_bands},
    }


def _day(ms: int | None) -> str | None:
    return None if ms is None else day(ms)


def card_text(card: dict[str, Any]) -> str:
    """The model card in Markdown."""
    held = card["held_out"]
    lines = [
        "# Model card",
        "",
        f"Predicts **{card['outcome']} within {card['within_days']:g} days**, observing each "
        f"lead at days {', '.join(f'{a:g}' for a in card['ages_days'])} after its first profile.",
        "",
        f"- Data: {card['window']['events']} events, {card['window']['first']} to "
        f"{card['window']['last']}",
        f"- Observations: {card['observations']} ({card['positives']} positive, "
        f"{card['negatives']} negative)",
        f"- Held out (the latest quarter, from {held['from']}): {held['observations']} "
        f"observations, {held['positives']} positive",
        f"- AUC on it: {held['auc']}; base rate {held['base_rate']}; `sales_ready` precision "
        f"{held['sales_ready_precision']}, recall {held['sales_ready_recall']}",
        f"- Rules kept: {card['rules']['kept']} of {card['rules']['candidates']} candidates; "
        f"regularization C = {card['regularization']['chosen']}",
        "",
        "| decile | rows | predicted | observed | lift |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {d['decile']} | {d['rows']} | {d['predicted']} | {d['rate']} | {d['lift']} |"
        for d in held["lift_by_decile"]
    ]
    return "\n".join(lines) + "\n"
