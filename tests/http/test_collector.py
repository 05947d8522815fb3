"""The collector over real HTTP (uvicorn) with the real broker: contract, 4xx and 503."""

from __future__ import annotations

import base64
import gzip
import time
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from config.sites import load_sites
from contracts import codec, email_links
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from dbl.topics import ensure_topics
from tests.conftest import fresh_settings, read_all, read_topic, start_module, stop_processes

BROWSER = ("wk_demo_browser", "")
SERVER = ("wk_demo_server", "")


def test_each_segment_call_is_acknowledged_and_lands_keyed_on_the_topic(collector):
    settings, client = collector
    calls = {
        "/v1/page": {"anonymousId": "c-1", "properties": {"path": "/pricing"}},
        "/v1/track": {"anonymousId": "c-1", "event": "Signed Up"},
        "/v1/identify": {"anonymousId": "c-1", "traits": {"email": "Dana@Acme.com"}},
        "/v1/alias": {"userId": "u-1", "previousId": "c-1"},
        "/v1/group": {"userId": "u-1", "groupId": "acct-9", "traits": {"name": "Acme"}},
        "/v1/screen": {"userId": "u-1", "name": "Home"},
    }
    for path, body in calls.items():
        response = client.post(path, json={**body, "messageId": path}, auth=BROWSER)
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
    records = read_topic(settings, settings.events_topic, len(calls))
    by_id = {codec.loads(r.value())["id"]: r for r in records}
    assert set(by_id) == set(calls)
    identify = codec.loads(by_id["/v1/identify"].value())
    assert by_id["/v1/identify"].key() == b"c-1"
    assert (identify["type"], identify["email"], identify["trust"]) == (
        "identify",
        "dana@acme.com",
        "browser",
    )
    assert by_id["/v1/group"].key() == b"u-1"
    assert codec.loads(by_id["/v1/group"].value())["account"] == "acct-9"


def test_write_key_in_the_body_and_gzip_bodies_are_accepted(collector):
    _, client = collector
    body = codec.dumps({"writeKey": "wk_demo_server", "batch": [{"type": "page", "userId": "u"}]})
    response = client.post(
        "/v1/batch", content=gzip.compress(body), headers={"content-encoding": "gzip"}
    )
    assert response.status_code == 200, response.text


def test_a_batch_with_some_bad_events_keeps_the_good_ones_and_dead_letters_the_rest(collector):
    settings, client = collector
    batch = [
        {"type": "page", "anonymousId": "c-2", "messageId": "good"},
        {"type": "page"},
        {"type": "teleport", "userId": "u"},
    ]
    response = client.post("/v1/batch", json={"batch": batch}, auth=BROWSER)
    assert response.status_code == 200
    rejected = response.json()["rejected"]
    assert [r["index"] for r in rejected] == [1, 2]
    assert "type must be one of" in rejected[1]["reason"]
    dead = [codec.loads(r.value()) for r in read_topic(settings, settings.dlq_topic, 2)]
    assert {d["reason"] for d in dead} == {r["reason"] for r in rejected}
    assert {"type": "teleport", "userId": "u"} in [d["value"] for d in dead]


@pytest.mark.parametrize(
    ("path", "content", "reason"),
    [
        ("/v1/track", b"{nope", "not valid JSON"),
        ("/v1/track", b"[1, 2]", "must be a JSON object"),
        ("/v1/track", b'{"anonymousId": "c"}', "event is required"),
        ("/v1/page", b'{"anonymousId": "null"}', "needs an anonymousId"),
        ("/v1/batch", b'{"batch": {}}', "batch must be a JSON array"),
        ("/v1/batch", b'{"batch": []}', "batch is empty"),
        ("/v1/batch", b'{"batch": [{"type": "page"}]}', "no event accepted; event 0"),
    ],
)
def test_malformed_input_gets_400_with_the_reason(collector, path, content, reason):
    _, client = collector
    response = client.post(path, content=content, auth=BROWSER)
    assert response.status_code == 400
    assert reason in response.json()["error"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "a write key is required"),
        ({"authorization": "Basic " + base64.b64encode(b"wk_nope:").decode()}, "unknown"),
        ({"authorization": "Basic %%%"}, "not valid Basic"),
    ],
)
def test_missing_or_unknown_write_keys_get_401(collector, headers, reason):
    _, client = collector
    response = client.post("/v1/page", json={"anonymousId": "c"}, headers=headers)
    assert response.status_code == 401
    assert reason in response.json()["error"]


def test_oversized_bodies_get_413(collector):
    _, client = collector
    big = {"anonymousId": "c", "properties": {"blob": "x" * 40_000}}
    assert client.post("/v1/page", json=big, auth=BROWSER).status_code == 413
    huge_batch = {"batch": [{"type": "page", "anonymousId": "c", "p": "x" * 1000}] * 600}
    response = client.post("/v1/batch", json=huge_batch, auth=BROWSER)
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]
    bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
    response = client.post(
        "/v1/batch", content=bomb, headers={"content-encoding": "gzip"}, auth=BROWSER
    )
    assert response.status_code == 413


def test_one_oversized_event_in_a_batch_gets_413(collector):
    _, client = collector
    batch = [{"type": "page", "anonymousId": "c", "properties": {"blob": "x" * 33_000}}]
    response = client.post("/v1/batch", json={"batch": batch}, auth=BROWSER)
    assert response.status_code == 413


def test_unknown_paths_and_methods(collector):
    _, client = collector
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/track").status_code == 405
    assert client.options("/v1/track").status_code == 403, "no Origin: no CORS"
    allowed = client.options("/v1/track", headers={"origin": "https://www.dbl.example"})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == "https://www.dbl.example"
    refused = client.options("/v1/track", headers={"origin": "https://evil.example"})
    assert refused.status_code == 403


def test_metrics_count_accepted_events_by_channel(collector):
    _, client = collector
    client.post("/v1/page", json={"anonymousId": "c-m"}, auth=BROWSER)
    text = client.get("/metrics").text
    assert 'dbl_collector_events_total{channel="web",outcome="accepted"}' in text
    assert "dbl_collector_produce_seconds_bucket" in text


def test_broker_down_gets_a_fast_503_and_recovers(redis_server: EmbeddedRedis, tmp_path: Path):
    with EmbeddedBroker() as own_broker:
        settings = fresh_settings(own_broker.bootstrap_servers, redis_server.url)
        process = start_module(settings, "tracking", tmp_path / "collector.log")
        try:
            wait_for_port(settings.collector_port, process, timeout=20)
            base = f"http://127.0.0.1:{settings.collector_port}"
            with httpx.Client(base_url=base, timeout=15) as client:
                _check_outage(own_broker, settings, client)
        finally:
            stop_processes([process])


def _check_outage(broker: EmbeddedBroker, settings: Settings, client: httpx.Client) -> None:
    event = {"anonymousId": "c-down"}
    assert client.post("/v1/page", json=event, auth=BROWSER).status_code == 200
    broker.kill()
    statuses = []
    for _ in range(5):
        started = time.monotonic()
        response = client.post("/v1/page", json=event, auth=BROWSER)
        statuses.append((response.status_code, time.monotonic() - started))
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
    # The first request may wait out the producer's timeout; later ones are refused at once.
    assert all(elapsed < settings.produce_timeout_s + 1.5 for _, elapsed in statuses)
    assert statuses[-1][1] < 0.5, statuses
    broker.start()
    ensure_topics(settings)  # memory-only broker: topics went with it
    deadline = time.monotonic() + 15
    status = 0
    while time.monotonic() < deadline and status != 200:
        status = client.post("/v1/page", json=event, auth=BROWSER).status_code
        time.sleep(0.3)
    assert status == 200


CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


def test_a_browser_key_from_a_foreign_origin_is_refused(collector):
    _, client = collector
    body = {"anonymousId": "c-origin"}
    ours = client.post(
        "/v1/page", json=body, auth=BROWSER, headers={"origin": "https://www.dbl.example"}
    )
    assert ours.status_code == 200
    assert ours.headers["access-control-allow-origin"] == "https://www.dbl.example"
    theirs = client.post("/v1/page", json=body, auth=BROWSER, headers={"origin": "https://evil.io"})
    assert theirs.status_code == 403
    assert "origin" in theirs.json()["error"]
    server = client.post("/v1/page", json=body, auth=SERVER, headers={"origin": "https://evil.io"})
    assert server.status_code == 200, "server keys are not bound to browser origins"


def test_bots_are_stored_marked_and_the_address_truncated(collector):
    settings, client = collector
    body = {"anonymousId": "c-bot", "messageId": "bot-1"}
    headers = {"user-agent": "Googlebot/2.1"}
    assert client.post("/v1/page", json=body, auth=BROWSER, headers=headers).status_code == 200
    records = [codec.loads(r.value()) for r in read_all(settings, settings.events_topic)]
    bot = next(r for r in records if r["id"] == "bot-1")
    assert bot["machine"] == "web_bot"
    assert bot["context"]["ip"] == "127.0.0.0"


def test_the_snippet_and_the_openapi_description_are_served(collector):
    _, client = collector
    snippet = client.get("/t.js", headers={"accept-encoding": "gzip"})
    assert snippet.status_code == 200
    assert snippet.headers["content-type"].startswith("text/javascript")
    assert snippet.headers["content-encoding"] == "gzip"
    assert "sendBeacon" in snippet.text
    spec = client.get("/openapi.json").json()
    assert {"/v1/batch", "/v1/esp/sendgrid", "/e/c/{token}"} <= set(spec["paths"])


def test_email_open_pixel_and_click_through_with_signed_tokens(collector):
    settings, client = collector
    site = load_sites(settings.config_dir / "sites.toml")["wk_demo_browser"]
    expires = int(time.time()) + 60
    pixel = email_links.mint(site, "dana@acme.com", "spring", None, expires)
    click = email_links.mint(site, "dana@acme.com", "spring", "https://www.dbl.example/p", expires)
    opened = client.get(f"/e/o/{pixel}.gif", headers={"user-agent": CHROME})
    assert (opened.status_code, opened.headers["content-type"]) == (200, "image/gif")
    clicked = client.get(f"/e/c/{click}", headers={"user-agent": CHROME})
    assert clicked.status_code == 302
    assert clicked.headers["location"] == f"https://www.dbl.example/p?dbl_t={click}"
    records = [codec.loads(r.value()) for r in read_all(settings, settings.events_topic)]
    signals = [r for r in records if r["email"] == "dana@acme.com" and r["channel"] == "email"]
    assert [(s["type"], s["trust"], s["machine"]) for s in signals] == [
        ("email_open", "signed", None),
        ("email_click", "signed", None),
    ]


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "eyJzIjoiZGVtbyIsImMiOiJldmVAZXZpbC5pbyIsIm0iOiJ4IiwidSI6Imh0dHBzOi8vZXZpbC5pbyIsIngiOjk5OTk5OTk5OTl9.AAAA",
        "a" * 5000,
    ],
)
def test_a_bad_email_token_gets_a_safe_answer_and_never_a_redirect(collector, token):
    _, client = collector
    clicked = client.get(f"/e/c/{token}")
    assert clicked.status_code == 404
    assert "location" not in clicked.headers
    assert "no longer valid" in clicked.text
    pixel = client.get(f"/e/o/{token}.gif")
    assert (pixel.status_code, pixel.headers["content-type"]) == (200, "image/gif")


def test_sendgrid_webhook_needs_a_server_key_and_maps_events(collector):
    settings, client = collector
    events = [
        {
            "event": "delivered",
            "email": "lee@globex.io",
            "timestamp": int(time.time()),
            "sg_event_id": "sg-1",
            "campaign": "spring",
        },
        {
            "event": "click",
            "email": "lee@globex.io",
            "timestamp": int(time.time()),
            "sg_event_id": "sg-2",
            "url": "https://x.io",
            "useragent": "Proofpoint URL Defense",
        },
    ]
    assert client.post("/v1/esp/sendgrid", json=events).status_code == 401
    assert client.post("/v1/esp/sendgrid", json=events, auth=BROWSER).status_code == 403
    answer = client.post("/v1/esp/sendgrid", json=events, auth=SERVER)
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "rejected": [], "rejected_count": 0}
    records = [codec.loads(r.value()) for r in read_all(settings, settings.events_topic)]
    mapped = {r["id"]: r for r in records if r["id"].startswith("sg-")}
    assert mapped["sg-1"]["event"] == "Email Delivered"
    assert (mapped["sg-2"]["type"], mapped["sg-2"]["machine"]) == ("email_click", "link_scanner")
    bad = client.post("/v1/esp/sendgrid", json={"event": "open"}, auth=SERVER)
    assert bad.status_code == 400


def test_too_many_requests_or_events_from_one_address_get_429(
    broker: EmbeddedBroker, redis_server: EmbeddedRedis, tmp_path: Path
):
    settings = fresh_settings(broker.bootstrap_servers, redis_server.url).with_overrides(
        rate_limit_per_s=1.0, rate_limit_burst=5.0, event_limit_per_s=1.0, event_limit_burst=150.0
    )
    process = start_module(settings, "tracking", tmp_path / "collector.log")
    try:
        wait_for_port(settings.collector_port, process, timeout=20)
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.collector_port}") as client:
            batch = {"batch": [{"type": "page", "anonymousId": "c"}] * 100}
            events = [client.post("/v1/batch", json=batch, auth=SERVER) for _ in range(2)]
            assert [answer.status_code for answer in events] == [200, 429]
            assert events[1].json()["error"] == "too many events from this address"
            statuses = [client.get("/healthz").status_code for _ in range(8)]
            assert statuses[:3] == [200] * 3
            limited = client.get("/healthz")
            assert limited.status_code == 429
            assert limited.headers["retry-after"] == "1"
    finally:
        stop_processes([process])


def test_a_server_alias_is_a_trusted_merge_and_needs_a_previous_id(collector):
    settings, client = collector
    merge = {"userId": "u-7", "previousId": "Bo@Acme.com", "messageId": "crm-merge-1"}
    response = client.post("/v1/alias", json=merge, auth=SERVER)
    assert response.status_code == 200, response.text
    landed = [codec.loads(r.value()) for r in read_all(settings, settings.events_topic)]
    (stored,) = [e for e in landed if e["id"] == "crm-merge-1"]
    assert (stored["type"], stored["trust"], stored["props"]) == (
        "alias",
        "server",
        {"previous_id": "bo@acme.com"},
    )
    response = client.post("/v1/alias", json={"userId": "u-7"}, auth=SERVER)
    assert response.status_code == 400
    assert "an alias needs a previousId" in response.json()["error"]


def test_only_a_server_key_may_ask_to_forget_a_contact(collector):
    settings, client = collector
    request = {"userId": "u-8", "messageId": "forget-1"}
    refused = client.post("/v1/forget", json=request, auth=BROWSER)
    assert refused.status_code == 400
    assert "only a server write key" in refused.json()["error"]
    assert client.post("/v1/forget", json=request, auth=SERVER).status_code == 200
    landed = [codec.loads(r.value()) for r in read_all(settings, settings.events_topic)]
    (stored,) = [e for e in landed if e["id"] == "forget-1"]
    assert (stored["type"], stored["user_id"], stored["props"]) == ("forget", "u-8", {})
