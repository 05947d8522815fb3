"""The scoring model (`config/scoring.toml`): engagement rules, fit rules and the grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from config.toml import Table

DAY_MS = 86_400_000
FREE_MAIL_FILE = "free_mail.txt"


@dataclass(frozen=True, slots=True)
class EngagementRule:
    """Points (halving every `half_life_ms`) for a signal matching all given conditions."""

    id: str
    label: str
    points: float
    half_life_ms: float
    types: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    forms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FitRule:
    """Points when one trait of a person matches: globs, a value set, or a minimum."""

    id: str
    label: str
    trait: str
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


@dataclass(frozen=True)
class ScoringModel:
    """Everything the pure scoring logic needs, validated."""

    engagement: tuple[EngagementRule, ...]
    fit: tuple[FitRule, ...]
    grid: Grid
    # Consumer mailbox domains: they name no account.
    free_mail: frozenset[str] = frozenset()
    half_lives: dict[str, float] = field(init=False, compare=False, repr=False)
    labels: dict[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Looked up once per signal: index the rules by id once.
        object.__setattr__(self, "half_lives", {r.id: r.half_life_ms for r in self.engagement})
        object.__setattr__(self, "labels", {r.id: r.label for r in self.engagement})


_CONDITION_KEYS = ("types", "channels", "events", "paths", "forms")
_ENGAGEMENT_KEYS = ("id", "label", "points", "half_life_days", *_CONDITION_KEYS)
_FIT_KEYS = ("id", "label", "trait", "points", "matches", "in", "in_list", "at_least")
_FIT_GRADES = ("A", "B", "C")
_ENGAGEMENT_GRADES = ("1", "2", "3")


def load_scoring_model(path: Path) -> ScoringModel:
    """Read and validate `scoring.toml`; any problem raises a `ConfigError` naming the key."""
    root = Table.load(path)
    root.only(("engagement", "fit", "grade"))
    engagement = tuple(_engagement_rule(t) for t in root.tables("engagement"))
    if not engagement:
        raise root.error("engagement", "needs at least one rule")
    _unique_ids(root, "engagement", [r.id for r in engagement])
    fit = tuple(_fit_rule(t, path.parent) for t in root.tables("fit"))
    _unique_ids(root, "fit", [r.id for r in fit])
    free_mail = frozenset(_read_list(root, "(free-mail list)", path.parent / FREE_MAIL_FILE))
    return ScoringModel(engagement, fit, _grid(root.table("grade")), free_mail)


def _unique_ids(root: Table, name: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, rule_id in enumerate(ids):
        if rule_id in seen:
            raise root.error(f"{name}[{i}].id", f"repeats the id {rule_id!r}")
        seen.add(rule_id)


def _engagement_rule(t: Table) -> EngagementRule:
    t.only(_ENGAGEMENT_KEYS)
    return EngagementRule(
        id=t.text("id"),
        label=t.text("label"),
        points=t.number("points"),
        half_life_ms=t.number("half_life_days", positive=True) * DAY_MS,
        types=t.texts("types", ()),
        channels=t.texts("channels", ()),
        events=t.texts("events", ()),
        paths=t.texts("paths", ()),
        forms=t.texts("forms", ()),
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
    return FitRule(
        id=t.text("id"),
        label=t.text("label"),
        trait=t.text("trait"),
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
    cells = t.texts("sales_ready")
    valid = {f + e for f in (*_FIT_GRADES, "D") for e in (*_ENGAGEMENT_GRADES, "4")}
    for cell in cells:
        if cell not in valid:
            raise t.error("sales_ready", f"has {cell!r}, which is not a cell such as A1 or B2")
    return Grid(fit_bands, engagement_bands, frozenset(cells), t.number("hysteresis", 0.0))


def _bands(t: Table, names: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    t.only(names)
    bands = tuple((name, t.number(name)) for name in names)
    thresholds = [threshold for _, threshold in bands]
    if thresholds != sorted(thresholds, reverse=True):
        raise t.error(names[0], "thresholds must decrease from the best band to the worst")
    return bands
