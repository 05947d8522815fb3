"""Who gets an alert, and whether and when to push it. Pure: no I/O, no wall clock."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from config.routing import QuietHours, Rep, Routing, Territory

# Kinds a rep must get even in quiet hours (pushed when they end); others wait on the page.
NEVER_DROPPED = frozenset({"sales_ready"})


def route(lead: Mapping[str, Any], routing: Routing) -> str:
    """The rep for a lead (a profile view): its owner when that is a configured rep, else
    the first matching territory, else the default team; a team picks by a stable hash."""
    owner = lead.get("owner")
    if isinstance(owner, str) and owner in routing.reps:
        return owner
    for territory in routing.territories:
        if _in_territory(lead, territory):
            if territory.rep is not None:
                return territory.rep
            assert territory.team is not None
            return pick(routing.teams[territory.team], str(lead["person"]))
    return pick(routing.teams[routing.default_team], str(lead["person"]))


def pick(team: tuple[str, ...], person: str) -> str:
    """Deterministic round-robin: a stable hash of the lead spreads leads evenly over the
    team, and the same lead always lands on the same rep (whatever the replay)."""
    digest = hashlib.sha256(person.encode()).digest()
    return team[int.from_bytes(digest[:8], "big") % len(team)]


def _in_territory(lead: Mapping[str, Any], territory: Territory) -> bool:
    if territory.countries and str(lead.get("country") or "").lower() not in territory.countries:
        return False
    if territory.industries and str(lead.get("industry") or "").lower() not in territory.industries:
        return False
    if territory.min_company_size is not None:
        size = lead.get("company_size")
        if not isinstance(size, int | float) or size < territory.min_company_size:
            return False
    return True


def push_at(alert: Mapping[str, Any], rep: Rep) -> int | None:
    """When to push an alert to the rep's webhooks (epoch ms of event time): at once,
    at the end of the rep's quiet hours (sales_ready), or never (other kinds in quiet hours:
    they still reach the live page)."""
    ts = int(alert["ts"])
    if rep.quiet_hours is None or not in_quiet_hours(ts, rep.quiet_hours):
        return ts
    if alert["kind"] in NEVER_DROPPED:
        return quiet_hours_end(ts, rep.quiet_hours)
    return None


def in_quiet_hours(ts: int, quiet: QuietHours) -> bool:
    """True when `ts` (epoch ms) falls in the rep's local quiet period."""
    local = datetime.fromtimestamp(ts / 1000, tz=quiet.timezone).time()
    if quiet.start <= quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def quiet_hours_end(ts: int, quiet: QuietHours) -> int:
    """The first moment after `ts` at which the quiet period is over (epoch ms)."""
    local = datetime.fromtimestamp(ts / 1000, tz=quiet.timezone)
    end = datetime.combine(local.date(), quiet.end, tzinfo=quiet.timezone)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), quiet.end, tzinfo=quiet.timezone)
    return int(end.astimezone(UTC).timestamp() * 1000)


def throttle_key(alert: Mapping[str, Any], rep: str) -> str:
    """What a throttle counts per: this lead, this rep, this kind."""
    return f"{rep}\x1f{alert['kind']}\x1f{alert['contact']}"
