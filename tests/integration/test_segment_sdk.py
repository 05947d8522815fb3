"""Segment's own Python SDK, pointed at the collector, works unchanged."""

from __future__ import annotations

import pytest
import redis
from segment.analytics import Client

from config.settings import Settings
from contracts import codec
from contracts.read_model import RedisKeys, decode_profile
from tests.conftest import read_topic, wait_until

pytestmark = pytest.mark.integration


def test_segment_python_sdk_events_are_collected_and_scored(
    running_system: Settings, redis_client: redis.Redis
):
    settings = running_system
    errors: list[Exception] = []
    client = Client(
        "wk_demo_server",  # a backend SDK uses the site's server key
        host=f"http://127.0.0.1:{settings.collector_port}",
        on_error=lambda error, _batch: errors.append(error),
    )
    traits = {"email": "lee@globex.io", "title": "Head of Marketing", "company_size": 2500}
    client.identify("user-42", traits, anonymous_id="sdk-cookie")
    client.page("user-42", properties={"path": "/pricing", "url": "https://x.io/pricing"})
    client.track("user-42", "Webinar Attended", {"webinar": "Scoring"})
    client.flush()
    client.shutdown()
    assert errors == []

    records = [codec.loads(r.value()) for r in read_topic(settings, settings.events_topic, 3)]
    assert sorted(r["type"] for r in records) == ["identify", "page", "track"]
    assert {r["user_id"] for r in records} == {"user-42"}
    assert all(r["source"] == "demo-backend" for r in records)

    keys = RedisKeys(settings.redis_prefix)

    def engagement() -> float:
        fields = redis_client.hgetall(keys.profile("user-42"))
        return decode_profile(fields)["engagement"] if fields else 0.0  # type: ignore[arg-type]

    # pricing 10 + page 1 + webinar attended 20
    assert wait_until(lambda: engagement() == 31.0, what="the SDK user's profile")
