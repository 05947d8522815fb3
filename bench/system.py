"""Settings of a system under load on this machine: free ports and no rate limits (load
tests send from one address, far above a visitor's rate)."""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from runtime.ports import free_port


def unlimited(kafka_bootstrap_servers: str, **fields: Any) -> Settings:
    """Settings on the given broker with fresh loopback ports and no rate limits; `fields`
    override any of them.

    >>> settings = unlimited("127.0.0.1:9092", demo=True)
    >>> settings.rate_limit_per_s, settings.collector_port != settings.rep_api_port
    (1000000000.0, True)
    """
    limits = {"rate_limit_per_s": 1e9, "rate_limit_burst": 1e9}
    limits |= {"event_limit_per_s": 1e9, "event_limit_burst": 1e9}
    ports = {
        "collector_port": free_port(),
        "rep_api_port": free_port(),
        "dataflow_metrics_port": free_port(),
        "delivery_metrics_port": free_port(),
    }
    return Settings(
        kafka_bootstrap_servers=kafka_bootstrap_servers, **{**limits, **ports, **fields}
    )
