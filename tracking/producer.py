"""The collector's Kafka producer: acks=all, idempotent, awaited per request, never flushed
per message.

A request's records are produced together and the request waits for the broker's
acknowledgement of all of them. When the broker is known to be unreachable, `send`
fails at once so the collector can answer 503 fast instead of holding connections.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from contracts import kafka
from contracts.errors import DBLError

# While the broker is down, check this often whether it is back.
PROBE_INTERVAL_S = 1.0


class BrokerUnavailable(DBLError):
    """The broker did not acknowledge: the client should retry later (503)."""


Record = tuple[str, bytes, bytes, int]  # topic, key, value, timestamp (the receive time, ms)


class _Pending:
    """The acknowledgements one request is waiting for (set from the poll thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        self.loop = loop
        self.future = future
        self.lock = threading.Lock()
        self.expected: int | None = None
        self.done = 0
        self.error: Any = None

    def acknowledged(self, error: Any, _message: Any) -> None:
        with self.lock:
            self.done += 1
            if error is not None and self.error is None:
                self.error = error
            finished = self.done == self.expected
        if finished:
            self.loop.call_soon_threadsafe(self._resolve)

    def all_produced(self, count: int) -> None:
        with self.lock:
            self.expected = count
            finished = self.done == count
        if finished:
            self._resolve()

    def _resolve(self) -> None:
        if self.future.done():
            return
        if self.error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(BrokerUnavailable(str(self.error)))


def producer_config(brokers: str, timeout_s: float) -> dict[str, Any]:
    """The collector's producer settings: every record stored by all replicas (acks=all),
    never duplicated by the producer's own retries, given up after `timeout_s`."""
    return kafka.producer_config(
        brokers,
        **{
            "linger.ms": 2,
            "message.timeout.ms": int(timeout_s * 1000),
            "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
            "reconnect.backoff.max.ms": 1000,
            # What waits for the broker is bounded (librdkafka's default is 1 GiB): when it
            # is full, a request gets a 503 rather than the process growing.
            "queue.buffering.max.kbytes": 64 * 1024,
            "queue.buffering.max.messages": 100_000,
        },
    )


class EventProducer:
    """Produces records and awaits their acknowledgement; one per collector process."""

    def __init__(self, brokers: str, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._config = {**producer_config(brokers, timeout_s), "error_cb": self._on_error}
        self._producer = Producer(self._config)
        self._fatal = False
        # Acknowledgements failed although the broker was not known to be down.
        self._stalled = False
        self._down = False
        self._last_probe = 0.0
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    async def send(self, records: Sequence[Record]) -> None:
        """Produce `records` and return once the broker acknowledged every one of them."""
        if self._down:
            raise BrokerUnavailable("the broker is unreachable")
        if not records:
            return
        loop = asyncio.get_running_loop()
        pending = _Pending(loop, loop.create_future())
        for count, (topic, key, value, timestamp) in enumerate(records):
            try:
                self._producer.produce(
                    topic, value, key, timestamp=timestamp, on_delivery=pending.acknowledged
                )
            except (BufferError, KafkaException) as exc:
                # The local queue is full or the producer is failing: refuse the rest.
                if isinstance(exc, KafkaException) and exc.args[0].fatal():
                    self._fatal = True
                pending.error = exc
                pending.all_produced(count)
                break
        else:
            pending.all_produced(len(records))
        try:
            await asyncio.wait_for(pending.future, self._timeout_s + 1)
        except TimeoutError:
            self._stalled = True
            raise BrokerUnavailable("the broker did not acknowledge in time") from None
        except BrokerUnavailable:
            self._stalled = not self._down
            raise
        self._down = False

    def close(self) -> None:
        """Deliver what is queued (bounded wait) and stop the poll thread."""
        self._producer.flush(self._timeout_s)
        self._running = False
        self._poller.join(timeout=2)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            # E.g. the broker forgot this producer's id (a restarted memory-only broker).
            self._fatal = True
        # Single dropped connections (idle timeouts) are routine; only "all down" counts.
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._down = True

    def _replace_failed_producer(self) -> None:
        """A fatal error ends a producer's life: fail what it holds, start a new one."""
        failed = self._producer
        self._fatal = self._stalled = False
        self._producer = Producer(self._config)
        failed.purge()
        failed.flush(0)

    def _poll(self) -> None:
        while self._running:
            if self._fatal or (self._stalled and self._broker_answers()):
                # A broker that answers metadata but not produce requests has lost this
                # producer's session (a restarted memory-only broker): start afresh.
                self._replace_failed_producer()
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:
                self._fatal = self._fatal or exc.args[0].fatal()
            if self._down and time.monotonic() - self._last_probe > PROBE_INTERVAL_S:
                self._last_probe = time.monotonic()
                self._probe()

    def _probe(self) -> None:
        if self._broker_answers():
            self._down = False

    def _broker_answers(self) -> bool:
        try:
            self._producer.list_topics(timeout=PROBE_INTERVAL_S / 2)
        except KafkaException:
            return False
        return True
