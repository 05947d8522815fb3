"""Candidate rules a model may learn, from what the recorded history holds: engagement
rules for the page-path families, event names, event families (names sharing their first
word, e.g. every `Sales …` event), channels, signal types and content types seen (each at
several half-lives, counting signals, the days they came on, or the latest alone), and fit
rules for the trait values, title words and size bands seen. Pure: envelopes in, rules
out.

>>> seen = Seen()
>>> for n in range(30):
...     seen.add({"type": "page", "trust": "browser", "props": {},
...               "context": {"page": {"path": f"/pricing/{n}"}}})
...     seen.add({"type": "identify", "trust": "server", "context": {},
...               "props": {"title": "VP Sales", "company_size": n * 10}})
>>> [r.id for r in seen.engagement_rules(min_support=20)][:4]
['page_pricing_7d', 'page_pricing_days_7d', 'page_pricing_latest_7d', 'page_pricing_30d']
>>> sorted(r.id for r in seen.fit_rules(min_support=20))[:3]
['size_at_least_120', 'size_at_least_180', 'size_at_least_240']
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from contracts.envelope import Envelope
from contracts.feedback import is_feedback
from dataflows.rules.outcomes import outcome_of

HALF_LIVES_DAYS: Final = (7.0, 30.0, 90.0)
# What an engagement candidate counts: its signals, the days it was seen on (a daily cap of
# its points: coming back on five days is not clicking five times in a minute), or only
# its latest signal (how recently, whatever how often: a `latest` rule).
Counts = Literal["signals", "days", "latest"]
COUNTS: Final[tuple[Counts, ...]] = ("signals", "days", "latest")
_COUNTED: Final = {"signals": "", "days": ", days seen", "latest": ", last seen"}
# Traits with few values, each value a candidate; numbers get bands instead.
CATEGORIES: Final = ("industry", "country", "seniority", "department", "lead_source")
NUMBERS: Final = ("company_size", "annual_revenue")
MAX_PER_KIND: Final = 40
IDENTITY_CALLS: Final = frozenset({"identify", "alias", "group", "forget"})
_WORD: Final = re.compile(r"[a-z]{2,}")
_SLUG: Final = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate rule: its id, a label a rep can read, and its TOML body (conditions or
    the trait it reads); engagement candidates have a half-life and say what they count
    (`COUNTS`)."""

    id: str
    label: str
    body: tuple[tuple[str, Any], ...]
    half_life_days: float | None = None
    counts: Counts = "signals"


def slug(text: str) -> str:
    """A rule-id-safe form of a value.

    >>> slug("/Pricing Page") , slug("Webinar Attended")
    ('pricing_page', 'webinar_attended')
    """
    return _SLUG.sub("_", text.lower()).strip("_")[:40] or "root"


@dataclass
class Seen:
    """Counts of what the history holds, as candidates need them."""

    paths: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    # Signals by channel, and the signal types each channel carried (identities aside).
    channels: Counter[str] = field(default_factory=Counter)
    channel_types: dict[str, set[str]] = field(default_factory=dict)
    content_types: Counter[str] = field(default_factory=Counter)
    values: Counter[tuple[str, str]] = field(default_factory=Counter)
    title_words: Counter[str] = field(default_factory=Counter)
    numbers: dict[str, list[float]] = field(default_factory=dict)

    def add(self, signal: Envelope) -> None:
        """Count one signal (outcomes are labels and reps' feedback knows them: never
        candidates)."""
        if outcome_of(signal) is not None or is_feedback(signal):
            return
        kind, props = signal["type"], signal["props"]
        if kind in ("identify", "form_submit"):
            self._traits(props)
        if kind == "page":
            path = (signal["context"].get("page") or {}).get("path") or ""
            family = "/" + path.strip("/").split("/")[0] if isinstance(path, str) else "/"
            self.paths[family.lower()] += 1
        elif kind == "track" and isinstance(signal.get("event"), str):
            self.events[str(signal["event"])] += 1
        elif kind not in IDENTITY_CALLS:
            self.types[kind] += 1
        channel = signal.get("channel")
        if kind not in IDENTITY_CALLS and isinstance(channel, str):
            self.channels[channel] += 1
            self.channel_types.setdefault(channel, set()).add(kind)
        content = props.get("content_type")
        if isinstance(content, str) and content:
            self.content_types[content.lower()] += 1

    def _traits(self, props: dict[str, Any]) -> None:
        for trait in CATEGORIES:
            value = props.get(trait)
            if isinstance(value, str) and value.strip():
                self.values[(trait, value.strip().lower())] += 1
        title = props.get("title")
        if isinstance(title, str):
            for word in set(_WORD.findall(title.lower())):
                self.title_words[word] += 1
        for trait in NUMBERS:
            value = props.get(trait)
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                self.numbers.setdefault(trait, []).append(float(value))

    def engagement_rules(self, min_support: int) -> list[Candidate]:
        """Engagement candidates seen at least `min_support` times, each at every half-life."""
        families: list[tuple[str, str, tuple[tuple[str, Any], ...]]] = []
        for path, _ in _common(self.paths, min_support):
            body: tuple[tuple[str, Any], ...] = (
                ("types", ["page"]),
                ("paths", [path, path + "/*"]),
            )
            families.append((f"page_{slug(path)}", f"Viewed {path}", body))
        for event, _ in _common(self.events, min_support):
            families.append((f"event_{slug(event)}", event, (("events", [event]),)))
        for word, events in self._event_families(min_support):
            body = (("events", events),)
            families.append((f"events_{slug(word)}", f"Any {word} event", body))
        for channel, _ in _common(self.channels, min_support):
            body = (("channels", [channel]), ("types", sorted(self.channel_types[channel])))
            families.append((f"channel_{slug(channel)}", f"Any {channel} signal", body))
        for kind, _ in _common(self.types, min_support):
            label = kind.replace("_", " ").capitalize()
            families.append((f"type_{slug(kind)}", label, (("types", [kind]),)))
        for content, _ in _common(self.content_types, min_support):
            body = (("content_types", [content]),)
            families.append((f"content_{slug(content)}", f"Read {content}", body))
        return [
            Candidate(
                f"{rule_id}{'' if counts == 'signals' else '_' + counts}_{days:g}d",
                f"{label}{_COUNTED[counts]} ({days:g}-day)",
                body,
                days,
                counts,
            )
            for rule_id, label, body in families
            for days in HALF_LIVES_DAYS
            for counts in COUNTS
        ]

    def _event_families(self, min_support: int) -> list[tuple[str, list[str]]]:
        """Event names grouped by their first word, where two or more share it."""
        by_word: dict[str, list[str]] = {}
        for event in self.events:
            word = event.split()[0].rstrip(":").lower() if event.strip() else ""
            if word:
                by_word.setdefault(word, []).append(event)
        return [
            (word, sorted(events))
            for word, events in sorted(by_word.items())
            if len(events) > 1 and sum(self.events[e] for e in events) >= min_support
        ][:MAX_PER_KIND]

    def fit_rules(self, min_support: int) -> list[Candidate]:
        """Fit candidates: trait values and title words seen at least `min_support` times,
        and size bands (at least the 20th, 40th, 60th and 80th percentile seen)."""
        rules = []
        for (trait, value), _ in _common(self.values, min_support):
            body: tuple[tuple[str, Any], ...] = (("trait", trait), ("in", [value]))
            rules.append(Candidate(f"{trait}_{slug(value)}", f"{trait}: {value}", body))
        for word, _ in _common(self.title_words, min_support):
            body = (("trait", "title"), ("matches", [f"*{word}*"]))
            rules.append(Candidate(f"title_{word}", f"title has {word!r}", body))
        for trait, values in sorted(self.numbers.items()):
            if len(values) < min_support:
                continue
            ordered = sorted(values)
            cuts = sorted({_round(ordered[len(ordered) * q // 5]) for q in (1, 2, 3, 4)})
            short = "size" if trait == "company_size" else "revenue"
            for cut in cuts:
                if cut > 0:
                    body = (("trait", trait), ("at_least", cut))
                    rules.append(Candidate(f"{short}_at_least_{cut:g}", f"{trait} ≥ {cut:g}", body))
        return rules


def _common(counts: Counter[Any], min_support: int) -> list[tuple[Any, int]]:
    """The most frequent keys seen at least `min_support` times (ties by key)."""
    kept = [(key, n) for key, n in counts.items() if n >= min_support]
    return sorted(kept, key=lambda kv: (-kv[1], str(kv[0])))[:MAX_PER_KIND]


def _round(value: float) -> float:
    """Two significant digits: bands a person can read (e.g. 180, not 183.5)."""
    if value <= 0:
        return 0.0
    digits = len(str(int(value))) - 2
    step = 10 ** max(0, digits)
    return float(round(value / step) * step)


def seen_in(signals: Iterable[Envelope]) -> Seen:
    """Count every signal."""
    seen = Seen()
    for signal in signals:
        seen.add(signal)
    return seen
