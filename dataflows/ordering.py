"""Putting a step's input back into one order, whatever path and worker it came by. Pure.

A contact's signals reach the score step by several paths (each of its cookies, and its
own email and server signals), and Bytewax does not order items that come from different
workers. So signals wait in a `ReorderBuffer` until the *watermark* — the receive time
before which every upstream sender has passed everything on — passes them, and leave in
(receive time, event time, id) order: the same order on 1 worker, 3 workers or 2 processes, live or
replayed. Senders announce their progress with `Progress` markers that travel behind
their data.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from tracking.envelope import Envelope

# The watermark at the end of the input: everything has been seen.
END_OF_INPUT: Final = 2**62

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


@dataclass(frozen=True, slots=True)
class Progress:
    """`sender` has passed on everything it received before receive time `at` (epoch ms;
    more may follow stamped `at` itself). `to` is the worker this copy is addressed to."""

    sender: str
    at: int
    to: int = 0


@dataclass(frozen=True, slots=True)
class Sequenced:
    """An item with its place in the stream."""

    order: OrderKey
    item: Any


@dataclass(slots=True)
class Watermarks:
    """The latest progress of each expected sender; the watermark is the slowest one's."""

    senders: frozenset[str]
    latest: dict[str, int] = field(default_factory=dict)

    def advance(self, progress: Progress) -> None:
        """Record a sender's progress (markers never move a sender back)."""
        if progress.at > self.latest.get(progress.sender, -1):
            self.latest[progress.sender] = progress.at

    def now(self) -> int:
        """Receive time before which every sender has passed everything; -1 until all have
        reported."""
        if len(self.latest) < len(self.senders):
            return -1
        return min(self.latest[sender] for sender in self.senders)


@dataclass(slots=True)
class ReorderBuffer:
    """Items held until the watermark passes them, released in `OrderKey` order.
    `released_to`: every item stamped before it has been released."""

    heap: list[tuple[OrderKey, int, Any]] = field(default_factory=list)
    released_to: int = -1
    _arrivals: Iterator[int] = field(default_factory=itertools.count)

    def __getstate__(self) -> tuple[list[tuple[OrderKey, int, Any]], int]:
        return self.heap, self.released_to

    def __setstate__(self, state: tuple[list[tuple[OrderKey, int, Any]], int]) -> None:
        self.heap, self.released_to = state
        self._arrivals = itertools.count(max((n for _, n, _ in self.heap), default=-1) + 1)

    def push(self, key: OrderKey, item: Any) -> list[Any]:
        """Hold `item`; one the watermark has already passed (a sender's clock was behind)
        cannot wait for anything and is released at once."""
        if key[0] < self.released_to:
            return [item]
        heapq.heappush(self.heap, (key, next(self._arrivals), item))
        return []

    def release(self, watermark: int) -> list[Any]:
        """Every held item stamped before `watermark`, in order."""
        out = []
        while self.heap and self.heap[0][0][0] < watermark:
            out.append(heapq.heappop(self.heap)[2])
        self.released_to = max(self.released_to, watermark)
        return out

    def __len__(self) -> int:
        return len(self.heap)
