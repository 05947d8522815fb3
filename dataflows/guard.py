"""One item whose rules raise never stops a worker: it leaves the stream as a `Failure`
(for the DLQ, with the step and the reason) and its key's state is rolled back to what it
was before that item, so the key's other signals are scored as if it never came.

Most steps keep each key's state packed (pickled) between batches (`apply_packed`): it is
unpacked once per batch and packed once after, as before, so the guard costs nothing on
the usual path; the score step keeps its leads live and packs one only before a batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from dataflows.io import metrics
from dataflows.ordering.buffer import Sequenced
from dataflows.rules.leads import LeadUpdate
from dataflows.state import pack_or_fresh

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


def is_failure(kv: tuple[str, Any]) -> bool:
    """A keyed step output that is a `Failure` (for the DLQ branch)."""
    return isinstance(kv[1], Failure)


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
    """What a DLQ record says of an item between steps: a signal is itself; a lead update
    names the signal that caused it and the lead; a keyed or sequenced item is what it
    holds; anything else gives the signal it carries (its `signal`), if any."""
    if isinstance(item, dict):
        return item
    if isinstance(item, Sequenced):
        return carried(item.item)
    if isinstance(item, tuple) and len(item) == 2:
        return carried(item[1])  # (key, value)
    if isinstance(item, LeadUpdate):
        return item.about()
    signal = getattr(item, "signal", None)
    return signal if isinstance(signal, dict) else None


def apply_each(
    step: str,
    values: Iterable[Any],
    start: Callable[[], S],
    restore: Callable[[], S],
    apply: Callable[[S, I], tuple[S, list[Any]]],
    described: Callable[[I], Mapping[str, Any] | None] = carried,
) -> tuple[list[Any], bool, Any]:
    """Apply a batch's items to a key's state, in order: what they produced (a `Failure` in
    place of an item that raised), whether any item came, and the state after them.
    `start` gives the state (asked once, at the first item); `restore` gives it again as it
    was before the batch, after a failure: the batch's good items before the failed one are
    then applied again (their output is already out). The rules are deterministic, so the
    state is exactly what it was before the failed item, and the usual path pays nothing.

    >>> def add(total: int, n: int) -> tuple[int, list[int]]:
    ...     return total + 10 // n, [total + 10 // n]
    >>> about = lambda n: {"id": str(n)}
    >>> out, _, total = apply_each("sum", [1, 0, 2], lambda: 0, lambda: 0, add, about)
    >>> out[0], out[1].reason, out[2], total
    (10, 'ZeroDivisionError: integer division or modulo by zero', 15, 15)
    """
    out: list[Any] = []
    applied: list[I] = []
    state: Any = None
    touched = False
    for value in values:
        if not touched:
            state, touched = start(), True
        try:
            state, produced = apply(state, value)
        except Exception as error:
            out.append(failure(step, error, described(value)))
            state = restore()
            for good in applied:
                state, _ = apply(state, good)
            continue
        out += produced
        applied.append(value)
    return out, touched, state


def apply_packed(
    step: str,
    packed: bytes,
    values: Iterable[Any],
    unpack: Callable[[bytes], S],
    apply: Callable[[S, I], tuple[S, list[Any]]],
    described: Callable[[I], Mapping[str, Any] | None] = carried,
    pack: Callable[[S], bytes] = pack_or_fresh,
) -> tuple[list[Any], bytes, Any]:
    """`apply_each` for a key whose state stays packed between batches (by `pack`, the
    inverse of `unpack`): what the items produced, the new packed state, and the state
    (None when no item came).

    >>> from dataflows.state import pack, unpack
    >>> def add(total: int, n: int) -> tuple[int, list[int]]:
    ...     return total + n, [total + n]
    >>> out, packed, total = apply_packed("sum", pack(1), [2, 3], unpack, add)
    >>> out, unpack(packed), total
    ([3, 6], 6, 6)
    """

    def unpacked() -> S:
        return unpack(packed)

    out, touched, state = apply_each(step, values, unpacked, unpacked, apply, described)
    if not touched:
        return out, packed, None
    return out, pack(state), state
