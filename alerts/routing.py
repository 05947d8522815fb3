"""Whether and when to push an alert to its rep (quiet hours, throttles, what the CRM says
of the lead). Pure: no I/O, no wall clock. Who the rep is: `config.routing.route`."""

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


def crm_states(profile: Mapping[str, Any], at: int) -> list[str]:
    """What the CRM says of a lead at event time `at` (epoch ms), as suppression reads it.

    >>> crm_states({"lifecycle_stage": "Customer", "open_opportunity": True}, 0)
    ['customer', 'open_opportunity']
    >>> crm_states({"disqualified_at": "2026-01-01"}, 1_700_000_000_000)
    []
    >>> crm_states({"disqualified_at": "2026-01-01T09:00:00Z", "outcome": "won"}, 1_800_000_000_000)
    ['customer', 'disqualified']
    """
    states = []
    stage = str(profile.get("lifecycle_stage") or "").strip().lower()
    if stage == "customer" or profile.get("outcome") == "won":
        states.append("customer")
    if stage == "opportunity" or profile.get("open_opportunity") is True:
        states.append("open_opportunity")
    since = _moment(profile.get("disqualified_at"))
    if since is not None and since <= at:
        states.append("disqualified")
    return states


def suppressed_by(alert: Mapping[str, Any], suppress: Mapping[str, frozenset[str]]) -> str | None:
    """The first CRM state that keeps this alert from its rep, or None.

    >>> alert = {"kind": "sales_ready", "ts": 5, "profile": {"outcome": "won"}}
    >>> suppressed_by(alert, {"sales_ready": frozenset({"customer"})})
    'customer'
    >>> suppressed_by({**alert, "kind": "key_action"}, {"sales_ready": frozenset({"customer"})})
    """
    kept_from = suppress.get(str(alert.get("kind")))
    profile = alert.get("profile")
    if not kept_from or not isinstance(profile, Mapping):
        return None
    return next((s for s in crm_states(profile, int(alert["ts"])) if s in kept_from), None)


def _moment(value: Any) -> int | None:
    """A CRM time as epoch ms: ISO-8601 (a date is its midnight UTC) or epoch ms; an empty
    value is none; anything else counts from the start (the CRM did say it)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
