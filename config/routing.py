"""Reps, teams, territories, throttles and webhook delivery (`config/routing.toml`)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.scoring import MINUTE_MS
from config.toml import Table

WEBHOOK_FORMATS = ("slack", "json")
WEBHOOK_SECRET_PREFIX = "whsec_"
ALERT_KINDS = ("sales_ready", "cooling", "key_action", "live_visit", "account_surge")
# What the CRM says of a lead, as suppression reads it (`alerts.routing.crm_states`).
CRM_STATES = ("customer", "open_opportunity", "disqualified")
# Without a [suppress] table: a customer, a lead with an open deal or a disqualified one
# never brings a sales_ready push; a disqualified one brings none at all.
DEFAULT_SUPPRESS: dict[str, frozenset[str]] = {
    "sales_ready": frozenset(CRM_STATES),
    "key_action": frozenset({"disqualified"}),
    "live_visit": frozenset({"disqualified"}),
}
# The snippet reports engaged time every 15 s of it: three missed reports and a lead is gone.
PRESENCE_TIMEOUT_S = 45


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily period (local time, may span midnight) without push notifications."""

    start: time
    end: time
    timezone: ZoneInfo


@dataclass(frozen=True, slots=True)
class DailyDigest:
    """A daily message to the rep's webhooks at a local time: the day's hottest leads."""

    at: time
    timezone: ZoneInfo


@dataclass(frozen=True, slots=True)
class Webhook:
    """A configured destination: the only kind of URL the dispatcher ever calls."""

    url: str
    format: str
    secret: str


@dataclass(frozen=True, slots=True)
class Rep:
    """A sales rep: display name, live-page token, quiet hours and webhooks."""

    id: str
    name: str
    token: str
    quiet_hours: QuietHours | None
    webhooks: tuple[Webhook, ...]
    daily_digest: DailyDigest | None = None


@dataclass(frozen=True, slots=True)
class Territory:
    """Leads matching every given condition go to `team` or `rep`."""

    countries: frozenset[str]
    min_company_size: float | None
    industries: frozenset[str]
    team: str | None
    rep: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """Webhook timeouts and retries."""

    timeout_s: float
    max_attempts: int
    backoff_s: float
    backoff_max_s: float


@dataclass(frozen=True, slots=True)
class Routing:
    """Everything the dispatcher needs to route and deliver alerts."""

    reps: dict[str, Rep]
    teams: dict[str, tuple[str, ...]]
    territories: tuple[Territory, ...]
    default_team: str
    throttle_ms: dict[str, float]
    delivery: Delivery
    admin_token: str
    # Per alert kind, the CRM states that keep it from the rep (kept, counted, not pushed).
    suppress: Mapping[str, frozenset[str]] = field(default_factory=lambda: DEFAULT_SUPPRESS)
    # Pushes per rep and lead visit (0: no limit); later alerts of the visit update it.
    pushes_per_visit: int = 1
    # A lead whose last browser signal is older than this is no longer on the site.
    presence_timeout_ms: float = PRESENCE_TIMEOUT_S * 1000
    # Signs the requests of the Slack app whose buttons rate alerts (None: no Slack actions).
    slack_signing_secret: str | None = None


def load_routing(path: Path) -> Routing:
    """Read and validate `routing.toml`."""
    root = Table.load(path)
    root.only(
        (
            *("default_team", "admin_token", "reps", "teams", "territories", "throttle"),
            *("delivery", "suppress", "visits", "slack"),
        )
    )
    reps = {rep_id: _rep(rep_id, t) for rep_id, t in root.table("reps").subtables().items()}
    teams = {name: _team(t, reps) for name, t in root.table("teams").subtables().items()}
    default_team = root.text("default_team")
    if default_team not in teams:
        raise root.error("default_team", f"names {default_team!r}, which is not under [teams]")
    territories = tuple(_territory(t, reps, teams) for t in root.tables("territories"))
    throttle = root.table("throttle")
    throttle.only(("live_visit", "key_action", "account_surge"))
    throttle_ms = {kind: throttle.number(kind, positive=True) * MINUTE_MS for kind in throttle.data}
    return Routing(
        reps=reps,
        teams=teams,
        territories=territories,
        default_team=default_team,
        throttle_ms=throttle_ms,
        delivery=_delivery(root.table("delivery")),
        admin_token=root.secret("admin_token"),
        suppress=_suppress(root.table("suppress")) if "suppress" in root.data else DEFAULT_SUPPRESS,
        **(_visits(root.table("visits")) if "visits" in root.data else {}),
        slack_signing_secret=_slack(root.table("slack")) if "slack" in root.data else None,
    )


def _slack(t: Table) -> str:
    t.only(("signing_secret",))
    return str(t.secret("signing_secret"))


def _visits(t: Table) -> dict[str, Any]:
    t.only(("pushes", "presence_timeout_seconds"))
    pushes = t.number("pushes", 1)
    if pushes < 0 or pushes != int(pushes):
        raise t.error("pushes", f"must be a whole number, 0 or more, got {pushes:g}")
    timeout = t.number("presence_timeout_seconds", PRESENCE_TIMEOUT_S, positive=True)
    return {"pushes_per_visit": int(pushes), "presence_timeout_ms": timeout * 1000}


def _suppress(t: Table) -> dict[str, frozenset[str]]:
    """`kind = [states]`: the CRM states that keep each kind of alert from the rep."""
    t.only(ALERT_KINDS)
    suppress = {}
    for kind in t.data:
        states = t.texts(kind)
        unknown = sorted(set(states) - set(CRM_STATES))
        if unknown:
            raise t.error(kind, f"unknown states {unknown}: use {', '.join(CRM_STATES)}")
        suppress[kind] = frozenset(states)
    return suppress


def _rep(rep_id: str, t: Table) -> Rep:
    t.only(("name", "token", "quiet_hours", "webhooks", "daily_digest"))
    token = t.secret("token")
    if len(token) < 12:
        raise t.error("token", "must be at least 12 characters")
    quiet = _quiet_hours(t.table("quiet_hours")) if "quiet_hours" in t.data else None
    webhooks = tuple(_webhook(w) for w in t.tables("webhooks")) if "webhooks" in t.data else ()
    daily = _daily_digest(t.table("daily_digest")) if "daily_digest" in t.data else None
    return Rep(rep_id, t.text("name"), token, quiet, webhooks, daily)


def _quiet_hours(t: Table) -> QuietHours:
    t.only(("start", "end", "timezone"))
    return QuietHours(_clock_time(t, "start"), _clock_time(t, "end"), _zone(t))


def _daily_digest(t: Table) -> DailyDigest:
    t.only(("at", "timezone"))
    return DailyDigest(_clock_time(t, "at"), _zone(t))


def _zone(t: Table) -> ZoneInfo:
    zone_name = t.text("timezone")
    try:
        return ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise t.error("timezone", f"is not a known time zone: {zone_name!r}") from None


def _clock_time(t: Table, key: str) -> time:
    raw = t.text(key)
    try:
        return time.fromisoformat(raw)
    except ValueError:
        raise t.error(key, f"must be a time such as 22:00, got {raw!r}") from None


def _webhook(t: Table) -> Webhook:
    t.only(("url", "format", "secret"))
    url = t.text("url")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise t.error("url", f"must be an http(s) URL, got {url!r}")
    fmt = t.text("format")
    if fmt not in WEBHOOK_FORMATS:
        raise t.error("format", f"must be one of {WEBHOOK_FORMATS}, got {fmt!r}")
    secret = t.secret("secret")
    problem = webhook_secret_problem(secret)
    if problem:
        raise t.error("secret", problem)
    return Webhook(url, fmt, secret)


def webhook_secret_problem(secret: str) -> str | None:
    """Why `secret` is not a Standard Webhooks secret (`whsec_` and 24 to 64 random bytes in
    base64, as receivers' libraries expect), or None.

    >>> webhook_secret_problem("whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3")
    >>> webhook_secret_problem("change-me")[:40]
    'must be a Standard Webhooks secret, "whs'
    """
    body = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        key = base64.b64decode(body, validate=True)
    except ValueError:
        key = b""
    if secret.startswith(WEBHOOK_SECRET_PREFIX) and 24 <= len(key) <= 64:
        return None
    return (
        f'must be a Standard Webhooks secret, "{WEBHOOK_SECRET_PREFIX}" and 24 to 64 random '
        'bytes in base64; make one with: python -c "import base64, secrets; '
        f"print('{WEBHOOK_SECRET_PREFIX}' + base64.b64encode(secrets.token_bytes(32)).decode())\""
    )


def _team(t: Table, reps: dict[str, Rep]) -> tuple[str, ...]:
    t.only(("reps",))
    members = t.texts("reps")
    for rep in members:
        if rep not in reps:
            raise t.error("reps", f"names {rep!r}, which is not under [reps]")
    if not members:
        raise t.error("reps", "needs at least one rep")
    return tuple(members)


def _territory(t: Table, reps: dict[str, Rep], teams: dict[str, tuple[str, ...]]) -> Territory:
    t.only(("countries", "min_company_size", "industries", "team", "rep"))
    team, rep = t.text("team", None), t.text("rep", None)
    if (team is None) == (rep is None):
        raise t.error("team", "needs exactly one of team or rep")
    if team is not None and team not in teams:
        raise t.error("team", f"names {team!r}, which is not under [teams]")
    if rep is not None and rep not in reps:
        raise t.error("rep", f"names {rep!r}, which is not under [reps]")
    return Territory(
        countries=frozenset(c.lower() for c in t.texts("countries", ())),
        min_company_size=t.number("min_company_size", None),
        industries=frozenset(i.lower() for i in t.texts("industries", ())),
        team=team,
        rep=rep,
    )


def _delivery(t: Table) -> Delivery:
    t.only(("timeout_seconds", "max_attempts", "backoff_seconds", "backoff_max_seconds"))
    return Delivery(
        timeout_s=t.number("timeout_seconds", positive=True),
        max_attempts=int(t.number("max_attempts", positive=True)),
        backoff_s=t.number("backoff_seconds", positive=True),
        backoff_max_s=t.number("backoff_max_seconds", positive=True),
    )


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
