"""How every DBL process talks to Kafka: one place for client settings.

>>> producer_config("127.0.0.1:9092")["acks"]
'all'
"""

from __future__ import annotations

from typing import Any


def producer_config(brokers: str, **extra: Any) -> dict[str, Any]:
    """A producer that loses and duplicates nothing: every record stored by all replicas
    (acks=all), never duplicated by the producer's own retries (idempotence)."""
    return {
        "bootstrap.servers": brokers,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        **extra,
    }


def consumer_config(brokers: str, **extra: Any) -> dict[str, Any]:
    """A consumer that does not let the broker hold a fetch open waiting for more data (its
    default 500 ms would be added to every alert's latency), and that reads what the log
    has when its resumed offset is gone (retention passed it, or a memory-only broker
    restarted empty)."""
    return {
        "bootstrap.servers": brokers,
        "fetch.wait.max.ms": 5,
        "auto.offset.reset": "earliest",
        **extra,
    }


def reader_config(brokers: str, group: str) -> dict[str, Any]:
    """A consumer that reads partitions it is assigned to their end (it is told when it
    gets there) and commits nothing: exports, backtests, the models topic."""
    return consumer_config(
        brokers, **{"group.id": group, "enable.auto.commit": False, "enable.partition.eof": True}
    )


def admin_config(brokers: str) -> dict[str, Any]:
    """An admin client (topics, partitions)."""
    return {"bootstrap.servers": brokers}
