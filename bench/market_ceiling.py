"""How well can anyone single out the buyers of a leadforge market? The ceiling that
`bench.quality`'s figures sit under.

    python -m bench.market_ceiling [--tiers intro,intermediate,advanced] [--seeds 1-5]
                                   [--leads 5000] [--out ceiling.json]

For each world, the same newer cohort as `bench.quality` (the newest 30 % of leads by
creation, labelled by whether they converted within 90 days) is ranked by:

- **hidden score**: the score leadforge's conversion hazard is driven by, from the world's
  hidden traits of each account, contact and lead (its instructor bundle): what the
  simulation itself knows about who will buy, before chance plays its part;
- **anchor**: `bench.quality`'s logistic regression on the leak-free 30-day snapshot;
- **boosted**: gradient-boosted trees on the same features;
- **boosted + hidden**: the same trees also given every hidden trait.

The models are fitted on the older cohort. Figures: AUC, and the lift at the top 2, 5,
10 and 20 % (the converting share of that top over the base rate: the precision over the
base rate of a `sales_ready` call that picks that share of leads). Means per tier at the end.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from bench import leadforge_market
from bench.leadforge_market import ANCHOR_CATEGORIES, ANCHOR_NUMBERS, LABEL
from bench.quality import anchor

SHARES: Final = (0.02, 0.05, 0.10, 0.20)


@dataclass(frozen=True, slots=True)
class Ranked:
    """One ranking's figures on one world's newer cohort."""

    tier: str
    seed: int
    model: str
    base_rate: float
    auc: float
    lifts: tuple[float, ...]


def lifts(truth: np.ndarray, scores: np.ndarray) -> tuple[float, ...]:
    """The converting share of each top `SHARES` of leads by score, over the base rate.

    >>> lifts(np.array([1] * 10 + [0] * 90), np.arange(100, 0, -1))
    (10.0, 10.0, 10.0, 5.0)
    """
    order = np.argsort(-scores, kind="stable")
    rate = truth.mean()
    return tuple(
        round(float(truth[order[: max(1, int(len(order) * share))]].mean() / rate), 3)
        for share in SHARES
    )


def hidden_traits(world: Path, leads: pd.DataFrame) -> pd.DataFrame:
    """Every hidden trait of each lead's account, contact and lead, by lead id."""
    latents = json.loads((world / "metadata" / "latent_registry.json").read_text())
    rows = {
        lead.lead_id: {
            **latents["account_latents"][lead.account_id],
            **latents["contact_latents"][lead.contact_id],
            **latents["lead_latents"][lead.lead_id],
        }
        for lead in leads.itertuples()
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def hidden_score(world: Path, traits: pd.DataFrame) -> pd.Series:
    """The score leadforge's conversion hazard is driven by, per lead id."""
    mechanisms = json.loads((world / "metadata" / "mechanism_summary.json").read_text())
    score = pd.Series(0.0, index=traits.index)
    for name, weight in mechanisms["conversion_hazard"]["score_mech"]["weights"].items():
        score += traits[name] * weight
    return score


def boosted(features: pd.DataFrame, older: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Gradient-boosted trees fitted on the older cohort; the newer cohort's chances."""
    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=0
    )
    model.fit(features[older], labels[older])
    return np.asarray(model.predict_proba(features[~older])[:, 1])


def rank_world(tier: str, seed: int, world: Path) -> list[Ranked]:
    """Rank a saved world's newer cohort every way."""
    table = pd.read_parquet(world / "tables" / "leads.parquet")
    frame = leadforge_market.snapshot(world, leadforge_market.older_leads(world))
    older = frame["older"].to_numpy()
    labels = frame[LABEL].astype(bool).to_numpy()
    truth = labels[~older].astype(int)
    traits = hidden_traits(world, table).loc[frame["lead_id"]].reset_index(drop=True)
    observed = frame[[*ANCHOR_CATEGORIES, *ANCHOR_NUMBERS]].copy()
    for column in ANCHOR_CATEGORIES:
        observed[column] = observed[column].astype("string").fillna("missing").astype("category")
    for column in ANCHOR_NUMBERS:
        observed[column] = observed[column].astype("float64")
    by_lead = dict(zip(frame["lead_id"], frame["lead_id"], strict=True))
    anchored = anchor(frame, by_lead)
    rankings = {
        "hidden score": hidden_score(world, traits).to_numpy()[~older],
        "anchor": np.array([anchored[lead] for lead in frame["lead_id"][~older]]),
        "boosted": boosted(_coded(observed), older, labels),
        "boosted + hidden": boosted(pd.concat([_coded(observed), traits], axis=1), older, labels),
    }
    return [
        Ranked(tier, seed, name, round(float(truth.mean()), 3), _auc(truth, s), lifts(truth, s))
        for name, s in rankings.items()
    ]


def _coded(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as their codes (the trees split on them as numbers)."""
    return frame.apply(lambda c: c.cat.codes if isinstance(c.dtype, pd.CategoricalDtype) else c)


def _auc(truth: np.ndarray, scores: np.ndarray) -> float:
    return round(float(roc_auc_score(truth, scores)), 3)


def means(results: list[Ranked]) -> list[dict[str, Any]]:
    """Mean AUC and lifts per tier and ranking."""
    rows = []
    for tier, model in dict.fromkeys((r.tier, r.model) for r in results):
        mine = [r for r in results if (r.tier, r.model) == (tier, model)]
        row: dict[str, Any] = {"tier": tier, "model": model, "worlds": len(mine)}
        row["auc"] = round(statistics.fmean(r.auc for r in mine), 3)
        for n, share in enumerate(SHARES):
            row[f"top {share:.0%}"] = round(statistics.fmean(r.lifts[n] for r in mine), 2)
        rows.append(row)
    return rows


def main() -> None:
    worlds, leads, out = leadforge_market.command_line(
        __doc__.split("\n\n")[0], seeds="1-5", out="ceiling.json"
    )
    results: list[Ranked] = []
    for tier, seed, work in leadforge_market.each_world(worlds, "dbl-ceiling-"):
        found = rank_world(tier, seed, leadforge_market.generate(tier, seed, work, leads))
        results += found
        for r in found:
            shown = "  ".join(f"{s:.0%} {v:.2f}" for s, v in zip(SHARES, r.lifts, strict=True))
            print(
                f"{tier} seed {seed}  {r.model:17} AUC {r.auc:.3f}  lift at top {shown}", flush=True
            )
        out.write_text(json.dumps([asdict(r) for r in results], indent=1))
    print(f"\nMeans per tier ({out}):")
    for row in means(results):
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
