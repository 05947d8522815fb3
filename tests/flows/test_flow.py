"""The dataflow on the real Bytewax engine, with testing sources and sinks, 1 and 3 workers."""

from __future__ import annotations

from typing import Any

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main
from prometheus_client import REGISTRY

from config.settings import Settings
from contracts import codec
from contracts.envelope import Envelope
from dataflows.flow import build_flow
from dataflows.io.sinks import ProfileWrite
from tests.conftest import T0, envelope, page_view

MINUTE = 60_000


def as_messages(items: list[Envelope | bytes]) -> list[KafkaSourceMessage[bytes, bytes]]:
    """Broker messages as the collector writes them: stamped with the receive time."""
    messages = []
    stamp = T0
    for offset, item in enumerate(items):
        if not isinstance(item, bytes):
            stamp = item["received_at"]
        value = item if isinstance(item, bytes) else codec.dumps(item)
        messages.append(
            KafkaSourceMessage(
                key=b"k",
                value=value,
                topic="events",
                partition=0,
                offset=offset,
                timestamp=(1, stamp),
            )
        )
    return messages


def run_flow(items: list[Envelope | bytes], workers: int) -> dict[str, Any]:
    """Run the real flow over `items`; returns the final profiles, alerts and DLQ records."""
    messages = as_messages(items)
    profiles: list[ProfileWrite] = []
    alerts: list[Any] = []
    dead: list[Any] = []
    flow = build_flow(
        Settings(),
        workers=workers,
        events=TestingSource(messages, batch_size=4),
        profiles=TestingSink(profiles),
        alerts=TestingSink(alerts),
        dead_letters=TestingSink(dead),
    )
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    final: dict[str, dict[str, Any] | None] = {}
    for write in profiles:
        final[write.person] = write.view
    return {
        "profiles": {person: view for person, view in final.items() if view is not None},
        "alerts": [codec.loads(a.value) for a in alerts],
        "dlq": [codec.loads(d.value) for d in dead],
    }


TRAITS = {"title": "VP Sales", "company_size": 800, "industry": "Software", "country": "US"}


def hot_lead_journey() -> list[Envelope]:
    """Anonymous browsing, an identify, an email click, then pricing visits and a demo form."""
    ts = iter(range(T0, T0 + 1000 * MINUTE, MINUTE))
    items = [page_view("/blog", ts=next(ts)), page_view("/pricing", ts=next(ts))]
    items.append(
        envelope(
            type="identify",
            ts=next(ts),
            email="dana@acme.com",
            name="Dana Ruiz",
            props={**TRAITS, "company": "Acme"},
        )
    )
    items.append(
        envelope(
            type="email_click",
            channel="email",
            anon_id=None,
            email="dana@acme.com",
            trust="server",
            ts=next(ts),
        )
    )
    items += [page_view("/pricing", ts=next(ts)) for _ in range(2)]
    items.append(envelope(type="form_submit", ts=next(ts), props={"form_id": "demo-request"}))
    items += [page_view("/pricing", ts=next(ts)) for _ in range(3)]
    return items


@pytest.mark.parametrize("workers", [1, 3])
def test_identify_moves_anonymous_history_and_alerts_once(workers):
    out = run_flow(hot_lead_journey(), workers)
    assert "anon:cookie-1" not in out["profiles"], "the anonymous profile moved into the contact"
    dana = out["profiles"]["dana@acme.com"]
    # 7 page views (1 each); pricing 10 each but capped at 30 a day, the anonymous views
    # included; email click 5; demo form 10 + 30. Minutes apart: decay is negligible.
    assert dana["engagement"] == pytest.approx(7 + 30 + 5 + 40, abs=0.2)
    assert dana["grade"] == "A1"
    assert dana["account"] == "acme.com"
    assert dana["recognized_by"] == "server", "the strongest proof seen: the ESP's click"
    activity = [what for _, what in dana["activity"]]
    assert activity[-2:] == ["Viewed /pricing", "Viewed /blog"], "anonymous history is kept"
    assert sorted(a["kind"] for a in out["alerts"]) == ["key_action", "key_action", "sales_ready"]
    (alert,) = [a for a in out["alerts"] if a["kind"] == "sales_ready"]
    assert alert["contact"] == "dana@acme.com"
    assert alert["grade"] == "A2", "crossed at the second identified pricing view (39)"
    assert alert["reason"].startswith(f"entered {alert['grade']}")
    assert alert["profile"]["name"] == "Dana Ruiz"


@pytest.mark.parametrize("workers", [1, 3])
def test_results_do_not_depend_on_worker_count(workers):
    many: list[Envelope] = []
    for n in range(6):
        for item in hot_lead_journey():
            renamed = dict(item)
            renamed["id"] = f"{n}-{item['id']}"
            if item["anon_id"]:
                renamed["anon_id"] = f"cookie-{n}"
            if item["email"]:
                renamed["email"] = f"p{n}@acme.com"
            many.append(renamed)  # type: ignore[arg-type]
    one = run_flow(many, 1)
    out = run_flow(many, workers)
    assert out["profiles"].keys() == one["profiles"].keys()
    for person, view in one["profiles"].items():
        assert out["profiles"][person]["engagement"] == pytest.approx(view["engagement"])
    assert sorted(a["id"] for a in out["alerts"]) == sorted(a["id"] for a in one["alerts"])
    assert sum(a["kind"] == "sales_ready" for a in out["alerts"]) == 6


def test_a_lead_that_stays_sales_ready_does_not_alert_again():
    items = hot_lead_journey()
    items += [page_view("/pricing", ts=T0 + (100 + n) * MINUTE) for n in range(10)]
    kinds = [a["kind"] for a in run_flow(items, 1)["alerts"]]
    assert kinds.count("sales_ready") == 1


def test_bad_messages_go_to_the_dlq_with_their_reason_and_coordinates():
    good = page_view("/pricing")
    out = run_flow([b"{not json", good, b'{"id": "x", "type": "page"}'], 1)
    assert [d["offset"] for d in out["dlq"]] == [0, 2]
    assert "not JSON" in out["dlq"][0]["reason"]
    assert out["dlq"][0]["value"] == "{not json"
    assert out["dlq"][1]["topic"] == "events"
    assert "anon:cookie-1" in out["profiles"], "the good event between bad ones is scored"


def test_hostile_envelopes_are_dead_lettered_and_the_flow_keeps_going():
    hostile = [
        codec.dumps({**page_view("/x"), "context": {"page": "/pricing"}}),
        codec.dumps({**page_view("/x"), "ts": 10**17}),
        codec.dumps({**page_view("/x"), "props": {"form_id": {"$gt": ""}}, "type": "form_submit"}),
        rb'{"id": "\ud800", "type": "page"}',
        b"\xff\xfe\x00",
    ]
    out = run_flow([*hostile, page_view("/pricing")], 1)
    assert len(out["dlq"]) == 4
    assert all(d["reason"] for d in out["dlq"])
    assert out["profiles"]["anon:cookie-1"]["engagement"] == 11 + 10


def test_a_free_mail_contact_has_no_account():
    items = [envelope(type="identify", email="dana@gmail.com", props=TRAITS)]
    assert run_flow(items, 1)["profiles"]["dana@gmail.com"]["account"] is None


def test_an_idle_lead_cools_when_the_stream_has_moved_past_its_decay():
    dana = [envelope(type="identify", email="dana@acme.com", props=TRAITS)]
    dana += [page_view("/pricing", ts=T0 + n * MINUTE) for n in range(1, 4)]
    later = T0 + 60 * 24 * 60 * MINUTE  # two months on, somebody else browses
    others = [
        page_view("/blog", anon_id=f"other-{n}", ts=later + n, received_at=later + n)
        for n in range(20)
    ]
    out = run_flow(dana + others, 1)
    kinds = [(a["contact"], a["kind"]) for a in out["alerts"]]
    assert ("dana@acme.com", "cooling") in kinds
    cooling = next(a for a in out["alerts"] if a["kind"] == "cooling")
    assert T0 < cooling["ts"] < later, "dated when the decay happened, not when noticed"
    assert out["profiles"]["dana@acme.com"]["sales_ready"] is False


def test_no_cooling_while_the_stream_has_not_reached_it():
    dana = [envelope(type="identify", email="dana@acme.com", props=TRAITS)]
    dana += [page_view("/pricing", ts=T0 + n * MINUTE) for n in range(1, 4)]
    out = run_flow(dana, 1)
    assert "cooling" not in [a["kind"] for a in out["alerts"]]
    assert out["profiles"]["dana@acme.com"]["sales_ready"] is True


def test_a_retried_event_is_scored_once_per_key():
    first = page_view("/pricing", id="retry-1")
    again = page_view("/pricing", id="retry-1", received_at=T0 + 5_000)
    elsewhere = page_view("/pricing", id="retry-1", anon_id="cookie-2")
    out = run_flow([first, again, elsewhere], 1)
    assert out["profiles"]["anon:cookie-1"]["engagement"] == 11
    assert out["profiles"]["anon:cookie-2"]["engagement"] == 11, "ids are per sender"


DAY = 86_400_000


def test_an_anonymous_visitor_idle_past_the_ttl_starts_afresh():
    later = T0 + 100 * DAY
    items = [
        page_view("/pricing", ts=T0, received_at=T0),
        page_view("/blog", ts=later, received_at=later),
    ]
    anon = run_flow(items, 1)["profiles"]["anon:cookie-1"]
    assert anon["engagement"] == 1
    assert [what for _, what in anon["activity"]] == ["Viewed /blog"]


def test_idle_anonymous_visitors_leave_the_dataflows_state_but_claimed_cookies_stay():
    later = T0 + 100 * DAY

    def cookies_held() -> float:
        value = REGISTRY.get_sample_value("dbl_dataflow_state_keys", {"step": "resolve_identity"})
        return value or 0.0

    before = cookies_held()
    run_flow(
        [
            page_view("/blog", anon_id="idle", ts=T0, received_at=T0),
            envelope(type="identify", anon_id="claimed", email="d@acme.com", ts=T0),
            page_view("/blog", anon_id="recent", ts=later, received_at=later),
        ],
        1,
    )
    assert cookies_held() - before == 2, "the idle anonymous cookie was dropped"


def crm_merge(loser: str, winner: str, ts: int) -> Envelope:
    """The CRM folding contact `loser` into `winner` (a server-side alias)."""
    fields = {"channel": "crm", "anon_id": None, "trust": "server", "source": "crm"}
    return envelope(type="alias", email=winner, props={"previous_id": loser}, ts=ts, **fields)


@pytest.mark.parametrize("workers", [1, 3])
def test_a_trusted_merge_folds_one_lead_into_another_once(workers):
    ts = iter(range(T0, T0 + 1000 * MINUTE, MINUTE))
    bo = {"anon_id": "bo-laptop"}
    items = [page_view("/pricing", ts=next(ts), **bo) for _ in range(2)]
    items.append(envelope(type="identify", email="bo@acme.com", props=TRAITS, ts=next(ts), **bo))
    items.append(envelope(type="identify", email="ana@acme.com", props=TRAITS, ts=next(ts)))
    items += [page_view("/demo", ts=next(ts)), crm_merge("bo@acme.com", "ana@acme.com", next(ts))]
    # Bo's laptop and Bo's email address now feed Ana's lead; the repeat merges nothing.
    items += [
        page_view("/pricing", ts=next(ts), **bo),
        crm_merge("bo@acme.com", "ana@acme.com", next(ts)),
    ]
    items.append(
        envelope(
            type="form_submit",
            email="bo@acme.com",
            props={"form_id": "demo-request"},
            ts=next(ts),
            **bo,
        )
    )
    out = run_flow(items, workers)

    assert "bo@acme.com" not in out["profiles"], "the loser leaves the read model"
    ana = out["profiles"]["ana@acme.com"]
    # Page views 1 each (4), pricing 10 each (3), demo form 10 + 30; identifies 0: each
    # counted once, before and after the merge, and the repeated merge moved nothing.
    assert ana["engagement"] == pytest.approx(4 + 30 + 40, abs=0.2)
    assert [what for _, what in ana["activity"]][:2] == ["Submitted form demo-request", "alias"]
    ready = [a for a in out["alerts"] if a["kind"] == "sales_ready"]
    assert [a["contact"] for a in ready] == ["ana@acme.com"]
    assert ready[0]["account"] == "acme.com"


def forget(contact: str, ts: int) -> Envelope:
    """A trusted request to forget `contact` (from the CRM's server key)."""
    fields = {"channel": "crm", "anon_id": None, "trust": "server", "source": "crm"}
    return envelope(type="forget", email=contact, ts=ts, **fields)


@pytest.mark.parametrize("workers", [1, 3])
def test_a_forgotten_contact_leaves_and_its_cookies_start_afresh(workers):
    items = hot_lead_journey()  # Dana, on cookie-1, ends sales-ready
    items += [forget("dana@acme.com", T0), page_view("/blog")]
    items.append(envelope(type="identify", email="dana@acme.com"))
    for minute, item in enumerate(items):
        item["ts"] = item["received_at"] = T0 + minute * MINUTE
    before_claim = run_flow(items[:-1], workers)
    out = run_flow(items, workers)

    # Right after the forget: no Dana, and her cookie is a fresh anonymous visitor.
    assert "dana@acme.com" not in before_claim["profiles"]
    anonymous = before_claim["profiles"]["anon:cookie-1"]
    assert [what for _, what in anonymous["activity"]] == ["Viewed /blog"]
    # When the cookie names her again, only what it did since the forget comes along.
    dana = out["profiles"]["dana@acme.com"]
    assert "anon:cookie-1" not in out["profiles"]
    assert [what for _, what in dana["activity"]] == ["Identified", "Viewed /blog"]
    assert dana["engagement"] == pytest.approx(1, abs=0.1)
    assert dana["recognized_by"] == "browser_identify"
    ready = [a for a in out["alerts"] if a["kind"] == "sales_ready"]
    assert len(ready) == 1, "her alert before the forget, none after"
