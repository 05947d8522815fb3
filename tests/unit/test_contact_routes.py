"""The merge and forget routing rules of the signal-ordering step (`ContactRoutes`), pure."""

from __future__ import annotations

from config.scoring import load_scoring_model
from config.settings import CONFIG_DIR
from contracts.envelope import Envelope
from dataflows.rules.contact_routes import Anonymous, ContactRoutes
from dataflows.rules.identity import ToContact
from dataflows.rules.merges import Erase, Forget, ForLead, Merge, Rejoin
from dataflows.rules.positions import position
from tests.conftest import T0, envelope, page_view

MODEL = load_scoring_model(CONFIG_DIR / "scoring.toml")
TTL = MODEL.identity.anonymous_ttl_ms


def _signal(at: int, **fields: object) -> Envelope:
    return page_view("/pricing", ts=T0 + at, received_at=T0 + at, **fields)


def test_a_merge_tells_every_moved_key_to_rejoin_and_routes_later_signals_to_the_winner():
    routes = ContactRoutes()
    merge = envelope(type="alias", trust="server", user_id="u-1")
    routed = routes.merge(Merge("bo@acme.com", "u-1", merge))
    assert [(key, type(item)) for key, item in routed] == [("bo@acme.com", Rejoin)]
    later = ToContact("bo@acme.com", _signal(1, email="bo@acme.com"), "server")
    [(_, item)] = routes.route("bo@acme.com", later, MODEL, TTL)
    assert isinstance(item, ForLead)
    assert item.lead == "u-1"
    assert routes.merge(Merge("bo@acme.com", "u-1", merge)) == [], "a repeated merge is a no-op"


def test_a_forget_erases_every_key_of_the_lead():
    routes = ContactRoutes()
    routes.merge(Merge("bo@acme.com", "u-1", envelope(type="alias", trust="server")))
    routed = routes.forget(Forget("u-1", envelope(type="forget", trust="server")))
    assert sorted(key for key, _ in routed) == ["bo@acme.com", "u-1"]
    assert all(isinstance(item, Erase) and item.lead == "u-1" for _, item in routed)


def test_a_cookie_linked_before_a_forget_is_anonymous_until_it_names_the_contact_again():
    routes = ContactRoutes()
    linked = _signal(0, anon_id="c1", email="dana@acme.com")
    routes.forget(Forget("dana@acme.com", _signal(10, type="forget", trust="server")))

    browsing = ToContact(
        "dana@acme.com", _signal(20, anon_id="c1"), "form_fill", linked_at=position(linked)
    )
    [(key, item)] = routes.route("dana@acme.com", browsing, MODEL, TTL)
    assert isinstance(item, Anonymous)
    assert item.history is not None
    assert key == "anon:c1"

    named = _signal(30, anon_id="c1", email="dana@acme.com")
    again = ToContact("dana@acme.com", named, "form_fill", linked_at=position(linked))
    routed = routes.route("dana@acme.com", again, MODEL, TTL)
    assert routed[0] == ("anon:c1", Anonymous("anon:c1", None)), "the anonymous view goes"
    lead = routed[1][1]
    assert isinstance(lead, ForLead)
    assert lead.item.history is not None, "with what it did since"


def test_signals_of_contacts_never_forgotten_go_straight_to_their_lead():
    routes = ContactRoutes()
    item = ToContact("ann@acme.com", _signal(0, anon_id="c9"), "form_fill", linked_at=(1, 1, "x"))
    assert routes.route("ann@acme.com", item, MODEL, TTL) == [
        ("ann@acme.com", ForLead("ann@acme.com", item))
    ]
