"""The dead-letter record: the value of every message on `dbl.events.dlq`, whoever refused
what. Fields are only ever added.

>>> from contracts import codec
>>> codec.loads(dead_letter("the value is not JSON", "decode", "{oops", offset=7))
{'reason': 'the value is not JSON', 'step': 'decode', 'value': '{oops', 'offset': 7}
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from contracts import codec


class DeadLetter(TypedDict):
    """What was refused, where and why."""

    reason: str
    # Where: `collector`, `decode`, or the dataflow step whose rules raised on it.
    step: str
    # What was refused (the item as JSON, or text cut short), or None when it is summarised.
    value: Any
    # The signal's id (dataflow steps).
    id: NotRequired[str | None]
    # Where the message was in the log (`decode`).
    topic: NotRequired[str | None]
    partition: NotRequired[int | None]
    offset: NotRequired[int | None]
    # A bounded sketch of an item too large or too deep to keep as JSON (`collector`).
    value_excerpt: NotRequired[str]
    # One record for the refusals of a batch past the listed ones (`collector`).
    first_index: NotRequired[int]
    rejected_count: NotRequired[int]
    reasons: NotRequired[dict[str, int]]


def dead_letter(reason: str, step: str, value: Any, **where: Any) -> bytes:
    """A dead-letter record as the topic holds it (JSON)."""
    record: dict[str, Any] = {"reason": reason, "step": step, "value": value, **where}
    return codec.dumps(record)
