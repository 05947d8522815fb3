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
from dataclasses import dataclass, field
from typing import Any, Final

from dataflows.rules.positions import OrderKey

# The watermark at the end of the input: everything has been seen.
END_OF_INPUT: Final = 2**62


@dataclass(frozen=True, slots=True)
class Progress:
    """`sender` has passed on everything it received before receive time `at` (epoch ms;
    more may follow stamped `at` itself). `to` is the worker this copy is addressed to;
    `via` the worker it came from (a sender's markers reach a step from every worker).

    >>> Progress("events-0", 1_000, to=2, via=1).path
    'events-0@1'
    """

    sender: str
    at: int
    to: int = 0
    via: int = 0

    @property
    def path(self) -> str:
        """The sender and the worker its marker came by: what a watermark waits for."""
        return f"{self.sender}@{self.via}"


@dataclass(frozen=True, slots=True)
class Sequenced:
    """An item with its place in the stream."""

    order: OrderKey
    item: Any


@dataclass(slots=True)
class Watermarks:
    """The latest progress of each expected sender (by `Progress.path`); the watermark is
    the slowest one's."""

    senders: frozenset[str]
    latest: dict[str, int] = field(default_factory=dict)

    def advance(self, progress: Progress) -> None:
        """Record a sender's progress (markers never move a sender back)."""
        if progress.at > self.latest.get(progress.path, -1):
            self.latest[progress.path] = progress.at

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
    # Items pushed so far: ties in `OrderKey` leave in arrival order.
    arrivals: int = 0

    def push(self, key: OrderKey, item: Any) -> list[Any]:
        """Hold `item`; one the watermark has already passed (a sender's clock was behind)
        cannot wait for anything and is released at once."""
        if key[0] < self.released_to:
            return [item]
        heapq.heappush(self.heap, (key, self.arrivals, item))
        self.arrivals += 1
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
