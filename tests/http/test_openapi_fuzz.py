"""Schemathesis against the running collector, from the OpenAPI description it serves:
whatever it sends, no 5xx, only documented statuses, and every answer as described."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from tests.conftest import fresh_settings, start_module, stop_processes

pytestmark = pytest.mark.integration
SERVER_KEY = "Basic " + base64.b64encode(b"wk_demo_server:").decode()


@pytest.fixture(scope="module")
def collector_url(
    broker: EmbeddedBroker, redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    settings = fresh_settings(broker.bootstrap_servers, redis_server.url).with_overrides(
        rate_limit_per_s=10_000.0,
        rate_limit_burst=10_000.0,
        event_limit_per_s=1e6,
        event_limit_burst=1e6,
    )
    log = Path(tmp_path_factory.mktemp("fuzz")) / "collector.log"
    process = start_module(settings, "tracking", log)
    try:
        wait_for_port(settings.collector_port, process, timeout=20)
        yield f"http://127.0.0.1:{settings.collector_port}"
    finally:
        stop_processes([process])


@pytest.fixture(scope="module")
def api_schema(collector_url: str) -> schemathesis.BaseSchema:
    spec = httpx.get(f"{collector_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    schema.config.update(base_url=collector_url)
    return schema


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_no_input_gets_a_5xx_and_every_answer_is_documented(api_schema: schemathesis.BaseSchema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 11
    statuses: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def call(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers={"authorization": SERVER_KEY}, checks=CHECKS)
            statuses.append(response.status_code)

        call()
    assert 200 in statuses
    assert {400, 404} & set(statuses), "hostile input was tried and refused"
    assert max(statuses) < 500
