"""Reordering: whatever the arrival order, items leave in stream order once the slowest
sender has passed them, and none is lost."""

from __future__ import annotations

import pickle
import random

from hypothesis import given
from hypothesis import strategies as st

from dataflows.ordering.buffer import END_OF_INPUT, Progress, ReorderBuffer, Watermarks

KEYS = st.lists(
    st.tuples(st.integers(0, 50), st.integers(0, 50), st.text(max_size=3), st.just("p")),
    max_size=40,
)


@given(KEYS, st.randoms(use_true_random=False))
def test_items_leave_in_order_whatever_order_they_arrive_in(keys, rnd: random.Random):
    arrivals = list(keys)
    rnd.shuffle(arrivals)
    buffer = ReorderBuffer()
    out = []
    for key in arrivals:
        out += buffer.push(key, key)
    out += buffer.release(END_OF_INPUT)
    assert out == sorted(keys)


@given(st.lists(st.integers(0, 100), min_size=1, max_size=30), st.integers(0, 100))
def test_only_items_stamped_before_the_watermark_leave(times, watermark):
    buffer = ReorderBuffer()
    for n, t in enumerate(times):
        assert buffer.push((t, 0, str(n), "p"), t) == []
    released = buffer.release(watermark)
    assert released == sorted(t for t in times if t < watermark)
    assert len(buffer) == sum(t >= watermark for t in times)
    # An item stamped before what was released cannot wait for anything: out at once.
    assert buffer.push((watermark - 1, 0, "late", "p"), "late") == ["late"]


@given(
    st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 1), st.integers(0, 100)), max_size=30)
)
def test_the_watermark_is_the_slowest_senders_progress(reports):
    """A sender's markers come by every worker: each (sender, worker) path is waited for."""
    marks = Watermarks(frozenset({"a@0", "a@1", "b@0", "b@1"}))
    for sender, via, at in reports:
        marks.advance(Progress(sender, at, to=0, via=via))
    paths = {(s, v) for s, v, _ in reports}
    latest = {p: max(a for s, v, a in reports if (s, v) == p) for p in paths}
    expected = min(latest.values()) if len(latest) == 4 else -1
    assert marks.now() == expected


def test_a_buffer_survives_a_snapshot():
    buffer = ReorderBuffer()
    buffer.push((5, 0, "a", "p"), "a")
    buffer.push((3, 0, "b", "p"), "b")
    restored = pickle.loads(pickle.dumps(buffer))
    restored.push((4, 0, "c", "p"), "c")
    assert restored.release(END_OF_INPUT) == ["b", "c", "a"]
