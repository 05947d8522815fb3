"""Worker keys land where the engine puts them: markers reach every worker of a step."""

from __future__ import annotations

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, cluster_main

from dataflows.ordering.workers import is_worker_key, worker_keys, worker_of

KEYS = [f"contact-{n}@example.com" for n in range(60)] + ["anon:é", "x" * 40, ""]


class _WhereSink(DynamicSink[tuple[str, int]]):
    """Records which worker wrote each key."""

    def __init__(self, seen: dict[str, int]) -> None:
        self._seen = seen

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WherePart:
        return _WherePart(self._seen, worker_index)


class _WherePart(StatelessSinkPartition[tuple[str, int]]):
    def __init__(self, seen: dict[str, int], worker: int) -> None:
        self._seen = seen
        self._worker = worker

    def write_batch(self, items: list[tuple[str, int]]) -> None:
        for key, _ in items:
            self._seen[key] = self._worker


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_keys_live_on_the_worker_that_worker_of_names(workers: int):
    keys = KEYS + list(worker_keys(workers))
    seen: dict[str, int] = {}
    flow = Dataflow("where")
    stream = op.input("in", flow, TestingSource([(key, 1) for key in keys]))
    # A stateful step runs each key on its own worker; the sink writes where it ran.
    kept = op.stateful_map("hold", stream, lambda state, value: (state, value))
    op.output("out", kept, _WhereSink(seen))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)

    assert {key: worker_of(key, workers) for key in keys} == seen
    assert [seen[key] for key in worker_keys(workers)] == list(range(workers))


def test_worker_keys_are_reserved_and_sort_after_every_id():
    keys = worker_keys(5)
    assert all(is_worker_key(key) for key in keys)
    assert not any(is_worker_key(key) for key in KEYS)
    assert all(key > "\U0010fffe" * 3 for key in keys)
