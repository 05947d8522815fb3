"""Reps and the default route for alerts (`config/routing.toml`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config.toml import Table


@dataclass(frozen=True, slots=True)
class Routing:
    """The known reps (id to display name) and who gets unowned leads."""

    reps: dict[str, str]
    default_rep: str


def load_routing(path: Path) -> Routing:
    """Read and validate `routing.toml`."""
    root = Table.load(path)
    root.only(("default_rep", "reps"))
    reps: dict[str, str] = {}
    for rep_id, t in root.table("reps").subtables().items():
        t.only(("name",))
        reps[rep_id] = t.text("name")
    default_rep = root.text("default_rep")
    if default_rep not in reps:
        raise root.error("default_rep", f"names {default_rep!r}, which is not under [reps]")
    return Routing(reps, default_rep)
