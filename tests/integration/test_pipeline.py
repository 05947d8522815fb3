"""End to end on the real broker and Redis: collector -> dataflow -> dispatcher -> rep."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from confluent_kafka import Producer

from config.scoring import load_scoring_model
from config.settings import Settings
from contracts import codec
from contracts.read_model import RedisKeys, decode_profile
from tests.conftest import A_BROWSER, DANA, wait_until

pytestmark = pytest.mark.integration
BROWSER = ("wk_demo_browser", "")
SERVER = ("wk_demo_server", "")


def _page(client: httpx.Client, path: str) -> None:
    response = client.post(
        "/v1/page", json={"anonymousId": "cookie-dana", "properties": {"path": path}}, auth=BROWSER
    )
    assert response.status_code == 200, response.text


def _profile(client: redis.Redis, keys: RedisKeys, person: str) -> dict[str, Any] | None:
    fields = client.hgetall(keys.profile(person))
    return decode_profile(fields) if fields else None  # type: ignore[arg-type]


def _stream(client: redis.Redis, keys: RedisKeys, rep: str) -> list[dict[str, Any]]:
    entries = client.xrange(keys.rep_alerts(rep))
    return [codec.loads(fields[b"alert"]) for _, fields in entries]  # type: ignore[union-attr]


def test_anonymous_history_moves_to_the_contact_one_alert_reaches_the_owner_and_a_forget_erases(
    running_system: Settings, redis_client: redis.Redis
):
    settings = running_system
    sam = {"authorization": "Bearer demo-token-sam"}
    with (
        httpx.Client(
            base_url=f"http://127.0.0.1:{settings.collector_port}", headers=A_BROWSER
        ) as collector,
        httpx.Client(base_url=f"http://127.0.0.1:{settings.rep_api_port}", headers=sam) as rep_api,
    ):
        _journey_to_one_alert(settings, redis_client, collector, rep_api)
        _forget_her(settings, redis_client, collector)


def _journey_to_one_alert(
    settings: Settings, redis_client: redis.Redis, collector: httpx.Client, rep_api: httpx.Client
) -> None:
    keys = RedisKeys(settings.redis_prefix)
    for path in ("/blog/lead-scoring", "/pricing", "/pricing"):
        _page(collector, path)
    wait_until(
        lambda: (_profile(redis_client, keys, "anon:cookie-dana") or {}).get("engagement") == 23,
        what="the anonymous profile",
    )
    # The site's backend names the logged-in visitor, owner included (a browser's claim
    # could not set the owner).
    identify = {"anonymousId": "cookie-dana", "traits": DANA}
    assert collector.post("/v1/identify", json=identify, auth=SERVER).status_code == 200
    for path in ("/pricing", "/pricing", "/pricing"):
        _page(collector, path)

    # Wait for the last of the six page views to be scored, not just for the crossing.
    dana = wait_until(
        lambda: (
            (p := _profile(redis_client, keys, "dana@acme.com")) and len(p["activity"]) == 7 and p
        ),
        what="all of Dana's signals in her profile",
    )
    assert isinstance(dana, dict)
    assert dana["sales_ready"]
    assert dana["grade"] == "A2"
    # 6 page views; pricing is capped at 30 a day, its anonymous views included.
    assert dana["engagement"] == 6 + 30, "the anonymous pricing views count for Dana"
    assert "Viewed /blog/lead-scoring" in [what for _, what in dana["activity"]]
    assert dana["owner"] == "sam"
    assert _profile(redis_client, keys, "anon:cookie-dana") is None, "history moved, not copied"

    wait_until(lambda: _sales_ready(_stream(redis_client, keys, "sam")), what="the owner's alert")
    time.sleep(1.0)  # anything doubled would have arrived by now
    everything = _stream(redis_client, keys, "sam")
    alerts = _sales_ready(everything)
    assert [a["contact"] for a in alerts] == ["dana@acme.com"]
    assert alerts[0]["profile"]["name"] == "Dana Ruiz"
    assert [a["kind"] for a in everything if a not in alerts] == ["key_action"], "pricing, once"
    assert _stream(redis_client, keys, "alex") == [], "the default rep gets nothing of Dana"

    answer = rep_api.get("/v1/alerts", params={"rep": "sam", "limit": 5})
    assert answer.status_code == 200
    assert [a["id"] for a in answer.json()["alerts"]] == [a["id"] for a in reversed(everything)]
    profile = rep_api.get("/v1/profiles/dana@acme.com")
    assert profile.status_code == 200
    assert profile.json()["grade"] == "A2"
    assert "dbl_alert_deliveries_total" in rep_api.get("/metrics").text

    _replay(settings, alerts[0])
    time.sleep(1.0)
    assert _stream(redis_client, keys, "sam") == everything, "a replayed alert lands once"


def _forget_her(settings: Settings, redis_client: redis.Redis, collector: httpx.Client) -> None:
    """Dana asks to be forgotten: her profile leaves Redis and the reps' lists, and her
    cookie is a fresh anonymous visitor."""
    keys = RedisKeys(settings.redis_prefix)
    assert redis_client.zscore(keys.rep_recent("sam"), "dana@acme.com") is not None
    forget = {"traits": {"email": "dana@acme.com"}}
    assert collector.post("/v1/forget", json=forget, auth=SERVER).status_code == 200
    wait_until(lambda: _profile(redis_client, keys, "dana@acme.com") is None, what="Dana erased")
    assert redis_client.zscore(keys.hot_leads, "dana@acme.com") is None
    assert redis_client.zscore(keys.rep_recent("sam"), "dana@acme.com") is None
    _page(collector, "/blog/lead-scoring")
    fresh = wait_until(
        lambda: _profile(redis_client, keys, "anon:cookie-dana"), what="her cookie, anonymous"
    )
    assert isinstance(fresh, dict)
    assert [what for _, what in fresh["activity"]] == ["Viewed /blog/lead-scoring"]


def _sales_ready(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["kind"] == "sales_ready"]


def _replay(settings: Settings, alert: dict[str, Any]) -> None:
    """Put the same alert on the topic again, as a dataflow replay after a crash would."""
    producer = Producer({"bootstrap.servers": settings.brokers})
    producer.produce(settings.alerts_topic, codec.dumps(alert), alert["contact"].encode())
    assert producer.flush(10) == 0


@pytest.mark.parametrize(
    ("path", "token", "status", "reason"),
    [
        ("/v1/profiles/nobody@nowhere.io", "demo-token-sam", 404, "no profile"),
        ("/v1/profiles/nobody@nowhere.io", "", 401, "token is required"),
        ("/v1/alerts", "demo-token-sam", 400, "rep is required"),
        ("/v1/alerts?rep=sam", "", 401, "token for this rep"),
        ("/v1/alerts?rep=sam", "demo-token-alex", 401, "token for this rep"),
        ("/v1/alerts?rep=ghost", "demo-admin-token", 404, "no rep 'ghost'"),
        ("/v1/alerts?rep=sam&limit=0", "demo-token-sam", 400, "limit must be"),
        ("/v1/alerts?rep=sam&limit=x", "demo-token-sam", 400, "limit must be"),
        ("/v1/webhooks/dead-letters", "demo-token-sam", 401, "admin token"),
        ("/reps/sam", "demo-token-alex", 401, "token for this rep"),
        ("/v1/reps/sam/events", "", 401, "token for this rep"),
        ("/v1/reps/sam/hot", "wrong-token-xyz", 401, "token for this rep"),
        ("/v1/reps/sam/present", "demo-token-alex", 401, "token for this rep"),
        ("/v1/reps/ghost/present", "demo-admin-token", 404, "no rep 'ghost'"),
        ("/v1/alerts/precision", "demo-token-sam", 401, "admin token"),
        ("/v2/anything", "", 404, "no endpoint"),
    ],
)
def test_rep_api_refuses_bad_requests_clearly(
    running_system: Settings, path, token, status, reason
):
    base = f"http://127.0.0.1:{running_system.rep_api_port}"
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(base + path, headers=headers, timeout=10)
    assert response.status_code == status
    assert reason in response.json()["error"]


def test_a_crm_sync_of_an_owned_contact_never_says_they_are_on_the_site(
    running_system: Settings, redis_client: redis.Redis
):
    settings = running_system
    keys = RedisKeys(settings.redis_prefix)
    now = datetime.now(tz=UTC)
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", headers=A_BROWSER
    ) as collector:
        for hours_ago in (2, 0):
            sync = {
                "userId": "crm-42",
                "traits": {"owner": "sam", "title": "VP Sales", "company_size": 800},
                "timestamp": (now - timedelta(hours=hours_ago)).isoformat(),
                "messageId": f"crm-sync-{hours_ago}",
            }
            assert collector.post("/v1/identify", json=sync, auth=SERVER).status_code == 200
    wait_until(
        lambda: len((_profile(redis_client, keys, "crm-42") or {}).get("activity", [])) == 2,
        what="both syncs",
    )
    time.sleep(1.0)
    assert [a["kind"] for a in _stream(redis_client, keys, "sam")] == []
    assert (_profile(redis_client, keys, "crm-42") or {})["presence"] is None
    assert redis_client.zcard(keys.rep_present("sam")) == 0, "not on Sam's 'on the site now'"


def test_a_late_signal_neither_resets_nor_overfills_a_days_cap(
    running_system: Settings, redis_client: redis.Redis
):
    """10 page views two days ago, a late one dated three days ago, 10 more two days ago
    (an import replaying them): page views give 10 + 1 points, not 21."""
    settings = running_system
    keys = RedisKeys(settings.redis_prefix)
    now = datetime.now(tz=UTC).replace(hour=12)
    two, three = now - timedelta(days=2), now - timedelta(days=3)
    stamps = [two + timedelta(minutes=n) for n in range(10)] + [three]
    stamps += [two + timedelta(minutes=20 + n) for n in range(10)]
    batch = [
        {"type": "page", "userId": "cap-1", "timestamp": t.isoformat(), "name": "/docs"}
        for t in stamps
    ]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", headers=A_BROWSER
    ) as collector:
        assert collector.post("/v1/batch", json={"batch": batch}, auth=SERVER).status_code == 200
    lead = wait_until(
        lambda: (p := _profile(redis_client, keys, "cap-1")) and len(p["activity"]) == 20 and p,
        what="the 21 page views",
    )
    assert isinstance(lead, dict)
    # Its view may have been decayed to a midnight since: undo that to judge the cap.
    page_view = next(
        r for r in load_scoring_model(settings.scoring_path).engagement if r.id == "page_view"
    )
    last = int(stamps[-1].timestamp() * 1000)
    at_last = lead["engagement"] * 2 ** ((lead["as_of"] - last) / page_view.half_life_ms)
    assert 10 < at_last < 11


def test_an_account_surge_reaches_the_accounts_owner_about_the_account(
    running_system: Settings, redis_client: redis.Redis
):
    """Three contacts of one company, named by the CRM (two owned by Mia, one by Sam),
    each look at pricing: one account_surge, to Mia, about the account and its contacts."""
    settings = running_system
    keys = RedisKeys(settings.redis_prefix)
    people = [("ann", "mia"), ("bo", "sam"), ("cy", "mia")]
    batch: list[dict[str, Any]] = []
    for name, owner in people:
        email = f"{name}@surge.example"
        traits = {"email": email, "name": name.title(), "owner": owner, "title": "VP Sales"}
        batch.append({"type": "identify", "userId": email, "traits": traits})
        batch += [
            {"type": "page", "userId": email, "properties": {"path": "/pricing"}},
            {"type": "page", "userId": email, "properties": {"path": "/pricing/enterprise"}},
        ]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", headers=A_BROWSER
    ) as collector:
        assert collector.post("/v1/batch", json={"batch": batch}, auth=SERVER).status_code == 200

    def surges(rep: str) -> list[dict[str, Any]]:
        return [a for a in _stream(redis_client, keys, rep) if a["kind"] == "account_surge"]

    [surge] = wait_until(lambda: surges("mia"), what="the surge on Mia's stream")
    assert surges("sam") == []
    assert surge["contact"] is None
    assert surge["account"] == "surge.example"
    assert (surge["owner"], surge["grade"], surge["fit"]) == ("mia", None, None)
    assert sorted(c["name"] for c in surge["profile"]["contacts"]) == ["Ann", "Bo", "Cy"]
    assert surge["reason"].startswith("surge.example is surging: 3 engaged contacts")


def test_segments_email_spec_fields_and_a_late_cooling_through_the_collector(
    running_system: Settings, redis_client: redis.Redis
):
    """An ESP following Segment's `Email Link Clicked` spec (`link_url`, `campaign_name`)
    is scored by the link; a lead cooled by a late signal gets a cooling marked late."""
    settings = running_system
    keys = RedisKeys(settings.redis_prefix)
    now = datetime.now(tz=UTC)

    def at(minutes_ago: int) -> str:
        return (now - timedelta(minutes=minutes_ago)).isoformat()

    vp = {"email": "lu@late.example", "title": "VP Sales", "company_size": 800, "owner": "sam"}
    vp |= {"industry": "Software", "country": "US"}
    first = [
        {"type": "identify", "userId": "lu", "traits": vp, "timestamp": at(150)},
        {
            "type": "track",
            "userId": "lu",
            "event": "Email Link Clicked",
            "properties": {"link_url": "https://www.dbl.example/pricing", "campaign_name": "Q4"},
            "timestamp": at(149),
        },
        *(
            {"type": "page", "userId": "lu", "properties": {"path": "/pricing"}, "timestamp": at(m)}
            for m in (148, 147, 146)
        ),
    ]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", headers=A_BROWSER
    ) as collector:
        assert collector.post("/v1/batch", json={"batch": first}, auth=SERVER).status_code == 200
        lu = wait_until(
            lambda: (p := _profile(redis_client, keys, "lu")) and p["sales_ready"] and p,
            what="the lead sales-ready",
        )
        assert isinstance(lu, dict)
        assert "Clicked a pricing link in an email" in [label for label, _ in lu["top_signals"]]
        student = {"type": "identify", "userId": "lu", "traits": {"title": "Student"}}
        late = {**student, "timestamp": at(140)}
        assert collector.post("/v1/batch", json={"batch": [late]}, auth=SERVER).status_code == 200

    def coolings() -> list[dict[str, Any]]:
        return [a for a in _stream(redis_client, keys, "sam") if a["kind"] == "cooling"]

    [cooling] = wait_until(coolings, what="the cooling")
    assert cooling["contact"] == "lu"
    assert cooling["late"] is True


def test_an_outcome_through_the_collector_is_recorded_and_is_no_engagement(
    running_system: Settings, redis_client: redis.Redis
):
    settings = running_system
    keys = RedisKeys(settings.redis_prefix)
    now = datetime.now(tz=UTC)
    calls = [
        {"type": "identify", "userId": "won-1", "traits": {"email": "won@deal.example"}},
        {"type": "page", "userId": "won-1", "properties": {"path": "/pricing"}},
        {
            "type": "track",
            "userId": "won-1",
            "event": "Opportunity Won",
            "properties": {"amount": 25000},
            "timestamp": (now - timedelta(minutes=1)).isoformat(),
        },
    ]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", headers=A_BROWSER
    ) as collector:
        assert collector.post("/v1/batch", json={"batch": calls}, auth=SERVER).status_code == 200
        claim = {"userId": "won-1", "event": "Opportunity Lost"}
        assert collector.post("/v1/track", json=claim, auth=BROWSER).status_code == 200
    lead = wait_until(
        lambda: (p := _profile(redis_client, keys, "won-1")) and len(p["activity"]) == 4 and p,
        what="every signal of the lead",
    )
    assert isinstance(lead, dict)
    assert (lead["outcome"], lead["open_opportunity"], lead["outcome_amount"]) == (
        "won",
        False,
        25000.0,
    ), "a browser's claim of a lost deal is no outcome"
    assert lead["engagement"] == 11.0, "the pricing page view only (1 + 10)"
    assert lead["model"] == load_scoring_model(settings.scoring_path).version


def test_a_customer_per_the_crm_brings_no_sales_ready_and_still_shows_as_active(
    running_system: Settings, redis_client: redis.Redis
):
    settings = running_system
    keys = RedisKeys(settings.redis_prefix)
    with httpx.Client(
        base_url=f"http://127.0.0.1:{settings.collector_port}", headers=A_BROWSER
    ) as collector:
        crm = {"anonymousId": "cookie-dana", "traits": {**DANA, "lifecycle_stage": "customer"}}
        assert collector.post("/v1/identify", json=crm, auth=SERVER).status_code == 200
        for path in ("/pricing", "/pricing", "/pricing", "/pricing"):
            _page(collector, path)

    def kept() -> list[dict[str, Any]]:
        entries = redis_client.xrange(keys.suppressed)
        return [codec.loads(f[b"alert"]) for _, f in entries]  # type: ignore[union-attr]

    suppressed = wait_until(kept, what="the sales_ready kept aside")
    assert isinstance(suppressed, list)
    assert [(a["kind"], a["contact"]) for a in suppressed] == [("sales_ready", "dana@acme.com")]
    assert suppressed[0]["profile"]["lifecycle_stage"] == "customer"
    time.sleep(1.0)
    told = sorted(a["kind"] for a in _stream(redis_client, keys, "sam"))
    assert told == ["key_action", "live_visit"], "the owner still sees the activity"
    assert redis_client.zscore(keys.rep_recent("sam"), "dana@acme.com") is not None
