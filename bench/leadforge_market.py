"""Markets nobody here wrote: a leadforge world (`b2b_saas_procurement_v1`, MIT, seeded) as
the Segment calls a company's site, marketing tools and CRM would send DBL.

The mapping, lead by lead (every attribute leadforge marks leak-free that a profile keeps):

- the lead is a person, `<lead_id>@<account_id>.example`, identified by the CRM on the day
  it was created: `title` (job title), `seniority`, `department` (role function),
  `industry`, `country` (region), `company_size` and `annual_revenue` (the lower bound of
  their bands), `lead_source`, `company`;
- a web session is page views at its time: the landing page of its type (`/pricing`,
  `/demo` or `/`), then its pricing and demo page views, then one view of `/product` if it
  had other pages (their count says little and would double the volume), spread over the
  session's duration;
- a touch is a `track` named by its type and direction (`Webinar (inbound)`,
  `Email (outbound)`, `Content download (inbound)`…) on its channel (webinars `event`,
  emails `email`, calls and LinkedIn messages `crm`, downloads `web`);
- a sales activity is a `track` on channel `crm` named by its type and outcome
  (`Sales call: connected`);
- an opportunity is `Opportunity Created` when it opened and `Opportunity Won` or
  `Opportunity Lost` when it closed (the older cohort only: those are its outcomes).

Leads split by creation: the older 70 % (all their signals and outcomes) and the newer
30 % (signals up to their 30th day, no outcomes, shifted `gap_days` later so that they
arrive after the older cohort's history, as leads created after a model was trained do).
Each newer lead keeps its own timeline, but all of them start on the same day: when the
last of their signals is scored, every one of them is 30 days old, so one read of the rep
API sees each lead as it stands on its 30th day (a decayed lead has cooled by then).
Dates are days; each signal gets a seeded time of day. The world is placed so that the
newer cohort's 30th day ends as the benchmark sends it (the live system's clock is the
receive time: read months later, every lead would have cooled) and everything lies
within the collector's year.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd

DAY_MS: Final = 86_400_000
SNAPSHOT_DAYS: Final = 30
# The newer cohort's last signal is this long before the benchmark starts sending it.
READ_MARGIN_MS: Final = 10 * 60_000
RECIPE: Final = "b2b_saas_procurement_v1"
TIERS: Final = ("intro", "intermediate", "advanced")
# leadforge's 30-day snapshot features that say nothing of the outcome (its feature
# dictionary marks the others, `current_stage`, `is_sql`, the opportunity columns and
# `total_touches_all`, as reading the future).
ANCHOR_CATEGORIES: Final = (
    "industry",
    "region",
    "employee_band",
    "estimated_revenue_band",
    "process_maturity_band",
    "role_function",
    "seniority",
    "buyer_role",
    "lead_source",
)
ANCHOR_NUMBERS: Final = (
    "touch_count",
    "inbound_touch_count",
    "outbound_touch_count",
    "session_count",
    "pricing_page_views",
    "demo_page_views",
    "total_session_duration_seconds",
    "touches_days_0_7",
    "touches_last_7_days",
    "days_since_first_touch",
    "activity_count",
    "days_since_last_touch",
)
LABEL: Final = "converted_within_90_days"
_LANDING: Final = {"pricing_page": "/pricing", "demo_page": "/demo"}
_TOUCHES: Final = {
    "webinar": "Webinar",
    "email": "Email",
    "linkedin_message": "LinkedIn message",
    "content_download": "Content download",
    "call": "Call",
}
# Where each kind of touch happens (DBL's channels); a sales activity is logged in the CRM.
_TOUCH_CHANNELS: Final = {
    "webinar": "event",
    "email": "email",
    "linkedin_message": "crm",
    "content_download": "web",
    "call": "crm",
}
Call = dict[str, Any]
# A world: its tier and seed.
World = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Market:
    """A world as signals: the older cohort's calls (outcomes included) and the newer
    cohort's (up to their 30th day), each in time order; whether each newer lead converted
    within 90 days of its creation; leadforge's snapshot features of every lead."""

    older: list[Call]
    newer: list[Call]
    labels: dict[str, bool]
    snapshot: pd.DataFrame


def generate(tier: str, seed: int, directory: Path, leads: int = 5000) -> Path:
    """Generate a world of `leads` leads and save its tables in `directory`."""
    # Imported here: only the benchmark and its tests generate worlds.
    from leadforge.api.generator import Generator

    world = Generator.from_recipe(
        RECIPE, seed=seed, difficulty=tier, exposure_mode="research_instructor"
    ).generate(n_leads=leads)
    world.save(str(directory), generation_timestamp="2024-01-01T00:00:00Z")
    return directory


def market(
    world: Path, *, now_ms: int, seed: int = 0, older_share: float = 0.7, gap_days: int = 150
) -> Market:
    """A saved world as calls: the older cohort's history, then `gap_days` later the newer
    cohort's first 30 days, ending `READ_MARGIN_MS` before `now_ms`."""
    tables = {
        name: pd.read_parquet(world / "tables" / f"{name}.parquet")
        for name in ("leads", "contacts", "accounts", "sessions", "touches")
    }
    tables["activities"] = pd.read_parquet(world / "tables" / "sales_activities.parquet")
    tables["opportunities"] = pd.read_parquet(world / "tables" / "opportunities.parquet")
    leads = tables["leads"].sort_values(["lead_created_at", "lead_id"]).reset_index(drop=True)
    cut = int(len(leads) * older_share)
    older_ids = older_leads(world, older_share)
    # Every newer lead starts on the last creation day: read once, all are 30 days old.
    last_day = _day(leads["lead_created_at"].max())
    start = {row.lead_id: last_day - _day(row.lead_created_at) for row in leads.itertuples()}
    # The newer cohort's 30th day ends just before `now_ms`: the rep API is read "on day
    # 30", as the live system's clock (receive time) stands then. Were it read months
    # later, every lead would have cooled by the wall clock, as it should live.
    origin = now_ms - READ_MARGIN_MS - (SNAPSHOT_DAYS + 1 + gap_days) * DAY_MS - last_day
    rng = random.Random(seed)
    older: list[Call] = []
    newer: list[Call] = []
    for call, lead_id, age_days in _calls(tables, rng):
        if lead_id in older_ids:
            call["ts"] += origin
            older.append(call)
        elif age_days <= SNAPSHOT_DAYS and not _is_outcome(call):
            call["ts"] += origin + gap_days * DAY_MS + start[lead_id]
            newer.append(call)
    for calls in (older, newer):
        calls.sort(key=lambda c: (c["ts"], c["messageId"]))
        for call in calls:
            call["timestamp"] = datetime.fromtimestamp(call.pop("ts") / 1000, UTC).isoformat()
    labels = {
        person_of(row.lead_id, row.account_id): bool(row.converted_within_90_days)
        for row in leads[cut:].itertuples()
    }
    return Market(older, newer, labels, snapshot(world, older_ids))


def older_leads(world: Path, older_share: float = 0.7) -> set[str]:
    """The ids of a saved world's older cohort: the first `older_share` of its leads by
    creation."""
    leads = pd.read_parquet(world / "tables" / "leads.parquet")
    leads = leads.sort_values(["lead_created_at", "lead_id"])
    return set(leads["lead_id"][: int(len(leads) * older_share)])


def snapshot(world: Path, older: set[str]) -> pd.DataFrame:
    """leadforge's 30-day snapshot features and label of every lead of a saved world, with
    whether it is in the `older` cohort."""
    frame = pd.concat(
        pd.read_parquet(path) for path in sorted((world / "tasks" / LABEL).glob("*.parquet"))
    )
    frame["older"] = frame["lead_id"].isin(older)
    return frame.reset_index(drop=True)


def worlds(tiers: str, seeds: str) -> list[World]:
    """The worlds `--tiers` and `--seeds` name, seed by seed, every tier (a run cut short
    still has figures for each tier). Raises ValueError naming what is wrong.

    >>> worlds("intro,advanced", "1-2")
    [('intro', 1), ('advanced', 1), ('intro', 2), ('advanced', 2)]
    >>> worlds("intro", "2,5")
    [('intro', 2), ('intro', 5)]
    >>> worlds("expert", "1")
    Traceback (most recent call last):
    ...
    ValueError: --tiers: unknown ['expert']; one of ('intro', 'intermediate', 'advanced')
    """
    named = tiers.split(",")
    unknown = sorted(set(named) - set(TIERS))
    if unknown:
        raise ValueError(f"--tiers: unknown {unknown}; one of {TIERS}")
    try:
        if "-" in seeds:
            low, high = seeds.split("-")
            numbers = list(range(int(low), int(high) + 1))
        else:
            numbers = [int(seed) for seed in seeds.split(",")]
    except ValueError:
        raise ValueError(f"--seeds: {seeds!r} is not like 1-5 or 1,3") from None
    return [(tier, seed) for seed in numbers for tier in named]


def command_line(description: str, *, seeds: str, out: str) -> tuple[list[World], int, Path]:
    """A benchmark's worlds (`--tiers`, `--seeds`), leads per world (`--leads`) and output
    file (`--out`) from its command line; a wrong tier or seed list exits naming it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiers", default=",".join(TIERS))
    parser.add_argument("--seeds", default=seeds, help="e.g. 1-5 or 1,3")
    parser.add_argument("--leads", type=int, default=5000, help="leads per world")
    parser.add_argument("--out", type=Path, default=Path(out))
    args = parser.parse_args()
    try:
        return worlds(args.tiers, args.seeds), args.leads, args.out
    except ValueError as error:
        parser.error(str(error))


def each_world(worlds: list[World], prefix: str) -> Iterator[tuple[str, int, Path]]:
    """Each world's tier and seed, with a work directory of its own (removed after it)."""
    for tier, seed in worlds:
        with tempfile.TemporaryDirectory(prefix=prefix) as work:
            yield tier, seed, Path(work)


def person_of(lead_id: str, account_id: str) -> str:
    """The email a world's lead is known by.

    >>> person_of("lead_000001", "acct_000802")
    'lead_000001@acct_000802.example'
    """
    return f"{lead_id}@{account_id}.example"


def _calls(tables: dict[str, pd.DataFrame], rng: random.Random) -> Iterator[tuple[Call, str, int]]:
    """Every lead's calls with its lead id and age in days (world time, ms from day 0)."""
    leads = tables["leads"].merge(tables["contacts"], on=["contact_id"], suffixes=("", "_c"))
    leads = leads.merge(tables["accounts"], on="account_id", suffixes=("", "_a"))
    created: dict[str, int] = {}
    person: dict[str, str] = {}
    for row in leads.itertuples():
        created[row.lead_id] = born = _day(row.lead_created_at)
        person[row.lead_id] = email = person_of(row.lead_id, row.account_id)
        traits = {
            "email": email,
            "title": row.job_title,
            "seniority": row.seniority,
            "department": row.role_function,
            "industry": row.industry,
            "country": row.region,
            "company": row.company_name,
            "company_size": _lower_bound(row.employee_band),
            "annual_revenue": _lower_bound(row.estimated_revenue_band),
            "lead_source": row.lead_source,
        }
        call = {"type": "identify", "userId": email, "traits": traits, "ts": born + 1000}
        yield _stamped(call, f"{row.lead_id}-identify"), row.lead_id, 0
    for row in tables["sessions"].itertuples():
        at = _day(row.session_timestamp) + _time_of_day(rng)
        pages = _session_pages(row)
        step = int(row.session_duration_seconds or 0) * 1000 // len(pages)
        for n, path in enumerate(pages):
            call = {"type": "page", "userId": person[row.lead_id], "ts": at + n * step}
            call["properties"] = {"path": path}
            yield _stamped(call, f"{row.session_id}-{n}"), row.lead_id, _age(row, created, at)
    for row in tables["touches"].itertuples():
        at = _day(row.touch_timestamp) + _time_of_day(rng)
        event = f"{_TOUCHES.get(row.touch_type, row.touch_type)} ({row.touch_direction})"
        call = {"type": "track", "userId": person[row.lead_id], "event": event, "ts": at}
        call |= {
            "properties": {"source": row.touch_channel},
            "context": {"channel": _TOUCH_CHANNELS[row.touch_type]},
        }
        yield (
            _stamped(call, row.touch_id),
            row.lead_id,
            _age(row, created, at),
        )
    for row in tables["activities"].itertuples():
        at = _day(row.activity_timestamp) + _time_of_day(rng)
        outcome = str(row.activity_outcome).replace("_", " ")
        event = f"Sales {row.activity_type}: {outcome}"
        call = {"type": "track", "userId": person[row.lead_id], "event": event, "ts": at}
        call["context"] = {"channel": "crm"}
        yield _stamped(call, row.activity_id), row.lead_id, _age(row, created, at)
    for row in tables["opportunities"].itertuples():
        email = person[row.lead_id]
        opened = _day(row.created_at) + 12 * 3_600_000
        call = {"type": "track", "userId": email, "event": "Opportunity Created", "ts": opened}
        yield (
            _stamped(call, f"{row.opportunity_id}-created"),
            row.lead_id,
            _age(row, created, opened),
        )
        if isinstance(row.close_outcome, str) and isinstance(row.closed_at, str):
            closed = _day(row.closed_at) + 17 * 3_600_000
            won = row.close_outcome == "closed_won"
            event = "Opportunity Won" if won else "Opportunity Lost"
            props = (
                {"amount": int(row.estimated_acv)} if won and pd.notna(row.estimated_acv) else {}
            )
            call = {"type": "track", "userId": email, "event": event, "ts": closed}
            yield (
                _stamped({**call, "properties": props}, f"{row.opportunity_id}-closed"),
                (row.lead_id),
                _age(row, created, closed),
            )


def _session_pages(row: Any) -> list[str]:
    """A session's page views: its landing page, pricing, demo, then one other if it had
    more."""
    pricing, demo = int(row.pricing_page_views or 0), int(row.demo_page_views or 0)
    pages = [_LANDING.get(row.session_type, "/"), *["/pricing"] * pricing, *["/demo"] * demo]
    return pages + ["/product"] * (int(row.page_views or 0) > len(pages))


def _is_outcome(call: Call) -> bool:
    return str(call.get("event", "")).startswith("Opportunity ")


def _stamped(call: Call, message_id: str) -> Call:
    return {**call, "messageId": message_id}


def _age(row: Any, created: dict[str, int], at: int) -> int:
    return (at - created[row.lead_id]) // DAY_MS


def _day(text: str) -> int:
    """A world's date as ms since the epoch (day 0 is moved later)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _time_of_day(rng: random.Random) -> int:
    """Office hours: 08:00 to 18:00."""
    return rng.randrange(8 * 3_600_000, 18 * 3_600_000)


def _lower_bound(band: str) -> int | None:
    """A band's lower bound as a number.

    >>> _lower_bound("500-999"), _lower_bound("$10M-$50M"), _lower_bound("2000+")
    (500, 10000000, 2000)
    """
    low = band.split("-")[0].rstrip("+").lstrip("$")
    scale = {"K": 1_000, "M": 1_000_000, "B": 1_000_000_000}.get(low[-1:], 1)
    digits = low.rstrip("KMB")
    return int(float(digits) * scale) if digits.replace(".", "").isdigit() else None
