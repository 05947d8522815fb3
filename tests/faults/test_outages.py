"""Outages of the broker and of Redis, with the whole pipeline running: nothing that was
acknowledged is lost, nothing is counted twice, and every process keeps its place."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from segment.analytics import Client

from config.settings import Settings
from dbl.embedded import EmbeddedBroker, EmbeddedRedis, wait_for_port
from runtime.ports import free_port
from tests.conftest import fresh_settings, start_module, stop_processes, wait_until
from tests.faults.live import (
    LiveTraffic,
    delivered_ids,
    ids_an_uninterrupted_dispatcher_delivers,
    read_profiles,
)
from tests.faults.relay import CuttableRelay
from tests.streams import expected

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVER_KEY = "wk_demo_server"
VISITORS = 15


def _visits(client: Client, wave: str) -> None:
    for n in range(VISITORS):
        client.page(anonymous_id=f"{wave}-{n}", properties={"path": "/pricing"})


def _each_visit_counted_once(client: redis.Redis, settings: Settings, waves: list[str]) -> bool:
    profiles = read_profiles(client, settings)
    wanted = [f"anon:{wave}-{n}" for wave in waves for n in range(VISITORS)]
    return all(person in profiles and len(profiles[person]["activity"]) == 1 for person in wanted)


@pytest.fixture
def broker_link() -> Iterator[tuple[EmbeddedBroker, CuttableRelay]]:
    """A broker of its own that every client reaches through a relay the test can cut: a
    real outage for the clients, while the broker keeps its log as a production one would
    (the embedded broker is memory-only: restarting it would empty it)."""
    broker_port = free_port()
    with (
        CuttableRelay(broker_port) as relay,
        EmbeddedBroker(broker_port, advertised_port=relay.port) as broker,
    ):
        yield broker, relay


def test_a_broker_outage_answers_503_fast_and_loses_or_doubles_no_acknowledged_event(
    broker_link: tuple[EmbeddedBroker, CuttableRelay], redis_server: EmbeddedRedis, tmp_path: Path
):
    own_broker, relay = broker_link
    settings = fresh_settings(own_broker.bootstrap_servers, redis_server.url)
    collector = start_module(settings, "tracking", tmp_path / "collector.log")
    dataflow = start_module(settings, "dataflows", tmp_path / "dataflow.log")
    errors: list[Exception] = []
    sdk = Client(
        SERVER_KEY,
        host=f"http://127.0.0.1:{settings.collector_port}",
        on_error=lambda error, _batch: errors.append(error),
        max_retries=20,
    )
    store = redis.Redis.from_url(redis_server.url)
    try:
        wait_for_port(settings.collector_port, collector, timeout=20)
        _visits(sdk, "before")
        sdk.flush()
        wait_until(lambda: _each_visit_counted_once(store, settings, ["before"]), what="wave 1")

        relay.cut()
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.collector_port}") as direct:
            for _ in range(3):
                started = time.monotonic()
                answer = direct.post("/v1/page", json={"anonymousId": "x"}, auth=(SERVER_KEY, ""))
                assert answer.status_code == 503, answer.text
                # At worst one producer timeout; then refused at once while it is down.
                assert time.monotonic() - started < settings.produce_timeout_s + 1.5
        _visits(sdk, "during")  # the SDK keeps them and retries
        time.sleep(2)
        assert dataflow.poll() is None, "the dataflow must wait for the broker, not die"

        relay.restore()
        sdk.flush()
        assert errors == []
        wait_until(
            lambda: _each_visit_counted_once(store, settings, ["before", "during"]),
            timeout=40,
            what="every acknowledged visit, once",
        )
        assert dataflow.poll() is None
    finally:
        sdk.shutdown()
        store.close()
        stop_processes([collector, dataflow])


def test_a_redis_outage_holds_the_dataflow_and_dispatcher_in_place_and_loses_nothing(
    broker: EmbeddedBroker, tmp_path: Path
):
    with EmbeddedRedis(durable=True) as own_redis:
        settings = fresh_settings(broker.bootstrap_servers, own_redis.url)
        dataflow = start_module(settings, "dataflows", tmp_path / "dataflow.log")
        dispatcher = start_module(settings, "alerts", tmp_path / "alerts.log")
        store = redis.Redis.from_url(own_redis.url)
        traffic = LiveTraffic(settings, count=600, per_second=100.0, seed=7)
        try:
            _check_redis_outage(settings, own_redis, store, traffic, [dataflow, dispatcher])
        finally:
            store.close()
            stop_processes([dataflow, dispatcher])


def _check_redis_outage(
    settings: Settings,
    own_redis: EmbeddedRedis,
    store: redis.Redis,
    traffic: LiveTraffic,
    processes: list,
) -> None:
    wait_for_port(settings.rep_api_port, processes[1], timeout=20)
    traffic.start()
    time.sleep(2)
    own_redis.kill()
    time.sleep(3)  # signals and alerts keep coming while Redis is away
    assert all(p.poll() is None for p in processes), "nobody dies of a Redis outage"
    own_redis.start()
    signals = traffic.finish(timeout=60)
    want_profiles, want_alerts = expected(signals)
    wait_until(
        lambda: read_profiles(store, settings) == want_profiles,
        timeout=60,
        what="profiles caught up after the outage",
    )
    want_ids = ids_an_uninterrupted_dispatcher_delivers(store, settings, want_alerts)
    wait_until(lambda: set(delivered_ids(store, settings)) >= want_ids, what="every alert")
    assert sorted(delivered_ids(store, settings)) == sorted(want_ids), "each alert exactly once"
