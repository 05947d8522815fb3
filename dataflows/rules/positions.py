"""Where a signal stands in the stream: the total order every step agrees on (receive
time, then event time, then id), live or replayed, on any number of workers. Pure.
"""

from __future__ import annotations

from contracts.envelope import Envelope

# Receive time, event time (both ms), signal id, person: a total order on a step's input.
OrderKey = tuple[int, int, str, str]
# Receive time, event time, signal id: where a signal stands in the stream.
Position = tuple[int, int, str]


def position(signal: Envelope) -> Position:
    """Where a signal stands in the stream."""
    return signal["received_at"], signal["ts"], signal["id"]


def signal_order(signal: Envelope, person: str) -> OrderKey:
    """Where a signal for `person` stands in the stream."""
    return signal["received_at"], signal["ts"], signal["id"], person
