"""What an attacker holding the public write key tries, against the real collector and
broker: forged proofs, reserved keys, amplification."""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import pytest

from config.sites import load_sites
from contracts import codec, email_links
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from tests.conftest import fresh_settings, read_topic, start_module, stop_processes

BROWSER = ("wk_demo_browser", "")
ORIGIN = {"origin": "https://www.dbl.example"}


def _link(settings, contact: str) -> str:
    site = load_sites(settings.config_dir / "sites.toml")["wk_demo_browser"]
    return email_links.mint(site, contact, "spring", None, int(time.time()) + 600)


def _stored(settings, message_id: str) -> dict:
    """The envelope the collector stored for a message (the broker acknowledged it)."""
    records = read_topic(settings, settings.events_topic, 10_000, until=message_id.encode())
    (found,) = [e for e in map(codec.loads, (r.value() for r in records)) if e["id"] == message_id]
    return found


@pytest.mark.parametrize(
    ("others", "trust", "email"),
    [
        ({}, "signed", "eve@evil.example"),
        ({"traits": {"email": "EVE@evil.example"}}, "signed", "eve@evil.example"),
        ({"userId": "crm-42"}, "browser", None),
        ({"traits": {"email": "dana@acme.com"}}, "browser", "dana@acme.com"),
    ],
)
def test_a_signed_link_proves_only_the_contact_it_names(collector, others, trust, email):
    settings, client = collector
    message_id = f"link-{trust}-{len(others)}-{email}"
    body = {
        "anonymousId": "eve-cookie",
        "messageId": message_id,
        "context": {"dbl_link": _link(settings, "eve@evil.example")},
        **others,
    }
    answer = client.post("/v1/identify", json=body, auth=BROWSER, headers=ORIGIN)
    assert answer.status_code == 200, answer.text
    stored = _stored(settings, message_id)
    assert (stored["trust"], stored["email"]) == (trust, email)
    assert "dbl_link" not in stored["context"], "the token is a credential, never stored"


@pytest.mark.parametrize("field", ["userId", "email"])
def test_no_contact_may_take_an_anonymous_visitors_key(collector, field):
    _, client = collector
    body = (
        {"userId": "anon:victim-cookie"}
        if field == "userId"
        else {"anonymousId": "c", "traits": {"email": "anon:x@acme.com"}}
    )
    answer = client.post("/v1/identify", json=body, auth=BROWSER, headers=ORIGIN)
    assert answer.status_code == 400
    assert "may not start with 'anon:'" in answer.json()["error"]


def test_a_batch_of_more_events_than_any_sdk_sends_is_refused_whole(collector):
    _, client = collector
    batch = [{"type": "page", "anonymousId": f"c{n}"} for n in range(1001)]
    answer = client.post("/v1/batch", json={"batch": batch}, auth=BROWSER, headers=ORIGIN)
    assert answer.status_code == 413
    assert "at most 1000" in answer.json()["error"]


def test_a_batch_of_junk_writes_no_more_to_the_dlq_than_it_sent(collector):
    """One good event and 999 zeros: a small answer and 21 DLQ records, not 999."""
    settings, client = collector
    marker = "junk-batch-good-event"
    batch = [{"type": "page", "anonymousId": "c-junk", "messageId": marker}, *([0] * 999)]
    answer = client.post("/v1/batch", json={"batch": batch}, auth=BROWSER, headers=ORIGIN)
    assert answer.status_code == 200, answer.text
    assert len(answer.content) < 3000
    body = answer.json()
    assert body["rejected_count"] == 999
    assert [r["index"] for r in body["rejected"]] == list(range(1, 21))
    assert _stored(settings, marker)["anon_id"] == "c-junk"
    letters = [codec.loads(r.value()) for r in read_topic(settings, settings.dlq_topic, 5000, 3)]
    junk = [d for d in letters if d.get("value") == 0 or d.get("first_index") == 21]
    assert len(junk) == 21
    (counted,) = [d for d in junk if d.get("first_index") == 21]
    assert counted["rejected_count"] == 979
    assert counted["reasons"] == {"an event must be a JSON object": 979}


def _raw(port: int, payload: bytes, wait_s: float = 5.0) -> tuple[bytes, float]:
    """Send bytes on a fresh connection; what came back before it closed, and how long."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as conn:
        conn.sendall(payload)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := conn.recv(65536):
                answer += chunk
    return answer, time.monotonic() - started


def test_a_header_block_past_16_kib_gets_431_and_the_connection_closes(collector):
    settings, client = collector
    head = b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"x-junk: " + b"a" * 20_000 + b"\r\n\r\n"
    answer, _ = _raw(settings.collector_port, head)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert client.get("/healthz").status_code == 200


def test_a_request_that_never_finishes_gets_408_and_is_closed(
    broker: EmbeddedBroker, redis_server: EmbeddedRedis, tmp_path: Path
):
    settings = fresh_settings(broker.bootstrap_servers, redis_server.url).with_overrides(
        request_timeout_s=1.0
    )
    process = start_module(settings, "tracking", tmp_path / "collector.log")
    try:
        wait_for_port(settings.collector_port, process, timeout=20)
        slow = b"POST /v1/track HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"
        answer, took = _raw(settings.collector_port, slow)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert took < 3.0
        silent, took = _raw(settings.collector_port, b"")
        assert silent.startswith(b"HTTP/1.1 408 "), "a connection that sends nothing too"
    finally:
        stop_processes([process])
