"""Who gets an alert. Pure: no I/O."""

from __future__ import annotations

from typing import Any

from config.routing import Routing


def route(alert: dict[str, Any], routing: Routing) -> str:
    """The rep for an alert: the lead's owner when that is a known rep, else the default rep."""
    owner = alert.get("owner")
    if isinstance(owner, str) and owner in routing.reps:
        return owner
    return routing.default_rep
