"""Writes reps' feedback to the events log, acknowledged by the broker before the rep is
answered (acks=all): a rating the page confirmed is in the log, where backtests read it."""

from __future__ import annotations

import asyncio
from typing import Final

from confluent_kafka import Producer

from contracts import codec, kafka
from contracts.envelope import Envelope, partition_key
from contracts.errors import DBLError

ACK_TIMEOUT_S: Final = 5.0


class LogUnavailable(DBLError):
    """The broker did not acknowledge in time: the caller should retry (503)."""


class EventLog:
    """One producer per process, created on first use."""

    def __init__(self, brokers: str, topic: str) -> None:
        self._brokers = brokers
        self._topic = topic
        self._producer: Producer | None = None

    async def append(self, signal: Envelope) -> None:
        """Produce one signal and wait for the broker's acknowledgement."""
        await asyncio.to_thread(self._append, signal)

    def _append(self, signal: Envelope) -> None:
        if self._producer is None:
            config = kafka.producer_config(
                self._brokers, **{"message.timeout.ms": int(ACK_TIMEOUT_S * 1000)}
            )
            self._producer = Producer(config)
        errors: list[object] = []
        self._producer.produce(
            self._topic,
            codec.dumps(signal),
            partition_key(signal).encode(),
            timestamp=signal["received_at"],
            on_delivery=lambda error, _message: errors.append(error),
        )
        left = self._producer.flush(ACK_TIMEOUT_S + 1)
        if left or not errors or errors[0] is not None:
            raise LogUnavailable(f"the events log did not acknowledge: {errors or 'timeout'}")

    def close(self) -> None:
        """Send what is pending."""
        if self._producer is not None:
            self._producer.flush(ACK_TIMEOUT_S)
