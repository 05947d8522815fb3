"""Sites and their write keys (`config/sites.toml`)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
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
    # Browser origins allowed to send with this key (globs, e.g. "https://*.example.com").
    allowed_origins: tuple[str, ...] = ()
    # Secret of the site's backend: signs user ids (`user_hash`) and email links.
    secret: str | None = None

    def allows_origin(self, origin: str) -> bool:
        """True when a browser on `origin` may use this site's key."""
        return any(fnmatchcase(origin.lower(), pattern.lower()) for pattern in self.allowed_origins)


def load_sites(path: Path) -> dict[str, Site]:
    """Read `sites.toml` into a map from write key to site."""
    root = Table.load(path)
    root.only(("sites",))
    by_key: dict[str, Site] = {}
    for name, t in root.table("sites").subtables().items():
        t.only(("write_key", "trust", "allowed_origins", "secret"))
        write_key = t.secret("write_key")
        trust = t.text("trust")
        if trust not in ("browser", "server"):
            raise t.error("trust", f"must be 'browser' or 'server', got {trust!r}")
        if write_key in by_key:
            raise t.error("write_key", f"is already the key of site {by_key[write_key].name!r}")
        secret = t.secret("secret", None)
        if secret is not None and len(secret) < 16:
            raise t.error("secret", "must be at least 16 characters")
        by_key[write_key] = Site(name, write_key, trust, t.texts("allowed_origins", ()), secret)
    return by_key


def site_named(sites: dict[str, Site], name: str) -> Site | None:
    """The site called `name` in a write-key map (sites are keyed by write key)."""
    return next((site for site in sites.values() if site.name == name), None)
