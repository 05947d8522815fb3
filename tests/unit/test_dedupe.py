"""Repeated message ids are let through once per window."""

from hypothesis import given
from hypothesis import strategies as st

from dataflows.rules.dedupe import SeenIds

DAY = 86_400_000


def test_a_repeat_within_the_window_is_dropped_and_after_it_accepted():
    seen = SeenIds()
    assert seen.first_time("m1", 0, DAY)
    assert not seen.first_time("m1", 1000, DAY)
    assert seen.first_time("m2", 1000, DAY)
    assert seen.first_time("m1", DAY + 1, DAY), "a day later it is a new event"


def test_old_ids_are_pruned_so_state_stays_small():
    seen = SeenIds()
    for n in range(1000):
        seen.first_time(f"m{n}", n * 60_000, 3_600_000)
    assert len(seen.seen) <= 60 + 32 + 1


@given(st.lists(st.sampled_from([f"m{n}" for n in range(8)]), max_size=50))
def test_each_id_passes_once_within_a_window(ids):
    seen = SeenIds()
    passed = [i for i in ids if seen.first_time(i, 0, DAY)]
    assert sorted(passed) == sorted(set(ids))
