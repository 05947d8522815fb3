"""What browser SDKs send, over real HTTP: analytics.js 2.0's short paths and text/plain
bodies, RudderStack's beacon path with the key in the address, and the preflights both
make (origins and key trust still apply)."""

from __future__ import annotations

import pytest

from contracts import codec
from tests.conftest import read_topic

pytestmark = pytest.mark.integration

ORIGIN = "http://localhost:5173"


def _preflight(client, path: str, origin: str, asked: str):  # type: ignore[no-untyped-def]
    return client.options(
        path,
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": asked,
        },
    )


def test_the_preflight_allows_the_sdks_headers_and_nothing_else(collector):
    _, client = collector
    answer = _preflight(client, "/v1/t", ORIGIN, "content-type, x-retry-count")
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-retry-count", "authorization"} <= allowed

    rudder = "anonymousid, authorization, content-type, sentat, rsa-retry-attempt"
    answer = _preflight(client, "/v1/track", ORIGIN, rudder)
    allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {
        "anonymousid",
        "authorization",
        "content-type",
        "sentat",
        "rsa-retry-attempt",
    } <= allowed

    answer = _preflight(client, "/v1/track", ORIGIN, "content-type, x-forwarded-for, cookie")
    allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert not {"x-forwarded-for", "cookie"} & allowed


def test_a_preflight_from_an_origin_no_site_allows_is_refused(collector):
    _, client = collector
    answer = _preflight(client, "/v1/t", "https://evil.example", "content-type")
    assert answer.status_code == 403
    assert "access-control-allow-origin" not in answer.headers


def test_analytics_next_short_paths_with_text_plain_bodies_are_stored(collector):
    settings, client = collector
    calls = {
        "/v1/p": {"type": "page", "properties": {"path": "/pricing"}},
        "/v1/t": {"type": "track", "event": "Signed Up"},
        "/v1/i": {"type": "identify", "traits": {"email": "sam@initech.com"}},
    }
    for path, body in calls.items():
        message = {
            **body,
            "anonymousId": "c-7",
            "messageId": f"m{path}",
            "writeKey": "wk_demo_browser",
        }
        answer = client.post(
            path,
            content=codec.dumps(message),
            headers={"content-type": "text/plain", "origin": ORIGIN, "x-retry-count": "1"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == ORIGIN
    batch = {
        "writeKey": "wk_demo_browser",
        "batch": [{"type": "track", "event": "Batched", "anonymousId": "c-7", "messageId": "mb"}],
    }
    answer = client.post("/v1/b", content=codec.dumps(batch), headers={"origin": ORIGIN})
    assert answer.status_code == 200, answer.text
    records = read_topic(settings, settings.events_topic, 100, until=b'"mb"')
    stored = {codec.loads(r.value())["id"]: codec.loads(r.value())["type"] for r in records}
    expected = {"m/v1/p": "page", "m/v1/t": "track", "m/v1/i": "identify", "mb": "track"}
    assert {k: v for k, v in stored.items() if k in expected} == expected


def test_the_rudderstack_beacon_path_takes_the_key_from_the_address(collector):
    settings, client = collector
    batch = {"batch": [{"type": "page", "anonymousId": "c-8", "messageId": "beacon-1"}]}
    body = codec.dumps(batch)
    answer = client.post(
        "/beacon/v1/batch?writeKey=wk_demo_browser",
        content=body,
        headers={"content-type": "text/plain;charset=UTF-8", "origin": ORIGIN},
    )
    assert answer.status_code == 200, answer.text
    records = read_topic(settings, settings.events_topic, 100, until=b"beacon-1")
    assert "beacon-1" in {codec.loads(r.value())["id"] for r in records}
    refused = client.post(
        "/beacon/v1/batch?writeKey=nope", content=body, headers={"origin": ORIGIN}
    )
    assert refused.status_code == 401
    elsewhere = client.post(
        "/beacon/v1/batch?writeKey=wk_demo_browser",
        content=body,
        headers={"origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403, "a browser key still sends only from its origins"


def test_a_short_path_takes_post_only(collector):
    _, client = collector
    assert client.get("/v1/t").status_code == 405
    assert client.post("/v1/x", content=b"{}").status_code == 404
