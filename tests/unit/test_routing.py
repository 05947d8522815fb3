"""Routing, quiet hours, throttle keys, webhook bodies, signatures and backoff."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import standardwebhooks

from alerts.routing import in_quiet_hours, push_at, quiet_hours_end
from alerts.webhooks import backoff_s, render, sign, slack_text
from config.routing import load_routing, pick, route
from config.settings import CONFIG_DIR
from contracts import codec

ROUTING = load_routing(CONFIG_DIR / "routing.toml")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_the_owner_wins_when_a_configured_rep():
    assert route({"person": "p", "owner": "mia", "country": "US"}, ROUTING) == "mia"


def test_an_unknown_owner_falls_through_to_territories():
    assert route({"person": "p", "owner": "ghost", "country": "DE"}, ROUTING) == "mia"


def test_territories_in_order_then_the_default_team():
    assert route({"person": "p", "country": "fr", "company_size": 5000}, ROUTING) == "mia"
    assert route({"person": "p", "country": "US", "company_size": 5000}, ROUTING) == "sam"
    assert route({"person": "p", "country": "US", "company_size": 50}, ROUTING) in {"alex", "sam"}


def test_round_robin_is_deterministic_and_even():
    team = ("alex", "sam")
    assert pick(team, "dana@acme.com") == pick(team, "dana@acme.com")
    spread = Counter(pick(team, f"lead{n}@x.com") for n in range(2000))
    assert 900 < spread["alex"] < 1100


def test_quiet_hours_span_midnight_in_the_reps_time_zone():
    quiet = ROUTING.reps["alex"].quiet_hours  # 22:00-07:00 America/New_York
    assert quiet is not None
    assert in_quiet_hours(ms("2026-03-10T23:30:00-04:00"), quiet)
    assert in_quiet_hours(ms("2026-03-11T06:59:00-04:00"), quiet)
    assert not in_quiet_hours(ms("2026-03-11T07:00:00-04:00"), quiet)
    assert not in_quiet_hours(ms("2026-03-10T21:59:00-04:00"), quiet)
    assert quiet_hours_end(ms("2026-03-10T23:30:00-04:00"), quiet) == ms(
        "2026-03-11T07:00:00-04:00"
    )
    assert quiet_hours_end(ms("2026-03-11T02:00:00-04:00"), quiet) == ms(
        "2026-03-11T07:00:00-04:00"
    )


def test_quiet_hours_hold_every_push_until_morning():
    alex, night = ROUTING.reps["alex"], ms("2026-03-10T23:30:00-04:00")
    morning = ms("2026-03-11T07:00:00-04:00")
    assert push_at({"kind": "sales_ready", "ts": night}, alex) == morning
    assert push_at({"kind": "live_visit", "ts": night}, alex) == morning
    day = ms("2026-03-11T10:00:00-04:00")
    assert push_at({"kind": "live_visit", "ts": day}, alex) == day
    sam = ROUTING.reps["sam"]  # no quiet hours
    assert push_at({"kind": "live_visit", "ts": night}, sam) == night


def test_signature_follows_standard_webhooks():
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"x":1}'
    signature = sign(secret, "msg_1", 1_700_000_000, body)
    # The spec: HMAC-SHA256 keyed by the secret's decoded bytes, over "<id>.<timestamp>.<body>".
    expected = hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert signature == "v1," + base64.b64encode(expected).decode()
    # And what a receiver's Standard Webhooks library accepts (or refuses, body changed).
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, "msg_1", now, body),
    }
    assert standardwebhooks.Webhook(secret).verify(body, headers) == {"x": 1}
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(b'{"x":2}', headers)


ALERT = {
    "id": "a1",
    "kind": "sales_ready",
    "ts": 0,
    "contact": "dana@acme.com",
    "account": "acme.com",
    "grade": "A2",
    "fit": 85.0,
    "engagement": 40.0,
    "reason": "entered A2: <b>pricing</b> & more",
    "profile": {"name": "<@channel> Dana", "company": "Acme", "activity": [[0, "Viewed /x"]]},
}


def test_slack_text_escapes_what_visitors_typed():
    text = slack_text(ALERT, "Sam Patel")
    assert "&lt;@channel&gt; Dana" in text
    assert "&lt;b&gt;pricing&lt;/b&gt; &amp; more" in text
    assert "<" not in text.replace("&lt;", "")
    assert "• Viewed /x" in text


def test_json_body_carries_the_whole_alert():
    feedback = {
        "url": f"/v1/alerts/{ALERT['id']}/feedback",
        "actions": ["useful", "not_useful", "already_working", "snooze"],
    }
    body = {
        "type": "alert.created",
        "thread": ALERT["id"],
        "rep": "Sam Patel",
        "alert": ALERT,
        "feedback": feedback,
    }
    assert codec.loads(render(ALERT, "Sam Patel", "json")) == body
    update = codec.loads(render({**ALERT, "thread": "t1"}, "Sam Patel", "json", "updated"))
    assert (update["type"], update["thread"]) == ("alert.updated", "t1")
    slack = codec.loads(render(ALERT, "Sam Patel", "slack"))
    assert set(slack) == {"text", "blocks"}
    section, buttons = slack["blocks"]
    assert section["text"]["text"] == slack["text"]
    assert {b["value"] for b in buttons["elements"]} == {ALERT["id"]}


def test_backoff_is_exponential_capped_and_jittered():
    rng, delivery = random.Random(1), ROUTING.delivery  # 1 s base, 300 s cap
    for attempt in range(1, 15):
        ceiling = min(300, 2 ** (attempt - 1))
        samples = [backoff_s(attempt, delivery, rng) for _ in range(50)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling / 2, "spread over the whole range"


def test_quiet_hours_are_local_time_not_utc():
    mia = ROUTING.reps["mia"].quiet_hours  # 20:00-08:00 Europe/Berlin
    assert mia is not None
    assert in_quiet_hours(int(datetime(2026, 7, 1, 19, 0, tzinfo=UTC).timestamp() * 1000), mia)


def test_slack_says_when_the_person_is_only_claimed():
    claimed = {**ALERT, "identity": {"recognized_by": "form_fill", "verified": False}}
    assert "unverified claim (form fill)" in slack_text(claimed, "Sam Patel")
    verified = {**ALERT, "identity": {"recognized_by": "server", "verified": True}}
    assert "unverified" not in slack_text(verified, "Sam Patel")
    body = codec.loads(render(claimed, "Sam Patel", "json"))
    assert body["alert"]["identity"] == {"recognized_by": "form_fill", "verified": False}
