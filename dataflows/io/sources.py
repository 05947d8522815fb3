"""The dataflow's input: the events topic, with progress markers behind each batch."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bytewax.connectors.kafka import KafkaSource, KafkaSourceMessage
from bytewax.connectors.kafka import _KafkaSourcePartition as KafkaSourcePartition
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_END, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from config.settings import Settings
from contracts import kafka
from contracts.models import changed_to
from dataflows.io import metrics
from dataflows.ordering.buffer import Progress

WATERMARK_TIMEOUT_S = 1.0


class _LogEnd:
    """Whether a Kafka partition has read every message the broker holds.

    Reads the consumer and next offset that Bytewax's own partition class keeps (Bytewax is
    pinned, and the integration tests run this against the broker)."""

    def __init__(self, part: KafkaSourcePartition) -> None:
        self._part = part
        self._partition = TopicPartition(part._topic, part._part_idx)
        self._log_start: int | None = None

    def reached(self) -> bool:
        """True once the next offset to read is the end of the log as last fetched."""
        offset: int = self._part._offset
        if offset == OFFSET_END:
            return True
        if offset < 0:
            # Reading from the beginning and nothing read yet: the log starts at its low mark.
            if self._log_start is None:
                try:
                    self._log_start, _ = self._part._consumer.get_watermark_offsets(
                        self._partition, timeout=WATERMARK_TIMEOUT_S
                    )
                except KafkaException:
                    return False
            offset = self._log_start
        # The end of the log as the last fetch response gave it (-1001 before the first).
        _, high = self._part._consumer.get_watermark_offsets(self._partition, cached=True)
        return bool(0 <= high <= offset)


class EventsSource(KafkaSource):
    """The events topic, read by consumers that do not wait on the broker for more data.

    KafkaSource hands `add_config` to its admin client too, which warns about a consumer-only
    setting; this lists the partitions with a plain admin client instead (same part names).
    """

    def __init__(self, settings: Settings) -> None:
        config = kafka.consumer_config(settings.brokers)
        del config["bootstrap.servers"]  # KafkaSource sets it from its brokers
        super().__init__([settings.brokers], [settings.events_topic], add_config=config)
        self._bootstrap = settings.brokers
        self._topic = settings.events_topic

    def list_parts(self) -> list[str]:
        """Each partition of the events topic, named as KafkaSource names them."""
        metadata = AdminClient(kafka.admin_config(self._bootstrap)).list_topics(self._topic)
        return [
            f"{index}-{self._topic}" for index in sorted(metadata.topics[self._topic].partitions)
        ]


@dataclass(frozen=True, slots=True)
class Stamped:
    """A message read after a model marker in its partition: scored with that model."""

    message: KafkaSourceMessage[bytes | None, bytes | None]
    model: str


class _ProgressPartition(StatefulSourcePartition[Any, Any]):
    def __init__(
        self,
        inner: StatefulSourcePartition[Any, Any],
        part: str,
        idle_lag_ms: int,
        model: str,
    ) -> None:
        self._inner = inner
        self._part = part
        self._idle_lag_ms = idle_lag_ms
        self._received_to = -1
        self._log_end = _LogEnd(inner) if isinstance(inner, KafkaSourcePartition) else None
        # The model in effect at this point of the partition ("" before any publication).
        self._model = model

    def next_batch(self) -> list[Any]:
        batch: list[Any] = []
        received_to = self._received_to
        messages = self._inner.next_batch()
        for message in messages:
            stamp = getattr(message, "timestamp", None)
            if stamp is not None and stamp[1] > received_to:
                received_to = stamp[1]
            version = changed_to(getattr(message, "key", None), getattr(message, "value", None))
            if version is not None:
                self._model = version
                metrics.MODEL_CHANGES.labels(version).inc()
            elif self._model:
                batch.append(Stamped(message, self._model))
            else:
                batch.append(message)
        if not messages and self._log_end is not None and self._log_end.reached():
            # Anything still to come will be stamped from about now on. (A partition that
            # merely has nothing *yet*, such as one catching up after a restart, says nothing:
            # its backlog must keep its place in the stream order; test sources that cannot
            # tell report progress only with their data.)
            received_to = max(received_to, int(time.time() * 1000) - self._idle_lag_ms)
        if received_to > self._received_to:
            self._received_to = received_to
            batch.append(Progress(self._part, received_to))
        return batch

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        return (self._inner.snapshot(), self._model)

    def close(self) -> None:
        self._inner.close()


class ProgressSource(FixedPartitionedSource[Any, Any]):
    """Wraps a partitioned source of broker messages: after each batch a partition emits
    `Progress(part, t)`, t being the latest message timestamp (the collector's receive time)
    it has read; a partition that has read all the broker holds reports the wall clock less
    `idle_lag_ms`. A model marker is not passed on: the messages after it in its partition
    are, as `Stamped` with its version (kept in the partition's snapshot).

    >>> settings = Settings(kafka_bootstrap_servers="127.0.0.1:9092")
    >>> source = ProgressSource(EventsSource(settings), idle_lag_ms=50)
    """

    def __init__(self, inner: FixedPartitionedSource[Any, Any], idle_lag_ms: int) -> None:
        self._inner = inner
        self._idle_lag_ms = idle_lag_ms

    def list_parts(self) -> list[str]:
        """The wrapped source's partitions."""
        return self._inner.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: Any | None
    ) -> _ProgressPartition:
        """The wrapped partition, followed by progress markers."""
        # Snapshots of release 0.1.0 hold the wrapped partition's state alone.
        inner_state, model = resume_state if isinstance(resume_state, tuple) else (resume_state, "")
        inner = self._inner.build_part(step_id, for_part, inner_state)
        return _ProgressPartition(inner, for_part, self._idle_lag_ms, model)
