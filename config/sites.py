"""Sites and their write keys (`config/sites.toml`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from config.toml import Table

Trust = Literal["browser", "server"]


@dataclass(frozen=True, slots=True)
class Site:
    """A source of events: its name, public write key and how far its claims are trusted."""

    name: str
    write_key: str
    trust: Trust


def load_sites(path: Path) -> dict[str, Site]:
    """Read `sites.toml` into a map from write key to site."""
    root = Table.load(path)
    root.only(("sites",))
    by_key: dict[str, Site] = {}
    for name, t in root.table("sites").subtables().items():
        t.only(("write_key", "trust"))
        write_key = t.text("write_key")
        trust = t.text("trust")
        if trust not in ("browser", "server"):
            raise t.error("trust", f"must be 'browser' or 'server', got {trust!r}")
        if write_key in by_key:
            raise t.error("write_key", f"is already the key of site {by_key[write_key].name!r}")
        by_key[write_key] = Site(name, write_key, trust)
    return by_key
