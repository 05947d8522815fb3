"""The rep's server-sent event stream: replay on connect, live alerts, Last-Event-ID resume."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from bench.live_pages import measure
from config.settings import Settings
from contracts import codec
from dbl.embedded import wait_for_port
from runtime.ports import free_port
from tests.conftest import (
    ProcessFactory,
    alert,
    publish,
    start_module,
    stop_processes,
    wait_until,
)

pytestmark = pytest.mark.integration
SAM = {"authorization": "Bearer demo-token-sam"}


@pytest.fixture
def rep_api(settings: Settings, start_process: ProcessFactory) -> str:
    process = start_process("alerts")
    wait_for_port(settings.rep_api_port, process, timeout=20)
    return f"http://127.0.0.1:{settings.rep_api_port}"


def events(response: httpx.Response) -> Iterator[tuple[str, dict[str, object]]]:
    """(id, alert) for each `alert` event of an open SSE response."""
    event_id, data = "", b""
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:].encode()
        elif line == "" and data:
            yield event_id, codec.loads(data)
            event_id, data = "", b""


def test_events_replay_recent_alerts_then_stream_live_and_resume_after_a_drop(
    settings: Settings, rep_api: str
):
    publish(settings, alert("old-1"))
    with httpx.Client(base_url=rep_api, headers=SAM, timeout=10) as client:
        time.sleep(1.0)  # let the dispatcher deliver old-1
        with client.stream("GET", "/v1/reps/sam/events") as response:
            assert response.headers["content-type"] == "text/event-stream"
            stream = events(response)
            assert next(stream)[1]["id"] == "old-1", "recent alerts come first"
            publish(settings, alert("live-1"))
            started = time.monotonic()
            live_id, live = next(stream)
            assert live["id"] == "live-1"
            assert time.monotonic() - started < 2.0
        publish(settings, alert("missed-1"))
        time.sleep(1.0)
        resumed = {"last-event-id": live_id}
        with client.stream("GET", "/v1/reps/sam/events", headers=resumed) as response:
            assert next(events(response))[1]["id"] == "missed-1", "resumes after live-1"


def test_another_reps_stream_stays_empty(settings: Settings, rep_api: str):
    publish(settings, alert("for-sam"))
    time.sleep(1.0)
    alex = {"authorization": "Bearer demo-token-alex"}
    with httpx.Client(base_url=rep_api, headers=alex, timeout=10) as client:
        answer = client.get("/v1/alerts", params={"rep": "alex"})
        assert answer.json()["alerts"] == []
        with client.stream("GET", "/v1/reps/sam/events") as response:
            assert response.status_code == 401


def test_more_live_pages_than_redis_connections_each_get_every_alert_within_two_seconds(
    settings: Settings, rep_api: str
):
    """150 pages (the Redis pool once held 100, one per page) and the JSON API meanwhile."""
    measured = asyncio.run(measure(settings, pages=150, alerts=2))
    assert measured.missed == 0
    assert len(measured.delays_s) == 300
    assert max(measured.delays_s) < 2.0
    assert measured.api_errors == 0
    assert measured.api_s, "the JSON API was asked while the pages were open"


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/alerts?rep=sam", {"authorization": "Bearer t\u00f6ken".encode("latin-1")}, 401),
        ("/v1/alerts?rep=sam&token=t%C3%B6ken-%C2%B2", {}, 401),
        ("/v1/alerts?rep=sam&limit=\u00b2", SAM, 400),
        ("/v1/alerts?rep=sam&limit=99999999999999999999999", SAM, 400),
        ("/v1/reps/sam/events", {**SAM, "last-event-id": "garbage"}, 400),
        ("/v1/reps/sam/events?last_id=1-2-3", SAM, 400),
        ("/v1/reps/sam/events", {**SAM, "last-event-id": "99999999999999999999-0"}, 400),
        ("/v1/reps/sam/events?last_id=18446744073709551615-18446744073709551615", SAM, 400),
        ("/v1/profiles/x?token=\u00e9", {}, 401),
    ],
)
def test_untrusted_input_to_the_rep_api_gets_a_clear_4xx(rep_api: str, path, headers, status):
    with httpx.Client(base_url=rep_api, timeout=10) as client:
        answer = client.get(path, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]


def test_a_paused_redis_gets_a_fast_503_not_a_500(rep_api: str, redis_client: redis.Redis):
    redis_client.execute_command("CLIENT", "PAUSE", "4000", "ALL")
    try:
        with httpx.Client(base_url=rep_api, headers=SAM, timeout=10) as client:
            started = time.monotonic()
            answer = client.get("/v1/alerts", params={"rep": "sam"})
        assert answer.status_code == 503
        assert answer.headers["retry-after"]
        assert time.monotonic() - started < 3.5
    finally:
        redis_client.execute_command("CLIENT", "UNPAUSE")


def test_the_rep_api_and_delivery_run_apart_and_api_replicas_deliver_nothing(
    settings: Settings, tmp_path, redis_client: redis.Redis
):
    """`python -m alerts api` only reads (two replicas deliver no alert twice, and nothing at
    all without the dispatcher); `python -m alerts dispatch` delivers alone."""
    second = settings.with_overrides(rep_api_port=free_port())
    started = [
        start_module(settings, "alerts", tmp_path / "api-1.log", ["api"]),
        start_module(second, "alerts", tmp_path / "api-2.log", ["api"]),
    ]
    try:
        for config, process in ((settings, started[0]), (second, started[1])):
            wait_for_port(config.rep_api_port, process, timeout=20)
        publish(settings, alert("apart-1"))
        stream = f"{settings.redis_prefix}:alerts:sam"
        time.sleep(2.0)
        assert redis_client.xlen(stream) == 0, "an API replica delivered an alert"
        started.append(start_module(settings, "alerts", tmp_path / "dispatch.log", ["dispatch"]))
        wait_until(lambda: redis_client.xlen(stream) == 1, what="the dispatcher's delivery")
        for port in (settings.rep_api_port, second.rep_api_port):
            answer = httpx.get(
                f"http://127.0.0.1:{port}/v1/alerts?rep=sam", headers=SAM, timeout=10
            )
            assert [a["id"] for a in answer.json()["alerts"]] == ["apart-1"]
    finally:
        stop_processes(started)
