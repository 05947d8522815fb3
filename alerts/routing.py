"""Whether and when to push an alert to its rep (quiet hours, throttles, what the CRM says
of the lead). Pure: no I/O, no wall clock. Who the rep is: `config.routing.route`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from config.routing import DailyDigest, QuietHours, Rep


def push_at(alert: Mapping[str, Any], rep: Rep) -> int:
    """When to push an alert to the rep's webhooks (epoch ms of event time): at once, or,
    in the rep's quiet hours, when they end (in one digest with the others held)."""
    ts = int(alert["ts"])
    if rep.quiet_hours is None or not in_quiet_hours(ts, rep.quiet_hours):
        return ts
    return quiet_hours_end(ts, rep.quiet_hours)


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


def daily_digest_due(now_ms: int, daily: DailyDigest) -> str | None:
    """The local date whose daily digest is due at `now_ms` (within the hour after its
    time; a sender that was down longer skips that day), else None.

    >>> from datetime import time
    >>> from zoneinfo import ZoneInfo
    >>> at_eight = DailyDigest(time(8), ZoneInfo("Europe/Berlin"))
    >>> daily_digest_due(1_767_252_600_000, at_eight)  # 2026-01-01 08:30 in Berlin
    '2026-01-01'
    >>> daily_digest_due(1_767_245_400_000, at_eight) is None  # 06:30
    True
    """
    local = datetime.fromtimestamp(now_ms / 1000, tz=daily.timezone)
    due = datetime.combine(local.date(), daily.at, tzinfo=daily.timezone)
    return local.date().isoformat() if timedelta(0) <= local - due < timedelta(hours=1) else None


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
