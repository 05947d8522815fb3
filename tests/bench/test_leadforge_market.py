"""A leadforge world as signals: the mapping `bench.quality` judges DBL on."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from bench import leadforge_market, market_ceiling
from bench.leadforge_market import DAY_MS, Market
from config.settings import Settings
from config.sites import load_sites
from tracking.segment import from_segment

pytestmark = pytest.mark.slow

NOW = int(time.time() * 1000)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return leadforge_market.generate("intro", 7, tmp_path_factory.mktemp("world"), leads=300)


@pytest.fixture(scope="module")
def market(world: Path) -> Market:
    return leadforge_market.market(world, now_ms=NOW, seed=7)


def ms(call: dict) -> int:
    return int(datetime.fromisoformat(call["timestamp"]).timestamp() * 1000)


def test_every_call_is_one_the_collector_takes_from_a_server(market: Market):
    site = load_sites(Settings().sites_path)["wk_demo_server"]
    for call in market.older + market.newer:
        envelope = from_segment(call, site=site, received_at=NOW)
        assert envelope["ts"] == ms(call)
        assert envelope["trust"] == "server"


def test_cohorts_split_by_creation_and_arrive_in_time_order(world: Path, market: Market):
    leads = pd.read_parquet(world / "tables" / "leads.parquet")
    assert len(market.labels) == len(leads) - int(len(leads) * 0.7)
    for calls in (market.older, market.newer):
        times = [ms(c) for c in calls]
        assert times == sorted(times)
        assert times[0] > NOW - 365 * DAY_MS, "within the collector's year"
        assert times[-1] < NOW
    assert ms(market.newer[0]) > ms(market.older[-1]), "newer leads come after the history"
    assert NOW - ms(market.newer[-1]) < 2 * DAY_MS, "their 30th day is now: read as live"
    older = {c["userId"] for c in market.older}
    assert older.isdisjoint(market.labels)
    assert {c["userId"] for c in market.newer} == set(market.labels)


def test_newer_leads_send_their_first_30_days_and_no_outcome(market: Market):
    created = {c["userId"]: ms(c) for c in market.newer if c["type"] == "identify"}
    assert set(created) == set(market.labels)
    assert len({at // DAY_MS for at in created.values()}) == 1, "read once, all 30 days old"
    for call in market.newer:
        assert not str(call.get("event", "")).startswith("Opportunity")
        assert ms(call) - created[call["userId"]] < 31 * DAY_MS


def test_older_leads_tell_their_outcomes(world: Path, market: Market):
    leads = pd.read_parquet(world / "tables" / "leads.parquet")
    opportunities = pd.read_parquet(world / "tables" / "opportunities.parquet")
    won = opportunities[opportunities["close_outcome"] == "closed_won"].merge(leads, on="lead_id")
    expected = {
        leadforge_market.person_of(r.lead_id, r.account_id)
        for r in won.itertuples()
        if leadforge_market.person_of(r.lead_id, r.account_id) not in market.labels
    }
    told = {c["userId"] for c in market.older if c.get("event") == "Opportunity Won"}
    assert told == expected
    assert told


def test_sessions_become_their_pricing_and_demo_page_views(world: Path, market: Market):
    sessions = pd.read_parquet(world / "tables" / "sessions.parquet")
    leads = pd.read_parquet(world / "tables" / "leads.parquet")
    sessions = sessions.merge(leads, on="lead_id")
    older = sessions[
        ~sessions.apply(
            lambda r: leadforge_market.person_of(r.lead_id, r.account_id) in market.labels, axis=1
        )
    ]
    pages = Counter(c["properties"]["path"] for c in market.older if c["type"] == "page")
    landing = Counter(older["session_type"])
    assert pages["/pricing"] == older["pricing_page_views"].sum() + landing["pricing_page"]
    assert pages["/demo"] == older["demo_page_views"].sum() + landing["demo_page"]


def test_labels_are_leadforges(world: Path, market: Market):
    leads = pd.read_parquet(world / "tables" / "leads.parquet")
    truth = {
        leadforge_market.person_of(r.lead_id, r.account_id): bool(r.converted_within_90_days)
        for r in leads.itertuples()
    }
    assert all(truth[p] == label for p, label in market.labels.items())
    assert 0 < sum(market.labels.values()) < len(market.labels)
    assert market.snapshot["older"].sum() == len(leads) - len(market.labels)


def test_the_ceiling_ranks_the_newer_cohort_every_way(world: Path, market: Market):
    ranked = market_ceiling.rank_world("intro", 7, world)
    assert [r.model for r in ranked] == ["hidden score", "anchor", "boosted", "boosted + hidden"]
    rate = sum(market.labels.values()) / len(market.labels)
    for r in ranked:
        assert r.base_rate == round(rate, 3)
        assert 0.0 <= r.auc <= 1.0
        assert len(r.lifts) == len(market_ceiling.SHARES)


def test_the_hidden_score_is_the_conversion_hazards(world: Path):
    leads = pd.read_parquet(world / "tables" / "leads.parquet")
    traits = market_ceiling.hidden_traits(world, leads)
    scores = market_ceiling.hidden_score(world, traits)
    lead = leads.iloc[0]
    latents = json.loads((world / "metadata" / "latent_registry.json").read_text())
    mechanisms = json.loads((world / "metadata" / "mechanism_summary.json").read_text())
    known = {
        **latents["account_latents"][lead.account_id],
        **latents["contact_latents"][lead.contact_id],
        **latents["lead_latents"][lead.lead_id],
    }
    weights = mechanisms["conversion_hazard"]["score_mech"]["weights"]
    assert scores[lead.lead_id] == pytest.approx(sum(known[k] * w for k, w in weights.items()))
