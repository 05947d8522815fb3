"""Poison input with the whole pipeline running: hostile events, sent through the collector
or straight onto the events topic, land in the DLQ with their reasons; the good events next
to them are scored; nothing crashes."""

from __future__ import annotations

import httpx
import pytest
import redis
from confluent_kafka import Producer

from config.settings import Settings
from contracts import codec
from tests.conftest import A_BROWSER, page_view, read_topic, wait_until
from tests.faults.live import read_profiles

pytestmark = pytest.mark.integration

SERVER_KEY = ("wk_demo_server", "")
BROWSER_KEY = ("wk_demo_browser", "")


def _nested(levels: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


HOSTILE_ITEMS = [
    ({"type": "page", "anonymousId": {"$ne": 1}}, "anonymousId must be a string"),
    ({"type": "track", "anonymousId": "p-h", "event": "x" * 100_000}, "longer than"),
    ({"type": "track", "anonymousId": "p-d", "event": "e", "properties": _nested(500)}, "deeper"),
    ({"type": "page", "anonymousId": "p-f", "timestamp": "2100-01-01T00:00:00Z"}, "future"),
    ({"type": "page", "anonymousId": "p-t", "timestamp": 17e11}, "ISO-8601"),
]
HOSTILE_MESSAGES = [
    (b"\xff\xfe{not utf-8", "not JSON"),
    (b'{"id": "n", "ts": NaN}', "not JSON"),
    (b"[" * 5_000 + b"]" * 5_000, "not JSON"),
    (codec.dumps({**page_view("/x"), "props": _nested(40)}), "deeper"),
    (codec.dumps({**page_view("/x"), "ts": "yesterday"}), "ts must be epoch milliseconds"),
    (codec.dumps({**page_view("/x"), "received_at": 10**17}), "not a plausible time"),
]


def test_hostile_events_go_to_the_dlq_with_reasons_and_good_ones_are_scored(
    running_system: Settings, redis_client: redis.Redis
):
    settings = running_system
    good = [
        {"type": "page", "anonymousId": f"p-good-{n}", "properties": {"path": "/pricing"}}
        for n in range(2)
    ]
    batch = [good[0], *(item for item, _ in HOSTILE_ITEMS), good[1]]
    base = f"http://127.0.0.1:{settings.collector_port}"
    with httpx.Client(base_url=base, headers=A_BROWSER) as collector:
        answer = collector.post("/v1/batch", json={"batch": batch}, auth=SERVER_KEY)
    assert answer.status_code == 200, answer.text
    rejected = answer.json()["rejected"]
    assert [r["index"] for r in rejected] == list(range(1, len(batch) - 1))
    for (_, reason), refusal in zip(HOSTILE_ITEMS, rejected, strict=True):
        assert reason in refusal["reason"]

    producer = Producer({"bootstrap.servers": settings.brokers})
    for value, _ in HOSTILE_MESSAGES:
        producer.produce(settings.events_topic, value, b"rogue")
    producer.produce(settings.events_topic, codec.dumps(page_view("/pricing", anon_id="p-raw")))
    assert producer.flush(10) == 0

    wait_until(
        lambda: (
            {"anon:p-good-0", "anon:p-good-1", "anon:p-raw"}
            <= read_profiles(redis_client, settings).keys()
        ),
        what="the good events scored",
    )
    dead = [codec.loads(r.value()) for r in read_topic(settings, settings.dlq_topic, 11)]
    reasons = [d["reason"] for d in dead]
    assert len(dead) == len(HOSTILE_ITEMS) + len(HOSTILE_MESSAGES), reasons
    for _, reason in [*HOSTILE_ITEMS, *HOSTILE_MESSAGES]:
        assert any(reason in found for found in reasons), (reason, reasons)


def test_a_trait_no_rule_reads_as_a_number_stops_nothing(
    running_system: Settings, redis_client: redis.Redis
):
    """Superscript digits once stopped the dataflow for good (`str.isdigit` accepts them)."""
    settings = running_system
    base = f"http://127.0.0.1:{settings.collector_port}"
    poison = [
        {"anonymousId": "poison-1", "traits": {"email": "p1@example.org", "company_size": "²"}},
        {"anonymousId": "poison-2", "traits": {"email": "p2@example.org", "company_size": "10²"}},
    ]
    with httpx.Client(base_url=base, headers=A_BROWSER) as collector:
        for body in poison:
            assert collector.post("/v1/identify", json=body, auth=BROWSER_KEY).status_code == 200
        after = {"anonymousId": "after-poison", "properties": {"path": "/pricing"}}
        assert collector.post("/v1/page", json=after, auth=BROWSER_KEY).status_code == 200
    wanted = {"p1@example.org", "p2@example.org", "anon:after-poison"}
    wait_until(
        lambda: wanted <= read_profiles(redis_client, settings).keys(),
        what="the signals after the poison scored",
    )
    profiles = read_profiles(redis_client, settings)
    assert profiles["p1@example.org"]["company_size"] == "²"
