"""The dataflow's event clock: how far the stream has got, in the collector's receive time.

Timed decisions (a lead cooling off with no new signal) wait for this clock, not the wall
clock, so a replay of old data decides them at the same point of the stream as the live run
did. The clock only moves forward; one per dataflow instance (shared by its workers).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class EventClock:
    """The latest receive time (epoch ms) seen in the stream."""

    def __init__(self) -> None:
        self._now = 0
        self._lock = threading.Lock()

    def observe(self, received_at: int) -> None:
        """Advance to `received_at` if it is later than the clock."""
        if received_at > self._now:
            with self._lock:
                self._now = max(self._now, received_at)

    def now(self) -> int:
        """The clock's time, epoch milliseconds (0 before the first event)."""
        return self._now

    def wall_time_when(self, ts: int) -> datetime:
        """When, on the wall clock, this clock will reach `ts` if it runs at wall speed (as
        it does live; in a replay it runs faster): when Bytewax should wake a key."""
        return datetime.now(tz=UTC) + timedelta(milliseconds=max(0, ts - self.now()))
