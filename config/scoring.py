"""The scoring model (`config/scoring.toml`): engagement and fit rules, the grid, alert rules."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from config.errors import ConfigError
from config.toml import Table

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Engaged time over days is kept per UTC day: a bounded number of them.
MAX_OVER_DAYS = 31
FREE_MAIL_FILE = "free_mail.txt"
# A model's TOML file, by the name it has among the files that make it.
MODEL_FILE = "scoring.toml"


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a signal must look like; every given condition must hold (any listed value/glob)."""

    types: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    forms: tuple[str, ...] = ()
    campaigns: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EngagementRule:
    """Points (halving every `half_life_ms`) for a signal matching `when`, at most
    `daily_cap` points per person per UTC day; a `latest` rule's points come from the latest
    matching signal alone (how recently it was seen, not how often)."""

    id: str
    label: str
    points: float
    half_life_ms: float
    when: Conditions
    daily_cap: float | None = None
    latest: bool = False


@dataclass(frozen=True, slots=True)
class FitRule:
    """Points when one trait of a person matches: globs, a value set, or a minimum.
    Within a `group`, only the first matching rule (in file order) counts."""

    id: str
    label: str
    trait: str
    group: str
    points: float
    matches: tuple[str, ...] = ()
    values: frozenset[str] = frozenset()
    at_least: float | None = None


@dataclass(frozen=True, slots=True)
class Grid:
    """Fit bands (A..C, D below), engagement bands (1..3, 4 below), sales-ready cells."""

    fit_bands: tuple[tuple[str, float], ...]
    engagement_bands: tuple[tuple[str, float], ...]
    sales_ready: frozenset[str]
    hysteresis: float


@dataclass(frozen=True, slots=True)
class KeyAction:
    """A signal a rep wants to hear about at once (at most once per lead per session). With
    `engaged_seconds`, the moment the lead's engaged time on matching pages reaches it:
    within the visit, or over the last `over_days` UTC days when given."""

    id: str
    label: str
    when: Conditions
    engaged_seconds: float | None = None
    over_days: int | None = None


@dataclass(frozen=True, slots=True)
class LiveVisit:
    """Who gets a live-visit alert when they start a web session after `session_gap_ms`."""

    session_gap_ms: float
    cells: frozenset[str]
    owned: bool


@dataclass(frozen=True, slots=True)
class AccountSurge:
    """An account surges with `engaged_contacts` contacts at `engaged_at_least` within
    `window_ms`, or a summed engagement of `account_engagement`."""

    engaged_contacts: int
    engaged_at_least: float
    window_ms: float
    account_engagement: float


@dataclass(frozen=True, slots=True)
class AlertRules:
    """When to alert besides sales-ready crossings."""

    late_after_ms: float
    min_fit: float
    key_actions: tuple[KeyAction, ...]
    live_visit: LiveVisit
    account_surge: AccountSurge
    cooling: bool


@dataclass(frozen=True, slots=True)
class IdentityWindows:
    """How long identity state lasts (both change results, so they live in the model)."""

    # A message id seen again within this (receive time) is a resend, dropped.
    dedupe_window_ms: int = DAY_MS
    # An unclaimed cookie idle this long (event time) is forgotten, with its anonymous
    # profile in the read model; a later signal starts afresh.
    anonymous_ttl_ms: int = 90 * DAY_MS


@dataclass(frozen=True, slots=True)
class Probability:
    """The chance of an outcome (`outcome` within `within_days`) from a lead's score: a
    logistic function, `1 / (1 + exp(-(intercept + per_point * score)))`. A learned model
    (`dbl train`) sets it; a hand-set one may leave it out (no probability then)."""

    outcome: str
    within_days: float
    intercept: float
    per_point: float


@dataclass(frozen=True)
class ScoringModel:
    """Everything the pure scoring logic needs, validated."""

    engagement: tuple[EngagementRule, ...]
    fit: tuple[FitRule, ...]
    grid: Grid
    alerts: AlertRules
    # Consumer mailbox domains: they name no account.
    free_mail: frozenset[str] = frozenset()
    identity: IdentityWindows = IdentityWindows()
    # The model's version: a hash of its content (the TOML file and the lists it reads),
    # carried by every profile and alert. Empty for a model built in code.
    version: str = ""
    # The chance of an outcome from the score, when the model knows it.
    probability: Probability | None = None
    half_lives: dict[str, float] = field(init=False, compare=False, repr=False)
    # The `latest` rules' ids.
    latest: frozenset[str] = field(init=False, compare=False, repr=False)
    labels: dict[str, str] = field(init=False, compare=False, repr=False)
    # The rules that can match a signal, by its type and its event name (see `candidates`).
    _by_type: dict[str, tuple[EngagementRule, ...]] = field(init=False, compare=False, repr=False)
    _by_event: dict[str, tuple[EngagementRule, ...]] = field(init=False, compare=False, repr=False)
    _for_all: tuple[EngagementRule, ...] = field(init=False, compare=False, repr=False)
    # Typed and event rules merged in file order, by (type, event name), filled as signals
    # come: bounded by the signal types times the event names the rules name.
    _merged: dict[tuple[str, str], tuple[EngagementRule, ...]] = field(
        init=False, compare=False, repr=False
    )
    # The traits fit rules read.
    fit_traits: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Looked up once per signal: index the rules once.
        object.__setattr__(self, "half_lives", {r.id: r.half_life_ms for r in self.engagement})
        object.__setattr__(self, "latest", frozenset(r.id for r in self.engagement if r.latest))
        object.__setattr__(self, "labels", {r.id: r.label for r in self.engagement})
        # Rules with equal conditions share one `Conditions`, so a signal is checked against
        # each distinct set of conditions once (`matching_rules`): a learned model has many
        # rules per condition (half-lives, counts).
        shared: dict[Conditions, Conditions] = {}
        rules = tuple(replace(r, when=shared.setdefault(r.when, r.when)) for r in self.engagement)
        object.__setattr__(self, "engagement", rules)
        types = {t for r in rules for t in r.when.types}
        events = {e for r in rules for e in r.when.events}
        by_type = {t: tuple(r for r in rules if t in r.when.types) for t in types}
        by_event = {
            e: tuple(r for r in rules if not r.when.types and e in r.when.events) for e in events
        }
        for_all = tuple(r for r in rules if not r.when.types and not r.when.events)
        object.__setattr__(self, "_by_type", by_type)
        object.__setattr__(self, "_by_event", by_event)
        object.__setattr__(self, "_for_all", for_all)
        object.__setattr__(self, "_merged", {})
        object.__setattr__(self, "fit_traits", tuple(sorted({r.trait for r in self.fit})))

    def candidates(self, kind: str, event: str | None) -> tuple[EngagementRule, ...]:
        """The rules that may match a signal of this type and event name, in file order."""
        by_event = self._by_event.get(event, ()) if event else ()
        typed = self._by_type.get(kind, ())
        if not by_event:
            return typed + self._for_all if self._for_all else typed
        key = (kind, event or "")
        merged = self._merged.get(key)
        if merged is None:
            found = {id(r) for r in (*typed, *by_event, *self._for_all)}
            merged = tuple(r for r in self.engagement if id(r) in found)
            self._merged[key] = merged
        return merged


_CONDITION_KEYS = (
    "types",
    "channels",
    "events",
    "paths",
    "forms",
    "campaigns",
    "links",
    "content_types",
)
_ENGAGEMENT_KEYS = (
    "id",
    "label",
    "points",
    "half_life_days",
    "daily_cap",
    "latest",
    *_CONDITION_KEYS,
)
_FIT_KEYS = ("id", "label", "trait", "group", "points", "matches", "in", "in_list", "at_least")
_FIT_GRADES = ("A", "B", "C")
_ENGAGEMENT_GRADES = ("1", "2", "3")
_CELLS = frozenset(f + e for f in (*_FIT_GRADES, "D") for e in (*_ENGAGEMENT_GRADES, "4"))


def load_scoring_model(path: Path) -> ScoringModel:
    """Read and validate `scoring.toml`; any problem raises a `ConfigError` naming the key."""
    root = Table.load(path)
    root.only(("engagement", "fit", "grade", "alerts", "identity", "probability"))
    engagement = tuple(_engagement_rule(t) for t in root.tables("engagement"))
    if not engagement:
        raise root.error("engagement", "needs at least one rule")
    _unique_ids(root, "engagement", [r.id for r in engagement])
    # A model may have no fit rules (a learned one, when no trait predicts the outcome).
    fit = tuple(_fit_rule(t, path.parent) for t in root.tables("fit", ()))
    _unique_ids(root, "fit", [r.id for r in fit])
    free_mail = frozenset(_read_list(root, "(free-mail list)", path.parent / FREE_MAIL_FILE))
    grid = _grid(root.table("grade"))
    identity = _identity(root.table("identity")) if "identity" in root.data else IdentityWindows()
    alerts = _alert_rules(root.table("alerts"))
    version = model_version(path, [t.text("in_list", None) for t in root.tables("fit", ())])
    chance = _probability(root.table("probability")) if "probability" in root.data else None
    return ScoringModel(engagement, fit, grid, alerts, free_mail, identity, version, chance)


def model_version(path: Path, lists: list[str | None]) -> str:
    """A model's version: the first 12 hex digits of SHA-256 over its TOML file and the
    list files it reads (the free-mail list and each `in_list`), so the same content gives
    the same version on any machine and any change gives a new one."""
    return version_of(_files(path, lists))


def version_of(files: Mapping[str, bytes]) -> str:
    """The version of a model given as its files (`MODEL_FILE` and the lists, by name).

    >>> version_of({MODEL_FILE: b"x", FREE_MAIL_FILE: b""})
    '0dc43ea43b8d'
    """
    digest = hashlib.sha256(files[MODEL_FILE])
    for name in sorted(n for n in files if n != MODEL_FILE):
        digest.update(b"\0" + name.encode() + b"\0" + files[name])
    return digest.hexdigest()[:12]


def model_files(path: Path) -> dict[str, bytes]:
    """A model as the files that make it: the TOML (as `MODEL_FILE`) and each list it reads,
    by name; what publishing hands to the running system. The model is validated first."""
    load_scoring_model(path)
    root = Table.load(path)
    return _files(path, [t.text("in_list", None) for t in root.tables("fit", ())])


def _files(path: Path, lists: list[str | None]) -> dict[str, bytes]:
    files = {MODEL_FILE: path.read_bytes()}
    for name in sorted({FREE_MAIL_FILE, *(n for n in lists if n)}):
        files[name] = (path.parent / name).read_bytes()
    return files


def load_model_files(files: Mapping[str, bytes]) -> ScoringModel:
    """A model from its files (as `model_files` gives them), validated like a file on disk.
    List names must be plain file names."""
    for name in files:
        if Path(name).name != name or name.startswith("."):
            raise ConfigError(name, "", "is not a plain file name")
    if MODEL_FILE not in files:
        raise ConfigError(MODEL_FILE, "", "is missing from the model")
    with tempfile.TemporaryDirectory(prefix="dbl-model-") as folder:
        for name, content in files.items():
            (Path(folder) / name).write_bytes(content)
        return load_scoring_model(Path(folder) / MODEL_FILE)


def _probability(t: Table) -> Probability:
    t.only(("outcome", "within_days", "intercept", "per_point"))
    outcome = t.text("outcome")
    if outcome not in ("won", "created", "lost"):
        raise t.error("outcome", f"must be won, created or lost, got {outcome!r}")
    return Probability(
        outcome=outcome,
        within_days=t.number("within_days", positive=True),
        intercept=t.number("intercept"),
        per_point=t.number("per_point"),
    )


def _identity(t: Table) -> IdentityWindows:
    t.only(("dedupe_window_hours", "anonymous_days"))
    default = IdentityWindows()
    return IdentityWindows(
        dedupe_window_ms=int(
            t.number("dedupe_window_hours", default.dedupe_window_ms / HOUR_MS, positive=True)
            * HOUR_MS
        ),
        anonymous_ttl_ms=int(
            t.number("anonymous_days", default.anonymous_ttl_ms / DAY_MS, positive=True) * DAY_MS
        ),
    )


def _unique_ids(root: Table, name: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, rule_id in enumerate(ids):
        if rule_id in seen:
            raise root.error(f"{name}[{i}].id", f"repeats the id {rule_id!r}")
        seen.add(rule_id)


def _conditions(t: Table) -> Conditions:
    conditions = Conditions(**{key: t.texts(key, ()) for key in _CONDITION_KEYS})
    if conditions == Conditions():
        raise t.error("types", f"needs at least one condition ({', '.join(_CONDITION_KEYS)})")
    return conditions


def _key_action(t: Table) -> KeyAction:
    t.only(("id", "label", "engaged_seconds", "over_days", *_CONDITION_KEYS))
    seconds = t.number("engaged_seconds", None, positive=True)
    if seconds is None:
        if "over_days" in t.data:
            raise t.error("over_days", "counts engaged time: give engaged_seconds too")
        return KeyAction(t.text("id"), t.text("label"), _conditions(t))
    # Engaged time is reported by pages: only where on the site may narrow it.
    for key in _CONDITION_KEYS:
        if key != "paths" and key in t.data:
            raise t.error(key, "cannot narrow engaged time (pages report it): use paths only")
    over_days = t.number("over_days", None, positive=True)
    if over_days is not None and (over_days != int(over_days) or over_days > MAX_OVER_DAYS):
        raise t.error("over_days", f"must be a whole number of days up to {MAX_OVER_DAYS}")
    return KeyAction(
        t.text("id"),
        t.text("label"),
        Conditions(paths=t.texts("paths", ())),
        engaged_seconds=seconds,
        over_days=None if over_days is None else int(over_days),
    )


def _engagement_rule(t: Table) -> EngagementRule:
    t.only(_ENGAGEMENT_KEYS)
    latest = t.flag("latest", False)
    daily_cap = t.number("daily_cap", None, positive=True)
    if latest and daily_cap is not None:
        raise t.error("daily_cap", "means nothing for a latest rule (one signal counts)")
    return EngagementRule(
        id=t.text("id"),
        label=t.text("label"),
        points=t.number("points"),
        half_life_ms=t.number("half_life_days", positive=True) * DAY_MS,
        when=_conditions(t),
        daily_cap=daily_cap,
        latest=latest,
    )


def _fit_rule(t: Table, config_dir: Path) -> FitRule:
    t.only(_FIT_KEYS)
    matches = tuple(m.lower() for m in t.texts("matches", ()))
    values = {v.lower() for v in t.texts("in", ())}
    list_file = t.text("in_list", None)
    if list_file is not None:
        values |= _read_list(t, "in_list", config_dir / list_file)
    at_least = t.number("at_least", None)
    given = sum(1 for kind in (matches, values, at_least) if kind not in ((), set(), None))
    if given != 1:
        raise t.error("matches", "needs exactly one of matches, in/in_list or at_least")
    trait = t.text("trait")
    return FitRule(
        id=t.text("id"),
        label=t.text("label"),
        trait=trait,
        group=t.text("group", trait),
        points=t.number("points"),
        matches=matches,
        values=frozenset(values),
        at_least=at_least,
    )


def _read_list(t: Table, key: str, path: Path) -> set[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise t.error(key, f"needs {path}, which does not exist") from None
    return {line.strip().lower() for line in lines if line.strip() and not line.startswith("#")}


def _grid(t: Table) -> Grid:
    t.only(("fit_bands", "engagement_bands", "sales_ready", "hysteresis"))
    fit_bands = _bands(t.table("fit_bands"), _FIT_GRADES)
    engagement_bands = _bands(t.table("engagement_bands"), _ENGAGEMENT_GRADES)
    cells = _cells(t, "sales_ready")
    return Grid(fit_bands, engagement_bands, cells, t.number("hysteresis", 0.0))


def _cells(t: Table, key: str) -> frozenset[str]:
    cells = t.texts(key)
    for cell in cells:
        if cell not in _CELLS:
            raise t.error(key, f"has {cell!r}, which is not a cell such as A1 or B2")
    return frozenset(cells)


def _bands(t: Table, names: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    t.only(names)
    bands = tuple((name, t.number(name)) for name in names)
    thresholds = [threshold for _, threshold in bands]
    if thresholds != sorted(thresholds, reverse=True):
        raise t.error(names[0], "thresholds must decrease from the best band to the worst")
    return bands


def _alert_rules(t: Table) -> AlertRules:
    t.only(
        ("late_after_minutes", "min_fit", "key_actions", "live_visit", "account_surge", "cooling")
    )
    key_actions = [_key_action(action) for action in t.tables("key_actions")]
    _unique_ids(t, "key_actions", [a.id for a in key_actions])
    live = t.table("live_visit")
    live.only(("session_gap_minutes", "cells", "owned"))
    surge = t.table("account_surge")
    surge.only(("engaged_contacts", "engaged_at_least", "window_days", "account_engagement"))
    cooling = t.table("cooling")
    cooling.only(("enabled",))
    return AlertRules(
        late_after_ms=t.number("late_after_minutes", positive=True) * MINUTE_MS,
        min_fit=t.number("min_fit", 0.0),
        key_actions=tuple(key_actions),
        live_visit=LiveVisit(
            session_gap_ms=live.number("session_gap_minutes", positive=True) * MINUTE_MS,
            cells=_cells(live, "cells"),
            owned=live.flag("owned"),
        ),
        account_surge=AccountSurge(
            engaged_contacts=int(surge.number("engaged_contacts", positive=True)),
            engaged_at_least=surge.number("engaged_at_least", positive=True),
            window_ms=surge.number("window_days", positive=True) * DAY_MS,
            account_engagement=surge.number("account_engagement", positive=True),
        ),
        cooling=cooling.flag("enabled"),
    )
