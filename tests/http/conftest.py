"""The collector over real HTTP, shared by this folder's tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from config.settings import Settings
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from tests.conftest import fresh_settings, start_module, stop_processes


@pytest.fixture(scope="module")
def collector(
    broker: EmbeddedBroker, redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, httpx.Client]]:
    """One collector process for this module's tests, and a client for it."""
    settings = fresh_settings(broker.bootstrap_servers, redis_server.url)
    log = tmp_path_factory.mktemp("collector") / "collector.log"
    process = start_module(settings, "tracking", log)
    try:
        wait_for_port(settings.collector_port, process, timeout=20)
        base = f"http://127.0.0.1:{settings.collector_port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            yield settings, client
    finally:
        stop_processes([process])
