"""`dbl export-events`: the events topic between two times as a gzipped JSON Lines file, so
history outlives the topic's retention (backtests and training read it).

Records are selected by their broker timestamp (the collector's receive time) and written
partition by partition in log order: the same window of the same log gives the same file.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

from backtests.history import recorded
from config.settings import Settings
from contracts.errors import DBLError


def export_events(
    settings: Settings, start_ms: int, end_ms: int, path: Path, report: Callable[[int], None]
) -> int:
    """Write every event received in [start_ms, end_ms) to `path`; returns how many.
    `report(read)` is told how many records were read so far."""
    if end_ms <= start_ms:
        raise DBLError("--to must be after --from")
    written = 0
    with gzip.open(path, "wb") as out:
        for _, _, _, value in recorded(settings, (start_ms, end_ms), report):
            out.write(value.rstrip(b"\n") + b"\n")
            written += 1
    return written
