"""Do DBL's scores predict who buys, on markets nobody here wrote?

    python -m bench.quality [--tiers intro,intermediate,advanced] [--seeds 1-5]
                            [--leads 5000] [--out quality.json]

For each leadforge world (`bench/leadforge_market.py` says how a world becomes signals):
starts the whole system on the embedded broker and Redis, sends the older 70 % of leads
(by creation, outcomes included) through the collector, runs `dbl train --ages-days 30
--processes 2` on the events topic (leads observed at the age they are judged at),
`dbl model publish`es what it learned, sends the newer 30 % up to their 30th day without
outcomes, and reads their profiles from the rep API once every signal is scored.
Judged against whether each newer lead converted within 90 days of its creation:

- **learned (live)**: the profiles the rep API serves, ranked by their probability;
- **default**: the shipped hand-set model on the same recorded topic (`dbl backtest`, whose
  replay equals the live dataflow), ranked by grade then engagement;
- **anchor**: a logistic regression on leadforge's own leak-free 30-day snapshot features,
  fitted on the older cohort, ranked on the newer.

Figures: AUC, top-decile lift (the converting share of the top tenth over the base rate),
and the precision and recall of `sales_ready` (a lead the model calls sales-ready that
converted); the anchor has no sales-ready call. Means per tier at the end.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tqdm import tqdm

from backtests.report import primary_score
from bench import leadforge_market
from bench.leadforge_market import ANCHOR_CATEGORIES, ANCHOR_NUMBERS, LABEL, Market
from bench.system import unlimited
from config.routing import load_routing
from config.settings import Settings
from contracts import codec
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from dbl.topics import ensure_topics

SERVER_KEY: Final = ("wk_demo_server", "")
BATCH: Final = 500
SCORED_TIMEOUT_S: Final = 1800.0
# Leads are judged at their 30th day, so the model learns from leads observed at that age.
AT_AGE_DAYS: Final = 30


@dataclass(frozen=True, slots=True)
class Judged:
    """One model's figures on one world's newer cohort."""

    model: str
    auc: float
    top_decile_lift: float
    sales_ready_precision: float | None = None
    sales_ready_recall: float | None = None
    sales_ready_leads: int | None = None


@dataclass(frozen=True, slots=True)
class WorldResult:
    """A world's base rate, each model's figures and what the run took."""

    tier: str
    seed: int
    newer_leads: int
    base_rate: float
    judged: list[Judged]
    signals: int
    train_s: float
    seconds: float


def judge(
    model: str, scores: dict[str, float], labels: dict[str, bool], ready: set[str] | None = None
) -> Judged:
    """Rank `labels`' leads by `scores` (a missing lead scores lowest).

    >>> labels = {"a": True, "b": False, "c": False, "d": True}
    >>> judge("m", {"a": 0.9, "b": 0.1, "c": 0.2, "d": 0.8}, labels, {"a", "b"})
    Judged(model='m', auc=1.0, top_decile_lift=2.0, sales_ready_precision=0.5, \
sales_ready_recall=0.5, sales_ready_leads=2)
    """
    people = sorted(labels)
    truth = [labels[p] for p in people]
    values = [scores.get(p, float("-inf")) for p in people]
    floor = min((v for v in values if v != float("-inf")), default=0.0) - 1
    values = [floor if v == float("-inf") else v for v in values]
    rate = sum(truth) / len(truth)
    ranked = sorted(zip(values, people, truth, strict=True), key=lambda x: (-x[0], x[1]))
    top = ranked[: max(1, len(ranked) // 10)]
    lift = sum(t for _, _, t in top) / len(top) / rate
    auc = float(roc_auc_score(truth, values))
    if ready is None:
        return Judged(model, round(auc, 4), round(lift, 3))
    called = [labels[p] for p in people if p in ready]
    precision = sum(called) / len(called) if called else None
    recall = sum(called) / sum(truth)
    return Judged(
        model,
        round(auc, 4),
        round(lift, 3),
        None if precision is None else round(precision, 3),
        round(recall, 3),
        len(called),
    )


def anchor(snapshot: pd.DataFrame, person: dict[str, str]) -> dict[str, float]:
    """A regularized logistic regression on leadforge's leak-free snapshot features, fitted
    on the older cohort; the newer cohort's probabilities by person."""
    columns = [*ANCHOR_CATEGORIES, *ANCHOR_NUMBERS]
    frame = snapshot[columns].copy()
    for column in ANCHOR_CATEGORIES:
        frame[column] = frame[column].astype("string").fillna("missing").astype(object)
    for column in ANCHOR_NUMBERS:
        frame[column] = frame[column].astype("float64").fillna(-1.0)
    model = make_pipeline(
        ColumnTransformer(
            [
                ("traits", OneHotEncoder(handle_unknown="ignore"), list(ANCHOR_CATEGORIES)),
                ("counts", StandardScaler(), list(ANCHOR_NUMBERS)),
            ]
        ),
        LogisticRegression(C=1.0, max_iter=2000),
    )
    older = snapshot["older"].to_numpy()
    model.fit(frame[older], snapshot[LABEL][older].astype(bool))
    newer = snapshot[~older]
    chances = model.predict_proba(frame[~older])[:, 1]
    return {person[lead]: float(p) for lead, p in zip(newer["lead_id"], chances, strict=True)}


def run_world(tier: str, seed: int, leads: int, work: Path) -> WorldResult:
    """Generate, send, train, publish, send, read and judge one world."""
    started = time.monotonic()
    world = leadforge_market.generate(tier, seed, work / "world", leads=leads)
    found = leadforge_market.market(world, now_ms=int(time.time() * 1000), seed=seed)
    person = {
        row.lead_id: leadforge_market.person_of(row.lead_id, row.account_id)
        for row in found.snapshot.itertuples()
    }
    with running_system(work) as settings:
        send(settings, found.older, f"{tier} {seed}: older cohort")
        trained = time.monotonic()
        learned = work / "learned" / "scoring.toml"
        dbl(
            settings,
            "train",
            "--out",
            str(learned),
            "--ages-days",
            str(AT_AGE_DAYS),
            "--processes",
            "2",
        )
        train_s = time.monotonic() - trained
        version = codec.loads((learned.parent / "model_card.json").read_bytes())["version"]
        dbl(settings, "model", "publish", str(learned), "--by", "bench.quality")
        send(settings, found.newer, f"{tier} {seed}: newer cohort")
        live = read_profiles(settings, found, version)
        shipped = work / "shipped"
        dbl(settings, "backtest", "--model", str(settings.scoring_path), "--out", str(shipped))
    default = {
        row["person"]: row
        for row in map(codec.loads, _lines(shipped / "candidate" / "leads.jsonl"))
    }
    labels = found.labels
    judged = [
        judge(
            "learned (live)",
            {p: float(v["probability"]) for p, v in live.items()},
            labels,
            {p for p, v in live.items() if v["sales_ready"]},
        ),
        judge(
            "default",
            {p: primary_score(v) for p, v in default.items() if p in labels},
            labels,
            {p for p, v in default.items() if p in labels and v["sales_ready"]},
        ),
        judge("anchor", anchor(found.snapshot, person), labels),
    ]
    return WorldResult(
        tier,
        seed,
        len(labels),
        round(sum(labels.values()) / len(labels), 4),
        judged,
        len(found.older) + len(found.newer),
        round(train_s, 1),
        round(time.monotonic() - started, 1),
    )


@contextmanager
def running_system(work: Path) -> Iterator[Settings]:
    """The collector, the dataflow and the rep service on a fresh embedded broker and Redis,
    as `dbl run` starts them (without demo traffic)."""
    with EmbeddedBroker() as broker, EmbeddedRedis() as redis_server:
        settings = unlimited(broker.bootstrap_servers, redis_url=redis_server.url, demo=True)
        ensure_topics(settings)
        env = {**os.environ, **settings.as_environment()}
        logs = work / "logs"
        logs.mkdir(exist_ok=True)
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                stdout=(logs / f"{module}.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            for module in ("tracking", "dataflows", "alerts")
        ]
        try:
            wait_for_port(settings.collector_port, processes[0], 30)
            wait_for_port(settings.rep_api_port, processes[2], 30)
            yield settings
            if any(process.poll() is not None for process in processes):
                raise SystemExit(f"a process of the system stopped during the run: see {logs}")
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)


def send(settings: Settings, calls: Sequence[dict[str, Any]], what: str) -> None:
    """Send calls in time order through the collector, as a company's backend would."""
    url = f"http://127.0.0.1:{settings.collector_port}"
    with (
        httpx.Client(base_url=url, timeout=60) as collector,
        tqdm(total=len(calls), desc=what, unit="signal", file=sys.stderr) as bar,
    ):
        for n in range(0, len(calls), BATCH):
            batch = list(calls[n : n + BATCH])
            answer = collector.post("/v1/batch", json={"batch": batch}, auth=SERVER_KEY)
            if answer.status_code != 200:
                raise SystemExit(f"the collector refused a batch: {answer.text}")
            bar.update(len(batch))


def read_profiles(settings: Settings, found: Market, version: str) -> dict[str, dict[str, Any]]:
    """The newer cohort's profiles from the rep API, once each is scored by the published
    model up to its last signal and its view decayed to the latest midnight."""
    last: dict[str, int] = {}
    for call in found.newer:
        last[call["userId"]] = int(datetime.fromisoformat(call["timestamp"]).timestamp() * 1000)
    token = load_routing(settings.routing_path).admin_token
    url = f"http://127.0.0.1:{settings.rep_api_port}"
    deadline = time.monotonic() + SCORED_TIMEOUT_S
    read: dict[str, dict[str, Any]] = {}
    with (
        httpx.Client(base_url=url, timeout=30, params={"token": token}) as api,
        tqdm(total=len(last), desc="scored", unit="lead", file=sys.stderr) as bar,
    ):
        while len(read) < len(last):
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(read)} of {len(last)} newer leads scored in time")
            for person, at in last.items():
                if person in read:
                    continue
                answer = api.get(f"/v1/profiles/{person}")
                if answer.status_code != 200:
                    continue
                profile = answer.json()
                if profile.get("model") == version and profile["as_of"] >= at:
                    read[person] = profile
                    bar.update(1)
            time.sleep(1)
        # A quiet lead's view is then decayed to the latest midnight: read until no view
        # changes any more.
        while time.monotonic() < deadline:
            time.sleep(2)
            again = {person: api.get(f"/v1/profiles/{person}").json() for person in read}
            if again == read:
                break
            read = again
    return read


def dbl(settings: Settings, *args: str) -> None:
    """Run a `dbl` command as ops would, its progress on this terminal."""
    env = {**os.environ, **settings.as_environment()}
    done = subprocess.run(
        [sys.executable, "-m", "dbl.cli", *args], env=env, stdout=subprocess.DEVNULL, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"dbl {args[0]} failed ({done.returncode})")


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def summary(results: Sequence[WorldResult]) -> list[dict[str, Any]]:
    """Mean figures per tier and model, with the worlds they come from."""
    rows = []
    for tier in dict.fromkeys(r.tier for r in results):
        worlds = [r for r in results if r.tier == tier]
        rate = statistics.fmean(r.base_rate for r in worlds)
        for model in dict.fromkeys(j.model for r in worlds for j in r.judged):
            judged = [j for r in worlds for j in r.judged if j.model == model]
            row: dict[str, Any] = {
                "tier": tier,
                "model": model,
                "worlds": len(worlds),
                "base_rate": round(rate, 3),
                "auc": round(statistics.fmean(j.auc for j in judged), 3),
                "top_decile_lift": round(statistics.fmean(j.top_decile_lift for j in judged), 2),
            }
            precisions = [j.sales_ready_precision for j in judged]
            if all(p is not None for p in precisions) and judged[0].sales_ready_recall is not None:
                precision = statistics.fmean(p for p in precisions if p is not None)
                row["sales_ready_precision"] = round(precision, 3)
                row["precision_over_base_rate"] = round(precision / rate, 2)
                recalls = [j.sales_ready_recall or 0.0 for j in judged]
                row["sales_ready_recall"] = round(statistics.fmean(recalls), 3)
            rows.append(row)
    return rows


def main() -> None:
    worlds, leads, out = leadforge_market.command_line(
        __doc__.split("\n\n")[0], seeds="1-5", out="quality.json"
    )
    results: list[WorldResult] = []
    for tier, seed, work in leadforge_market.each_world(worlds, "dbl-quality-"):
        result = run_world(tier, seed, leads, work)
        results.append(result)
        print(_world_line(result), flush=True)
        out.write_bytes(
            codec.dumps({"worlds": [asdict(r) for r in results], "tiers": summary(results)})
        )
    print(f"\nMeans per tier ({out}):")
    for row in summary(results):
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))


def _world_line(result: WorldResult) -> str:
    parts = [
        f"{result.tier} seed {result.seed}: {result.newer_leads} newer leads, "
        f"base rate {result.base_rate:.3f}, {result.signals:,} signals, "
        f"training {result.train_s:.0f} s, world {result.seconds:.0f} s"
    ]
    for j in result.judged:
        line = f"    {j.model:15} AUC {j.auc:.3f}  top-decile lift {j.top_decile_lift:.2f}"
        if j.sales_ready_leads is not None:
            precision = "-" if j.sales_ready_precision is None else f"{j.sales_ready_precision:.3f}"
            line += (
                f"  sales_ready {j.sales_ready_leads} leads, precision {precision}, "
                f"recall {j.sales_ready_recall:.3f}"
            )
        parts.append(line)
    return "\n".join(parts)


if __name__ == "__main__":
    main()
