"""Whether and when to push an alert to its rep (quiet hours, throttles). Pure: no I/O, no
wall clock. Who the rep is: `config.routing.route`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from config.routing import QuietHours, Rep

# Kinds a rep must get even in quiet hours (pushed when they end); others wait on the page.
NEVER_DROPPED = frozenset({"sales_ready"})


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
    """What a throttle counts per: this lead (or account), this rep, this kind."""
    return f"{rep}\x1f{alert['kind']}\x1f{alert.get('contact') or alert.get('account')}"
