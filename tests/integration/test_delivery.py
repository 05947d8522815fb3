"""Delivery to reps: signed webhooks to a real local receiver, retries, dead letters,
crashes between delivery and acknowledgement, throttles and quiet hours."""

from __future__ import annotations

import base64
import dataclasses
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import standardwebhooks
from prometheus_client import REGISTRY

from alerts.dispatcher import Dispatcher
from alerts.outbox import WebhookSender
from config.routing import load_routing
from config.settings import CONFIG_DIR, Settings
from contracts import codec
from contracts.read_model import RedisKeys, encode_profile
from dbl.embedded import wait_for_port
from tests.conftest import alert, publish, start_module, stop_processes, wait_until

pytestmark = pytest.mark.integration
SECRET = "whsec_" + base64.b64encode(b"receiver-secret-of-32-bytes-long").decode()
DAILY = 'daily_digest = { at = "08:00", timezone = "America/Chicago" }\n'


@dataclass
class Receiver:
    """A real HTTP server on loopback that records calls and answers from a script."""

    port: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)
    # Per path: answers to give in order (an int status, or "hang"); then 200.
    script: dict[str, list[int | str]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["path"] == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.calls.append({"path": self.path, "headers": headers, "body": body})
            answers = state.script.get(self.path) or [200]
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            if answer == "hang":
                time.sleep(1.5)
                answer = 200
            self.send_response(int(answer))
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def delivery_settings(settings: Settings, receiver: Receiver, tmp_path: Path) -> Settings:
    """Sam has a Slack and a JSON webhook on the receiver; retries are fast."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    routing = (config / "routing.toml").read_text()
    routing = routing.replace("timeout_seconds = 5", "timeout_seconds = 0.5")
    routing = routing.replace("max_attempts = 6", "max_attempts = 3")
    routing = routing.replace("backoff_seconds = 1", "backoff_seconds = 0.05")
    routing = routing.replace("backoff_max_seconds = 300", "backoff_max_seconds = 0.2")
    # Sam's daily digest would reach the receiver whenever a test runs after 08:00 in
    # Chicago: only the test of daily digests gives him one.
    assert DAILY in routing
    routing = routing.replace(DAILY, "")
    for path, fmt in (("/slack", "slack"), ("/json", "json")):
        routing += webhook_of(receiver, path, fmt)
    (config / "routing.toml").write_text(routing)
    return settings.with_overrides(config_dir=config)


def webhook_of(receiver: Receiver, path: str, fmt: str) -> str:
    """Sam's webhook to `path` on the receiver, as routing.toml says it."""
    return (
        f'\n[[reps.sam.webhooks]]\nurl = "{receiver.url(path)}"\n'
        f'format = "{fmt}"\nsecret = "{SECRET}"\n'
    )


class RepService:
    """The rep service process (dispatcher + webhook sender), restartable."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, failpoint: str | None = None) -> subprocess.Popen[bytes]:
        settings = self.settings.with_overrides(failpoint=failpoint)
        log = self.log_dir / f"alerts-{len(self.processes)}.log"
        process = start_module(settings, "alerts", log)
        self.processes.append(process)
        wait_for_port(settings.rep_api_port, process, timeout=20)
        return process


@pytest.fixture
def rep_service(delivery_settings: Settings, tmp_path: Path) -> Iterator[RepService]:
    service = RepService(delivery_settings, tmp_path)
    yield service
    stop_processes(service.processes)


def verify(call: dict[str, Any]) -> None:
    """Check a call the way a receiver does: with a Standard Webhooks library."""
    headers = {k.lower(): v for k, v in call["headers"].items()}
    standardwebhooks.Webhook(SECRET).verify(call["body"], headers)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 30


def test_webhooks_are_signed_formatted_and_only_configured_urls_called(
    rep_service: RepService, receiver: Receiver
):
    rep_service.start()
    publish(rep_service.settings, alert("alert-1"))
    wait_until(lambda: len(receiver.calls) >= 2, what="both webhooks")
    time.sleep(0.5)
    assert sorted(c["path"] for c in receiver.calls) == ["/json", "/slack"]
    for call in receiver.calls:
        verify(call)
        assert call["headers"]["webhook-id"] == "alert-1"
    slack = codec.loads(receiver.on("/slack")[0]["body"])
    assert "Dana &lt;Ruiz&gt;" in slack["text"]
    assert codec.loads(receiver.on("/json")[0]["body"])["alert"]["id"] == "alert-1"


def test_failed_calls_are_retried_with_backoff_until_they_succeed(
    rep_service: RepService, receiver: Receiver
):
    receiver.script["/slack"] = [500, "hang", 503, 200]  # 3 attempts: 500, timeout, 503...
    receiver.script["/json"] = [502, 200]
    rep_service.settings = rep_service.settings  # same config: 3 attempts
    rep_service.start()
    publish(rep_service.settings, alert("alert-2"))
    wait_until(lambda: len(receiver.on("/json")) == 2, what="the JSON retry")
    wait_until(lambda: len(receiver.on("/slack")) == 3, what="three Slack attempts")
    time.sleep(0.5)
    assert len(receiver.on("/json")) == 2, "no call after the success"


def test_the_last_failure_goes_to_the_dead_letter_list(rep_service: RepService, receiver: Receiver):
    receiver.script["/json"] = [500]
    rep_service.start()
    publish(rep_service.settings, alert("alert-3"))
    base = f"http://127.0.0.1:{rep_service.settings.rep_api_port}"
    admin = {"authorization": "Bearer demo-admin-token"}

    def dead() -> list[dict[str, Any]]:
        answer = httpx.get(f"{base}/v1/webhooks/dead-letters", headers=admin, timeout=5)
        return answer.json()["dead_letters"]  # type: ignore[no-any-return]

    letters = wait_until(dead, what="a dead letter")
    assert isinstance(letters, list)
    assert [(d["alert"], d["rep"], d["attempts"], d["reason"]) for d in letters] == [
        ("alert-3", "sam", 3, "HTTP 500")
    ]
    assert len(receiver.on("/json")) == 3
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'dbl_alert_deliveries_total{channel="webhook",outcome="dead_letter"} 1.0' in metrics


@pytest.mark.parametrize("failpoint", ["before_commit", "after_webhook"])
def test_a_crash_between_delivery_and_acknowledgement_delivers_once(
    rep_service: RepService, receiver: Receiver, redis_client: redis.Redis, failpoint: str
):
    # One webhook: with two, the other call may be in flight when the process dies, and
    # that one is (rightly) sent again once its lease runs out, a minute later.
    routing = rep_service.settings.config_dir / "routing.toml"
    routing.write_text(routing.read_text().replace(webhook_of(receiver, "/slack", "slack"), ""))
    crashing = rep_service.start(failpoint=failpoint)
    publish(rep_service.settings, alert("alert-4"))
    assert crashing.wait(20) == -9, "killed at the failpoint"
    rep_service.start()
    wait_until(lambda: len(receiver.calls) >= 1, what="the webhook")
    time.sleep(1.0)  # a second delivery would have come by now
    assert [c["path"] for c in receiver.calls] == ["/json"]
    stream = RedisKeys(rep_service.settings.redis_prefix).rep_alerts("sam")
    assert redis_client.xlen(stream) == 1


def test_throttles_count_in_event_time_and_never_hold_back_sales_ready(
    settings: Settings, redis_client: redis.Redis
):
    keys = RedisKeys(settings.redis_prefix)
    dispatcher = Dispatcher(redis_client, keys, load_routing(CONFIG_DIR / "routing.toml"))
    t0 = 1_767_225_600_000
    minute = 60_000
    outcomes = [
        dispatcher.deliver(alert("v1", "live_visit", ts=t0), t0),
        dispatcher.deliver(alert("v2", "live_visit", ts=t0 + 30 * minute), t0),
        dispatcher.deliver(alert("v3", "live_visit", ts=t0 + 61 * minute), t0),
        dispatcher.deliver(alert("s1", "sales_ready", ts=t0 + 62 * minute), t0),
        dispatcher.deliver(alert("s2", "sales_ready", ts=t0 + 63 * minute), t0),
        dispatcher.deliver(alert("v3", "live_visit", ts=t0 + 61 * minute), t0),
    ]
    assert outcomes == [
        "delivered",
        "throttled",
        "delivered",
        "delivered",
        "delivered",
        "duplicate",
    ]
    assert redis_client.xlen(keys.rep_alerts("sam")) == 4


def test_quiet_hours_hold_every_push_for_one_digest_when_they_end(
    delivery_settings: Settings, redis_client: redis.Redis, receiver: Receiver
):
    keys = RedisKeys(delivery_settings.redis_prefix)
    routing = load_routing(delivery_settings.config_dir / "routing.toml")
    quiet_hours = routing.reps["alex"].quiet_hours  # 22:00-07:00 New York
    routing.reps["sam"] = dataclasses.replace(routing.reps["sam"], quiet_hours=quiet_hours)
    dispatcher = Dispatcher(redis_client, keys, routing)
    night = int(datetime.fromisoformat("2026-03-11T03:30:00-04:00").timestamp() * 1000)
    now = 1_000_000
    held = [
        alert("k1", "key_action", ts=night, thread="visit-1"),
        alert("s1", "sales_ready", ts=night + 1000, thread="visit-1"),  # an update
        alert("v2", "live_visit", ts=night + 60_000, thread="visit-2"),
    ]
    assert [dispatcher.deliver(a, now) for a in held] == ["delivered", "updated", "delivered"]
    due = dict(redis_client.zrange(keys.webhook_due, 0, -1, withscores=True))
    morning = now + 3.5 * 3_600_000  # 07:00 local
    digest = f"digest-{night + int(3.5 * 3_600_000)}:sam"
    assert due == {f"{digest}:0".encode(): morning, f"{digest}:1".encode(): morning}
    assert redis_client.xlen(keys.rep_alerts("sam")) == 3, "all on the live page at once"

    for job in due:
        redis_client.zadd(keys.webhook_due, {job: 0})  # the morning has come
    sender = WebhookSender(redis_client, keys, routing, delivery_settings)
    assert sender.send_due() == 2
    wait_until(lambda: len(receiver.calls) == 2, what="one digest per webhook")
    json_call = receiver.on("/json")[0]
    verify(json_call)
    body = codec.loads(json_call["body"])
    assert body["type"] == "alert.digest"
    assert [a["id"] for a in body["alerts"]] == ["k1", "s1", "v2"], "the digest = the held"
    slack = codec.loads(receiver.on("/slack")[0]["body"])["text"]
    assert slack.startswith("*While you were away* (3 alerts)")
    wait_until(lambda: redis_client.zcard(keys.webhook_due) == 0, what="the digests done")
    assert redis_client.hlen(keys.webhook_jobs) == 0
    assert not redis_client.exists(keys.digest(f"{digest}:0"), keys.digest(f"{digest}:1"))


def test_a_daily_digest_lists_the_days_hottest_leads_once(
    delivery_settings: Settings, redis_client: redis.Redis, receiver: Receiver, tmp_path: Path
):
    keys = RedisKeys(delivery_settings.redis_prefix)
    daily = tmp_path / "routing.toml"
    sam = 'token = "demo-token-sam"\n'
    text = (delivery_settings.config_dir / "routing.toml").read_text()
    daily.write_text(text.replace(sam, sam + DAILY))
    routing = load_routing(daily)
    assert routing.reps["sam"].daily_digest is not None
    eight = int(datetime.fromisoformat("2026-03-11T08:10:00-05:00").timestamp() * 1000)
    for person, engagement in (("dana@acme.com", 40.0), ("lee@globex.io", 12.0)):
        view = {"person": person, "name": person[:3], "grade": "A2", "engagement": engagement}
        view["top_signals"] = [["Viewed pricing", engagement]]
        redis_client.hset(keys.profile(person), mapping=encode_profile(view))
        redis_client.zadd(keys.rep_recent("sam"), {person: eight - 3_600_000})
    redis_client.zadd(keys.rep_recent("sam"), {"old@initech.com": eight - 2 * 86_400_000})
    sender = WebhookSender(redis_client, keys, routing, delivery_settings)
    assert sender.queue_daily_digests(eight - 20 * 60_000) == 0, "07:50: not yet"
    assert sender.queue_daily_digests(eight) == 1, "Sam's 08:00 (Chicago) digest"
    assert sender.queue_daily_digests(eight + 60_000) == 0, "once a day"
    assert sender.send_due() == 2
    wait_until(lambda: len(receiver.calls) == 2, what="the digest on both webhooks")
    body = codec.loads(receiver.on("/json")[0]["body"])
    assert (body["type"], body["day"]) == ("leads.daily", "2026-03-11")
    assert [lead["person"] for lead in body["leads"]] == ["dana@acme.com", "lee@globex.io"]
    slack = codec.loads(receiver.on("/slack")[0]["body"])["text"]
    assert "1. dan: A2, engagement 40.0: Viewed pricing (40.0)" in slack


def test_a_hanging_receiver_never_delays_another_destination(
    rep_service: RepService, receiver: Receiver
):
    """Sam's Slack endpoint hangs on every call (past the 0.5 s timeout, retried): his JSON
    endpoint still gets each of 8 alerts at once, not one per Slack timeout."""
    receiver.script["/slack"] = ["hang"]
    rep_service.start()
    sent = time.monotonic()
    publish(rep_service.settings, *(alert(f"burst-{n}") for n in range(8)))
    wait_until(lambda: len(receiver.on("/json")) >= 8, timeout=10, what="the JSON webhook")
    assert time.monotonic() - sent < 3.0, "serially this takes 8 Slack timeouts and retries"
    in_flight = len(receiver.on("/slack"))
    assert in_flight >= 2, "the hanging endpoint is still being tried"


def test_what_the_crm_says_keeps_alerts_from_the_rep_and_counts_them(
    delivery_settings: Settings, redis_client: redis.Redis, rep_service: RepService
):
    keys = RedisKeys(delivery_settings.redis_prefix)
    routing = load_routing(delivery_settings.config_dir / "routing.toml")
    dispatcher = Dispatcher(redis_client, keys, routing)
    t0 = 1_767_225_600_000
    customer = {"lifecycle_stage": "customer"}
    dealing = {"open_opportunity": True}
    disqualified = {"disqualified_at": "2025-06-01T00:00:00Z"}
    later = {"disqualified_at": "2026-06-01T00:00:00Z"}

    def deliver(alert_id: str, kind: str, crm: dict[str, Any]) -> str:
        profile = {**alert(alert_id)["profile"], **crm}
        return dispatcher.deliver(alert(alert_id, kind, ts=t0, profile=profile), t0)

    def suppressed(state: str) -> float:
        labels = {"kind": "sales_ready", "state": state}
        return REGISTRY.get_sample_value("dbl_alerts_suppressed_total", labels) or 0.0

    before = suppressed("customer")
    outcomes = {
        "s-customer": deliver("s-customer", "sales_ready", customer),
        "s-deal": deliver("s-deal", "sales_ready", dealing),
        "k-deal": deliver("k-deal", "key_action", dealing),
        "v-out": deliver("v-out", "live_visit", disqualified),
        "v-later": deliver("v-later", "live_visit", later),
        "s-plain": deliver("s-plain", "sales_ready", {}),
    }
    assert outcomes == {
        "s-customer": "suppressed",
        "s-deal": "suppressed",
        "k-deal": "delivered",
        "v-out": "suppressed",
        "v-later": "delivered",
        "s-plain": "delivered",
    }
    assert suppressed("customer") == before + 1
    told = [codec.loads(f[b"alert"])["id"] for _, f in redis_client.xrange(keys.rep_alerts("sam"))]
    assert told == ["k-deal", "v-later", "s-plain"]
    pushed = {job.split(b":")[0] for job in redis_client.zrange(keys.webhook_due, 0, -1)}
    assert pushed == {b"k-deal", b"v-later", b"s-plain"}, "zero pushes for suppressed leads"
    assert deliver("s-deal", "sales_ready", dealing) == "duplicate"
    raised = [codec.loads(f[b"alert"])["id"] for _, f in redis_client.xrange(keys.raised)]
    assert len(raised) == 6, "every alert is still counted among those raised"

    rep_service.start()
    url = f"http://127.0.0.1:{delivery_settings.rep_api_port}/v1/alerts/suppressed"
    kept = httpx.get(url, params={"token": routing.admin_token}).json()["suppressed"]
    assert [(k["alert"]["id"], k["state"], k["rep"]) for k in kept] == [
        ("v-out", "disqualified", "sam"),
        ("s-deal", "open_opportunity", "sam"),
        ("s-customer", "customer", "sam"),
    ]
    assert httpx.get(url, params={"token": "demo-token-sam"}).status_code == 401
    assert httpx.get(url).status_code == 401


def test_one_visit_is_one_thread_pushed_once_then_updated(
    delivery_settings: Settings, redis_client: redis.Redis
):
    keys = RedisKeys(delivery_settings.redis_prefix)
    dispatcher = Dispatcher(
        redis_client, keys, load_routing(delivery_settings.config_dir / "routing.toml")
    )
    t0 = 1_767_225_600_000
    outcomes = [
        dispatcher.deliver(alert("k1", "key_action", ts=t0, thread="visit-1"), t0),
        dispatcher.deliver(alert("s1", "sales_ready", ts=t0 + 1000, thread="visit-1"), t0),
        # A second key action of the visit is within the key-action throttle: as an update
        # of a pushed visit it still reaches the card.
        dispatcher.deliver(alert("k2", "key_action", ts=t0 + 2000, thread="visit-1"), t0),
        dispatcher.deliver(alert("v2", "live_visit", ts=t0 + 9_000_000, thread="visit-2"), t0),
        dispatcher.deliver(alert("c1", "cooling", ts=t0 + 9_500_000), t0),
    ]
    assert outcomes == ["delivered", "updated", "updated", "delivered", "delivered"]
    told = [codec.loads(f[b"alert"])["id"] for _, f in redis_client.xrange(keys.rep_alerts("sam"))]
    assert told == ["k1", "s1", "k2", "v2", "c1"], "the page gets every alert of the thread"
    jobs = {
        key.decode(): codec.loads(job)["event"]
        for key, job in redis_client.hgetall(keys.webhook_jobs).items()
    }
    assert jobs == {
        "k1:sam:0": "created",
        "k1:sam:1": "created",
        "s1:sam:1": "updated",
        "k2:sam:1": "updated",
        "v2:sam:0": "created",
        "v2:sam:1": "created",
        "c1:sam:0": "created",
        "c1:sam:1": "created",
    }, "Slack (webhook 0) gets one message per visit; JSON (webhook 1) the update too"
