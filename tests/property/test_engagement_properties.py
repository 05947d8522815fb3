"""Properties of decayed engagement: order-free, mergeable, never growing with time."""

import math

from hypothesis import given
from hypothesis import strategies as st

from config.scoring import DAY_MS
from dataflows.rules.scoring import Engagement

HALF_LIVES = {"a": 1 * DAY_MS, "b": 7 * DAY_MS, "c": 30 * DAY_MS}
signals = st.lists(
    st.tuples(
        st.sampled_from(sorted(HALF_LIVES)),
        st.floats(min_value=0.5, max_value=50),
        st.integers(min_value=0, max_value=60 * DAY_MS),
    ),
    max_size=40,
)


def _sum(items) -> Engagement:
    eng = Engagement()
    for rule, points, ts in items:
        eng.add(rule, points, ts, HALF_LIVES)
    return eng


def _close(a: float, b: float) -> bool:
    # Contributions under NEGLIGIBLE_POINTS may be dropped on one path and not the other.
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.05)


@given(signals, st.randoms())
def test_arrival_order_does_not_matter(items, rnd):
    shuffled = list(items)
    rnd.shuffle(shuffled)
    at = 61 * DAY_MS
    assert _close(_sum(items).total(at, HALF_LIVES), _sum(shuffled).total(at, HALF_LIVES))


@given(signals, st.integers(min_value=0, max_value=40))
def test_splitting_then_merging_changes_nothing(items, cut):
    whole = _sum(items)
    left, right = _sum(items[:cut]), _sum(items[cut:])
    left.merge(right, HALF_LIVES)
    at = 61 * DAY_MS
    assert _close(left.total(at, HALF_LIVES), whole.total(at, HALF_LIVES))


@given(signals, st.integers(min_value=0, max_value=90 * DAY_MS))
def test_decay_never_increases_a_score(items, later):
    eng = _sum(items)
    start = max([ts for _, _, ts in items], default=0)
    assert eng.total(start + later, HALF_LIVES) <= eng.total(start, HALF_LIVES) + 1e-9


@given(signals)
def test_closed_form_agrees(items):
    at = 61 * DAY_MS
    expected = sum(p * 0.5 ** ((at - ts) / HALF_LIVES[r]) for r, p, ts in items)
    assert _close(_sum(items).total(at, HALF_LIVES), expected)


LATEST = {"b"}
latest_signals = st.lists(
    st.tuples(st.just("b"), st.just(10.0), st.integers(min_value=0, max_value=60 * DAY_MS)),
    min_size=1,
    max_size=40,
)


def _latest(items) -> Engagement:
    eng = Engagement()
    for rule, points, ts in items:
        eng.add(rule, points, ts, HALF_LIVES, LATEST)
    return eng


@given(latest_signals, st.randoms(), st.integers(min_value=0, max_value=40))
def test_a_latest_rule_is_worth_its_latest_signal_in_any_order_and_split(items, rnd, cut):
    at = 61 * DAY_MS
    newest = max(ts for _, _, ts in items)
    expected = 10.0 * 0.5 ** ((at - newest) / HALF_LIVES["b"])
    shuffled = list(items)
    rnd.shuffle(shuffled)
    left, right = _latest(shuffled[:cut]), _latest(shuffled[cut:])
    left.merge(right, HALF_LIVES, LATEST)
    for eng in (_latest(items), _latest(shuffled), left):
        assert _close(eng.total(at, HALF_LIVES), expected)
