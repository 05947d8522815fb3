"""The contact graph (`dataflows/rules/merges.py`) against a plain partition of contact keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dataflows.rules.merges import ContactGraph

KEYS = ["ana", "bo", "cy", "di", "ed"]
MERGES = st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(KEYS)), max_size=12)


def plain_leads(merges: list[tuple[str, str]]) -> dict[str, str]:
    """Each key's lead, by the obvious rule: a merge moves every key of the loser's lead to
    the winner's lead, or, when they share one, to the winner itself."""
    lead = {key: key for key in KEYS}
    for loser, winner in merges:
        lead = plain_leads_from(lead, loser, winner)
    return lead


@given(MERGES)
def test_every_key_resolves_to_the_lead_the_plain_rule_gives(merges):
    graph = ContactGraph()
    for loser, winner in merges:
        graph.merge(loser, winner)
    assert {key: graph.root(key) for key in KEYS} == plain_leads(merges)


@given(MERGES)
def test_a_move_names_exactly_the_keys_that_changed_lead(merges):
    graph = ContactGraph()
    for loser, winner in merges:
        before = {key: graph.root(key) for key in KEYS}
        move = graph.merge(loser, winner)
        after = {key: graph.root(key) for key in KEYS}
        changed = tuple(sorted(key for key in KEYS if before[key] != after[key]))
        if move is None:
            assert changed == ()
            assert before[loser] == before[winner] == winner
        else:
            assert move.members == changed
            assert {before[key] for key in changed} == {move.old_root}
            assert {after[key] for key in changed} == {move.new_root} == {after[winner]}
        assert after[loser] == after[winner]


FORGETS = st.lists(
    st.one_of(
        st.tuples(st.just("merge"), st.sampled_from(KEYS), st.sampled_from(KEYS)),
        st.tuples(st.just("forget"), st.sampled_from(KEYS), st.just("")),
    ),
    max_size=16,
)


@given(FORGETS)
def test_a_forget_erases_the_whole_lead_and_nothing_else(changes):
    graph = ContactGraph()
    lead = {key: key for key in KEYS}
    for change, key, other in changes:
        if change == "merge":
            graph.merge(key, other)
            lead = plain_leads_from(lead, key, other)
            continue
        erased = {k for k in KEYS if lead[k] == lead[key]}
        root, members = graph.forget(key)
        assert root == lead[key]
        assert set(members) == erased
        assert list(members) == sorted(members)
        lead = {k: k if k in erased else lead[k] for k in KEYS}
        assert {k: graph.root(k) for k in KEYS} == lead


def plain_leads_from(lead: dict[str, str], loser: str, winner: str) -> dict[str, str]:
    old = lead[loser]
    new = lead[winner] if lead[winner] != old else winner
    return {key: new if lead[key] == old else lead[key] for key in KEYS}
