"""A rule that raises for one signal never stops a worker: in every stateful step, the signal
goes to the DLQ with the step and the reason, its key's state is rolled back, and every
other signal is scored as if it never came (1 and 3 workers, on the real engine)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dataflows.flow
import dataflows.steps.identify
import dataflows.steps.record_contact
import dataflows.steps.rollup_account
import dataflows.steps.score
from config.scoring import load_scoring_model
from config.settings import CONFIG_DIR
from contracts.envelope import Envelope
from dataflows.rules.contact_routes import ContactRoutes
from dataflows.rules.leads import LeadUpdate
from dataflows.rules.merges import ForLead
from dataflows.rules.scoring import fit_score
from tests.conftest import T0, envelope, page_view
from tests.flows.test_flow import MINUTE, hot_lead_journey, run_flow

POISON = "poison-signal"


class Poisoned(Exception):
    """What the injected rule raises."""


def _journey_with_poison() -> list[Envelope]:
    """Dana's journey, with one more pricing view (the poison) before her demo form."""
    items = hot_lead_journey()
    poison = page_view("/pricing", id=POISON, ts=items[5]["ts"] + 1)
    return [*items[:6], poison, *items[6:]]


def _raising(rule: Callable[..., Any], is_poison: Callable[..., bool]) -> Callable[..., Any]:
    def rule_that_raises(*args: Any, **kwargs: Any) -> Any:
        if is_poison(*args):
            raise Poisoned("injected")
        return rule(*args, **kwargs)

    return rule_that_raises


def _signal_is_poison(*args: Any) -> bool:
    """A rule's arguments include the poison signal, or an item carrying it."""
    for arg in args:
        signal = arg if isinstance(arg, dict) else getattr(arg, "signal", None)
        if isinstance(signal, dict) and signal.get("id") == POISON:
            return True
    return False


def _update_is_poison(*args: Any) -> bool:
    return any(isinstance(a, LeadUpdate) and a.order[2] == POISON for a in args)


def _placed_is_poison(kv: tuple[str, Any]) -> bool:
    """A contact record's output: (lead, Sequenced(order, (lead, ForLead)))."""
    value = kv[1][1].item[1]
    return isinstance(value, ForLead) and value.signal["id"] == POISON


# Step -> (where its rule lives, the rule's name, when it raises, whether the lead still got
# the signal: steps after scoring leave the lead's profile as it was with it).
INJECTIONS: dict[str, tuple[Any, str, Callable[..., bool], bool]] = {
    "identify": (dataflows.steps.identify, "resolve", _signal_is_poison, False),
    "order_signals": (ContactRoutes, "route", _signal_is_poison, False),
    "record_contact": (dataflows.steps.record_contact, "record", _signal_is_poison, False),
    "order_leads": (dataflows.flow, "_for_lead", _placed_is_poison, False),
    "score": (dataflows.steps.score, "update_lead", _signal_is_poison, False),
    "order_accounts": (dataflows.flow, "account_of_update", _update_is_poison, True),
    "rollup_account": (dataflows.steps.rollup_account, "account_update", _update_is_poison, True),
}


def _lead_alerts(out: dict[str, Any]) -> list[Any]:
    return sorted((a["id"], a["kind"]) for a in out["alerts"] if a["kind"] != "account_surge")


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("step", list(INJECTIONS))
def test_a_rule_that_raises_sends_the_signal_to_the_dlq_and_nothing_else_changes(
    step, workers, monkeypatch
):
    where, name, is_poison, lead_got_it = INJECTIONS[step]
    items = _journey_with_poison()
    expected = run_flow(items if lead_got_it else [i for i in items if i["id"] != POISON], workers)
    monkeypatch.setattr(where, name, _raising(getattr(where, name), is_poison))

    out = run_flow(items, workers)

    (letter,) = out["dlq"]
    assert letter["step"] == step
    assert letter["reason"] == "Poisoned: injected"
    assert letter["id"] == POISON
    assert out["profiles"] == expected["profiles"]
    assert _lead_alerts(out) == _lead_alerts(expected)
    assert out["profiles"]["dana@acme.com"]["grade"] == "A1", "later signals were scored"


@pytest.mark.parametrize("workers", [1, 3])
def test_a_trait_no_rule_can_read_never_stops_the_flow(workers):
    """Superscript digits pass `str.isdigit` but not `float`: once a poison pill."""
    items = [
        envelope(type="identify", email="p1@example.org", props={"company_size": "²"}),
        envelope(
            type="identify",
            email="p2@example.org",
            anon_id="c2",
            ts=T0 + MINUTE,
            props={"company_size": "10²"},
        ),
    ]
    out = run_flow(items, workers)
    assert out["dlq"] == []
    assert out["profiles"]["p1@example.org"]["company_size"] == "²"
    assert out["profiles"]["p2@example.org"]["fit"] >= 0


@pytest.mark.parametrize(
    ("size", "read_as"),
    [
        ("\u00b2", None),  # superscript two
        ("\u2460", None),  # circled one
        ("\u0661\u0660\u0660\u0660", None),  # 1000 in Arabic-Indic digits
        ("10\u00b2", 10),
        ("1e400", 1),
        ("201-500", 201),
        ("", None),
        ("-", None),
    ],
)
def test_fit_reads_only_ascii_digits_as_a_company_size(size, read_as):
    model = load_scoring_model(CONFIG_DIR / "scoring.toml")
    expected = fit_score({} if read_as is None else {"company_size": read_as}, model)
    assert fit_score({"company_size": size}, model) == expected
