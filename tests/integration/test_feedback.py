"""Reps' feedback end to end on the running system: a rating from the rep's token and from
a signed Slack click reaches the events log, the lead's timeline and the precision per
kind and rule; a snooze keeps the lead's next alert from the rep at once."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

import httpx
import pytest
import redis

from config.settings import Settings
from contracts import codec
from contracts.read_model import RedisKeys
from tests.conftest import A_BROWSER, DANA, alert, publish, read_topic, wait_until

pytestmark = pytest.mark.integration
BROWSER_KEY = ("wk_demo_browser", "")
SERVER_KEY = ("wk_demo_server", "")
SAM = {"authorization": "Bearer demo-token-sam"}
ADMIN = {"authorization": "Bearer demo-admin-token"}


def stream(client: redis.Redis, key: str) -> list[dict]:
    return [codec.loads(fields[b"alert"]) | {"_fields": fields} for _, fields in client.xrange(key)]


def slack_click(secret: str, alert_id: str, action: str, stamp: int) -> tuple[bytes, dict]:
    payload = {"type": "block_actions", "actions": [{"action_id": action, "value": alert_id}]}
    body = urlencode({"payload": codec.dumps(payload).decode()}).encode()
    base = f"v0:{stamp}:".encode() + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": str(stamp),
        "x-slack-signature": signature,
    }
    return body, headers


def test_ratings_and_a_snooze_from_the_page_api_and_slack(
    running_system: Settings, redis_client: redis.Redis
):
    settings = running_system
    keys = RedisKeys(settings.redis_prefix)
    base = f"http://127.0.0.1:{settings.collector_port}"
    with httpx.Client(base_url=base, timeout=10, headers=A_BROWSER) as collector:
        identify = {"anonymousId": "c-fb", "traits": DANA}
        assert collector.post("/v1/identify", json=identify, auth=SERVER_KEY).status_code == 200
        view = {"anonymousId": "c-fb", "properties": {"path": "/pricing"}}
        assert collector.post("/v1/page", json=view, auth=BROWSER_KEY).status_code == 200
    told = wait_until(
        lambda: [
            a for a in stream(redis_client, keys.rep_alerts("sam")) if a["kind"] == "key_action"
        ],
        what="Sam's key action",
    )
    assert isinstance(told, list)
    action_id = told[0]["id"]
    assert told[0]["rule"] == "pricing"

    reps = httpx.Client(base_url=f"http://127.0.0.1:{settings.rep_api_port}", timeout=10)
    with reps:
        url = f"/v1/alerts/{action_id}/feedback"
        useful = {"action": "useful"}
        assert reps.post(url, json=useful).status_code == 401
        assert reps.post(url, json=useful, headers=ADMIN).status_code == 401, "a rep's own word"
        alex = {"authorization": "Bearer demo-token-alex"}
        assert reps.post(url, json=useful, headers=alex).status_code == 403
        assert reps.post("/v1/alerts/nope/feedback", json=useful, headers=SAM).status_code == 404
        bad = reps.post(url, json={"action": "love it"}, headers=SAM)
        assert bad.status_code == 400
        assert "action must be one of" in bad.json()["error"]
        assert reps.post(url, content=b"{", headers=SAM).status_code == 400
        assert reps.post(url, json=useful, headers=SAM).status_code == 200
        assert reps.post(url, json=useful, headers=SAM).status_code == 200, "same word, once"
        rated = reps.get("/v1/alerts/precision", headers=ADMIN).json()
        assert rated["by_kind"]["key_action"] == {
            **{"useful": 1, "not_useful": 0, "already_working": 0},
            **{"rated": 1, "precision": 1.0},
        }
        assert rated["by_rule"]["pricing"]["precision"] == 1.0
        assert reps.post(url, json={"action": "not_useful"}, headers=SAM).status_code == 200
        rated = reps.get("/v1/alerts/precision", headers=ADMIN).json()
        assert rated["by_kind"]["key_action"]["rated"] == 1, "a new word replaces the old"
        assert rated["by_kind"]["key_action"]["precision"] == 0.0
        assert reps.get("/v1/alerts/precision", headers=SAM).status_code == 401

        # From Slack: a signed button click on the same kind of card; forged or old ones fail.
        secret = "demo-slack-signing-secret"
        now = int(time.time())
        body, headers = slack_click(secret, action_id, "already_working", now)
        answer = reps.post("/v1/slack/actions", content=body, headers=headers)
        assert answer.status_code == 200
        assert "already working" in answer.json()["text"]
        forged, headers = slack_click("not-the-secret", action_id, "useful", now)
        assert reps.post("/v1/slack/actions", content=forged, headers=headers).status_code == 401
        stale, headers = slack_click(secret, action_id, "useful", now - 3600)
        assert reps.post("/v1/slack/actions", content=stale, headers=headers).status_code == 401
        for body in (b"payload=%7B", b"payload=[]", b"\xff\xfe", b"nothing=1"):
            headers = slack_click(secret, action_id, "useful", now)[1]
            base = f"v0:{now}:".encode() + body
            headers["x-slack-signature"] = (
                "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
            )
            answer = reps.post("/v1/slack/actions", content=body, headers=headers)
            assert answer.status_code == 400, body
        rated = reps.get("/v1/alerts/precision", headers=ADMIN).json()
        assert rated["by_kind"]["key_action"]["already_working"] == 1
        assert "dbl_alert_feedback_total" in reps.get("/metrics").text

        # Every word is on the events log, and on the lead's timeline.
        records = read_topic(settings, settings.events_topic, 100, until=b"already_working")
        said = [codec.loads(r.value()) for r in records if b"Alert Feedback" in r.value()]
        assert [s["props"]["action"] for s in said] == [
            "useful",
            "useful",
            "not_useful",
            "already_working",
        ]
        assert {s["props"]["alert_id"] for s in said} == {action_id}
        wait_until(
            lambda: any(
                what == "Sam Patel: already working (key action)"
                for _, what in reps.get("/v1/profiles/dana@acme.com", headers=SAM).json()[
                    "activity"
                ]
            ),
            what="the word on Dana's timeline",
        )

        # A snooze holds Dana's next alert from Sam at once: kept aside, never pushed.
        snooze = reps.post(url, json={"action": "snooze", "scope": "lead"}, headers=SAM)
        assert snooze.status_code == 200
        publish(settings, alert("after-snooze", kind="sales_ready"))
        kept = wait_until(
            lambda: [
                f for _, f in redis_client.xrange(keys.suppressed) if b"after-snooze" in f[b"alert"]
            ],
            what="the snoozed alert kept aside",
        )
        assert isinstance(kept, list)
        assert kept[0][b"state"] == b"snoozed"
        assert "after-snooze" not in [a["id"] for a in stream(redis_client, keys.rep_alerts("sam"))]
