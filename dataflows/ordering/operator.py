"""`in_stream_order`: one operator that puts a step's input back into stream order, whatever
path and worker each item came by, and the base class of the steps between two of them.

Items reach the next step from several workers, and Bytewax does not order items that come
from different workers. So each worker holds the items addressed to its keys in a
`ReorderBuffer` until every upstream sender's progress has passed them, and releases them
in stream order, followed by its own progress. Whom it waits for is derived from where the
markers come from (`Ordered.origins`): no step names another's senders.

The steps in between see only their items (`DomainStep`): progress markers travel on worker
keys (`ordering/workers.py`), which hold no items, and pass straight through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, cast

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import FixedPartitionedSource
from bytewax.operators import StatefulBatchLogic

from dataflows.guard import Failure, carried, failure, is_failure
from dataflows.ordering.buffer import END_OF_INPUT, Progress, ReorderBuffer, Sequenced, Watermarks
from dataflows.ordering.clock import EventClock
from dataflows.ordering.workers import worker_keys, worker_of
from dataflows.state import pack, unpack

In = TypeVar("In")
Out = TypeVar("Out")

# What a data item becomes on its way to the reorder step: (its key, its place).
Place = Callable[[tuple[str, Any]], list[tuple[str, Sequenced]]]


@dataclass(frozen=True)
class Ordered:
    """A keyed stream with progress markers behind its data (on worker keys), who sends
    those markers (`origins`), and what its step could not handle (`failures`)."""

    stream: Stream[Any]
    origins: frozenset[str]
    workers: int
    failures: Stream[tuple[str, Failure]] | None = None


class Follower(Protocol):
    """What a reorder step does with each released (key, value) item, keeping its own state
    in the step's snapshot (the signal step applies trusted merges and forgets here)."""

    def follow(self, key: str, value: Any, worker: int) -> list[tuple[str, Any]]:
        """What one released item becomes."""
        ...

    def state(self) -> object:
        """What to snapshot (given back to the follower's builder on resume)."""
        ...


# Builds a follower from its snapshotted state (None: a fresh one).
FollowerBuilder = Callable[[Any], Follower]


def to_every_worker(progress: Progress, workers: int) -> list[tuple[str, Progress]]:
    """A progress marker, once per worker of the next step (after the data it was sent),
    remembering which worker it came by."""
    return [
        (key, replace(progress, to=w, via=progress.to))
        for w, key in enumerate(worker_keys(workers))
    ]


def with_progress(
    step_id: str, flow: Dataflow, source: FixedPartitionedSource[Any, Any], workers: int
) -> Ordered:
    """The input of a dataflow whose source emits `Progress` markers behind its data
    (`io.sources.ProgressSource`); its origins are the source's partitions."""
    return Ordered(op.input(step_id, flow, source), frozenset(source.list_parts()), workers)


def in_stream_order(
    step_id: str,
    up: Stream[tuple[str, Any]],
    after: Ordered,
    place: Place,
    *,
    follow: FollowerBuilder | None = None,
    clock: EventClock | None = None,
) -> Ordered:
    """Put `up`'s items (the output of a step downstream of `after`) into stream order: each
    data item goes where `place` says, in order of its `Sequenced.order`, keyed by its own
    key, and each worker's items are followed by its progress. `clock`, when given, is the
    event clock this step moves: the receive time it has released everything before.
    Shows as one step, `step_id`.

    >>> from bytewax.testing import TestingSource, TestingSink, run_main
    >>> flow = Dataflow("doc")
    >>> events = with_progress("in", flow, TestingSource([("a", 2), ("b", 1)]), workers=1)
    >>> def place(kv):
    ...     return [(kv[0], Sequenced((kv[1], 0, "", kv[0]), kv))]
    >>> ordered = in_stream_order("order", events.stream, events, place)
    >>> out = []
    >>> op.output("out", ordered.stream, TestingSink(out))
    >>> run_main(flow)
    >>> [kv for kv in out if not isinstance(kv[1], Progress)]
    [('b', 1), ('a', 2)]
    """
    workers = after.workers
    senders = frozenset(f"{origin}@{w}" for origin in after.origins for w in range(workers))
    tick = clock.observe if clock is not None else None
    out = _reorder(step_id, up, step_id, senders, place, workers, follow, tick)
    return Ordered(out.stream, frozenset({step_id}), workers, out.failures)


@dataclass(frozen=True)
class _Reordered:
    stream: Stream[tuple[str, Any]]
    failures: Stream[tuple[str, Failure]]


# Inside an operator `step_id` is the full path of the step; `name` is the id it was given.
@operator
def _reorder(
    step_id: str,
    up: Stream[tuple[str, Any]],
    name: str,
    senders: frozenset[str],
    place: Place,
    workers: int,
    follow: FollowerBuilder | None,
    tick: Callable[[int], None] | None,
) -> _Reordered:
    def route(kv: tuple[str, Any]) -> list[tuple[str, Any]]:
        if isinstance(kv[1], Progress):
            return to_every_worker(kv[1], workers)
        keys = worker_keys(workers)
        try:
            placed = place(kv)
        except Exception as error:
            return [(kv[0], failure(name, error, carried(kv[1])))]
        return [(keys[worker_of(key, workers)], item) for key, item in placed]

    def rekey(kv: tuple[str, Any]) -> tuple[str, Any]:
        item = kv[1]
        if isinstance(item, Progress):
            return worker_keys(workers)[item.to], item
        released: tuple[str, Any] = item
        return released

    def build(resume: bytes | None) -> Reorder:
        return Reorder(name, senders, tick, follow, resume)

    routed = op.branch("split_unplaced", op.flat_map("route", up, route), is_failure)
    ordered = op.map("rekey", op.stateful_batch("reorder", routed.falses, build), rekey)
    released = op.branch("split_failed", ordered, is_failure)
    return _Reordered(released.falses, op.merge("failed", routed.trues, released.trues))


class Reorder(StatefulBatchLogic[Sequenced | Progress, Any, bytes]):
    """Per worker key: hold (key, value) items until every upstream sender's progress has
    passed them, then release them in order, followed by this worker's own progress for
    the next step. At the end of input everything left is released."""

    def __init__(
        self,
        name: str,
        senders: frozenset[str],
        tick: Callable[[int], None] | None,
        follow: FollowerBuilder | None,
        resume: bytes | None,
    ) -> None:
        self._name = name
        self._tick = tick
        state = None if resume is None else unpack(resume)
        if state is None:
            self._buffer, self._watermarks = ReorderBuffer(), Watermarks(senders)
            self._worker, self._latest, followed = 0, -1, None
        else:
            self._buffer, self._watermarks, self._worker, self._latest, followed = state
        self._follower = None if follow is None else follow(followed)

    def on_batch(self, values: list[Sequenced | Progress]) -> tuple[Iterable[Any], bool]:
        released: list[Any] = []
        for value in values:
            if isinstance(value, Progress):
                self._watermarks.advance(value)
                self._worker = value.to
            else:
                self._latest = max(self._latest, value.order[0])
                released += self._follow(self._buffer.push(value.order, value.item))
        watermark = self._watermarks.now()
        if watermark > self._buffer.released_to:
            released += self._follow(self._buffer.release(watermark))
            if self._tick is not None:
                self._tick(watermark)
            released.append(Progress(self._name, watermark, self._worker))
        return released, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Any], bool]:
        if self._tick is not None:
            self._tick(self._latest)
        return self._follow(self._buffer.release(END_OF_INPUT)), StatefulBatchLogic.RETAIN

    def _follow(self, released: list[tuple[str, Any]]) -> list[Any]:
        """What released items become; one whose rules raise becomes a `Failure` for the
        DLQ, and the others go on."""
        if self._follower is None:
            return released
        out: list[Any] = []
        for key, value in released:
            try:
                out += self._follower.follow(key, value, self._worker)
            except Exception as error:
                out.append((key, failure(self._name, error, carried(value))))
        return out

    def snapshot(self) -> bytes:
        followed = None if self._follower is None else self._follower.state()
        return pack((self._buffer, self._watermarks, self._worker, self._latest, followed))


class DomainStep(Generic[In, Out]):
    """Base of the per-key logic of a step between two orderings: it sees only its items.
    Progress markers reach only worker keys, which hold no items; they pass straight
    through, behind the data, at no cost to the items' keys.

    It is a Bytewax `StatefulBatchLogic` by registration, not by inheritance: that class
    has no `__slots__`, so each key's logic would carry an instance dictionary and a
    weak-reference slot (an identify key's logic: 112 bytes instead of 72, for each of a
    million visitors). The engine asks `isinstance`, which the registration answers;
    `logic` hands a step's builder to it."""

    __slots__ = ()

    def on_batch(self, values: list[In | Progress]) -> tuple[Iterable[Out | Progress], bool]:
        if isinstance(values[0], Progress):
            return values, StatefulBatchLogic.RETAIN  # type: ignore[return-value]
        return self.on_items(values)  # type: ignore[arg-type]

    def on_items(self, items: list[In]) -> tuple[Iterable[Out], bool]:
        """Apply a batch of this key's items: what they produced, and whether to keep the
        key's state."""
        raise NotImplementedError

    def on_notify(self) -> tuple[Iterable[Out], bool]:
        """The moment `notify_at` gave has passed."""
        return [], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Out], bool]:
        """The input ended (a batch run, a replay)."""
        return [], StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        """When (wall clock) to call `on_notify`; None: never."""
        return None

    def snapshot(self) -> bytes:
        """The key's state for recovery, packed."""
        raise NotImplementedError


StatefulBatchLogic.register(DomainStep)


def logic(
    build: Callable[[bytes | None], DomainStep[In, Out]],
) -> Callable[[bytes | None], StatefulBatchLogic[In | Progress, Out | Progress, bytes]]:
    """A domain step's builder as `op.stateful_batch` takes it (type checkers do not see
    the registration).

    >>> class Echo(DomainStep[int, int]):
    ...     __slots__ = ()
    ...     def on_items(self, items: list[int]) -> tuple[list[int], bool]:
    ...         return items, StatefulBatchLogic.RETAIN
    >>> isinstance(logic(lambda resume: Echo())(None), StatefulBatchLogic)
    True
    >>> hasattr(Echo(), "__dict__")
    False
    """
    return cast(
        Callable[[bytes | None], StatefulBatchLogic[In | Progress, Out | Progress, bytes]], build
    )
