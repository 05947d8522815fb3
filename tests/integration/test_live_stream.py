"""The rep's server-sent event stream: replay on connect, live alerts, Last-Event-ID resume."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from config.settings import Settings
from dbl import codec
from dbl.embedded import wait_for_port
from tests.conftest import ProcessFactory, alert, publish

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
