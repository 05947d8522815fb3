"""One item whose rules raise never stops a worker: it leaves the stream as a `Failure`
(for the DLQ, with the step and the reason) and its key's state is rolled back to what it
was before that item, so the key's other signals are scored as if it never came.

A step keeps each key's state packed (pickled) between batches; `apply_each` unpacks it
once per batch, and only packs a good copy between items when more than one item of the
key came in the same batch (rare), so the guard costs nothing on the usual path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from dataflows import metrics
from dataflows.compact import FRESH, pack
from dataflows.ordering import Progress

log = logging.getLogger("dbl.dataflow")

MAX_REASON_CHARS: Final = 500

S = TypeVar("S")
I = TypeVar("I")  # noqa: E741


@dataclass(frozen=True, slots=True)
class Failure:
    """An item a step's rules could not handle: the step, why, and what it carried (the
    signal's envelope, or what the item says of itself)."""

    step: str
    reason: str
    item: Mapping[str, Any] | None


def failure(step: str, error: Exception, item: Mapping[str, Any] | None) -> Failure:
    """Count, log and describe one failed item.

    >>> failure("score", ValueError("bad size"), None)
    Failure(step='score', reason='ValueError: bad size', item=None)
    """
    reason = f"{type(error).__name__}: {error}"[:MAX_REASON_CHARS]
    metrics.STEP_FAILURES.labels(step).inc()
    log.error(
        "step %s could not handle %s, sent to the DLQ: %s",
        step,
        "an item" if item is None else f"signal {item.get('id')}",
        reason,
        exc_info=error,
    )
    return Failure(step, reason, item)


def carried(item: object) -> Mapping[str, Any] | None:
    """The signal an item between steps carries (its `signal`), if it carries one."""
    signal = getattr(item, "signal", None)
    return signal if isinstance(signal, dict) else None


def apply_each(
    step: str,
    packed: bytes,
    values: Iterable[Any],
    unpack: Callable[[bytes], S],
    apply: Callable[[S, I], tuple[S, list[Any]]],
    described: Callable[[I], Mapping[str, Any] | None] = carried,
    pass_on: Callable[[Progress], Any] = lambda progress: progress,
) -> tuple[list[Any], bytes, Any]:
    """Apply a batch's items to a key's packed state, in order: what they produced (a
    `Failure` in place of an item that raised), the new packed state and the state itself
    (None when no item came). Progress markers pass on as `pass_on` says, in place.

    >>> import pickle
    >>> def add(total: int, n: int) -> tuple[int, list[int]]:
    ...     return total + 10 // n, [total + 10 // n]
    >>> about = lambda n: {"id": str(n)}
    >>> out, packed, total = apply_each("sum", pack(0), [1, 0, 2], pickle.loads, add, about)
    >>> out[0], out[1].reason, out[2], pickle.loads(packed), total
    (10, 'ZeroDivisionError: integer division or modulo by zero', 15, 15, 15)
    """
    items = list(values)
    data_left = sum(1 for value in items if not isinstance(value, Progress))
    out: list[Any] = []
    good = packed
    state: Any = None
    unpacked = False
    for value in items:
        if isinstance(value, Progress):
            out.append(pass_on(value))
            continue
        data_left -= 1
        if not unpacked:
            state, unpacked = unpack(good), True
        try:
            state, produced = apply(state, value)
        except Exception as error:
            out.append(failure(step, error, described(value)))
            state = unpack(good)
            continue
        out += produced
        if data_left:
            good = _packed(state)
    if not unpacked:
        return out, packed, None
    return out, _packed(state), state


def _packed(state: object) -> bytes:
    """A key with no state left (None) packs as `FRESH`."""
    return FRESH if state is None else pack(state)
