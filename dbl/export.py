"""`dbl export-events`: the events topic between two times as a gzipped JSON Lines file, so
history outlives the topic's retention (backtests and training read it).

Records are selected by their broker timestamp (the collector's receive time) and written
partition by partition in log order: the same window of the same log gives the same file.
Each partition is read from the broker's first offset at or after the window's start (from
its beginning where the broker cannot tell, as the embedded one cannot) to its end.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Final

from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from config.settings import Settings
from contracts import kafka
from contracts.errors import DBLError

POLL_S: Final = 1.0
# How long to wait for a partition's next record before giving up on it as unreadable.
STALL_S: Final = 30.0
REPORT_EVERY: Final = 1000


def export_events(
    settings: Settings, start_ms: int, end_ms: int, path: Path, report: Callable[[int], None]
) -> int:
    """Write every event received in [start_ms, end_ms) to `path`; returns how many.
    `report(read)` is told how many records were read so far."""
    if end_ms <= start_ms:
        raise DBLError("--to must be after --from")
    topic = settings.events_topic
    config = {"group.id": "dbl-export", "enable.auto.commit": False, "enable.partition.eof": True}
    consumer = Consumer(kafka.consumer_config(settings.brokers, **config))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise DBLError(f"no topic {topic!r} on the broker")
        written, read = 0, 0
        with gzip.open(path, "wb") as out:
            for partition in sorted(metadata.partitions):
                start = _first_offset(consumer, TopicPartition(topic, partition, start_ms))
                kept, seen = _copy(consumer, start, start_ms, end_ms, out, read, report)
                written, read = written + kept, read + seen
        report(read)
        return written
    finally:
        consumer.close()


def _first_offset(consumer: Consumer, at: TopicPartition) -> TopicPartition:
    """The partition from its first record at or after `at.offset` (a time); from its end
    when it has none that late. (A broker without a time index answers 0: the whole
    partition is read and filtered.)"""
    [found] = consumer.offsets_for_times([at], timeout=10)
    offset = found.offset if found.offset >= 0 else OFFSET_END
    return TopicPartition(at.topic, at.partition, offset)


def _copy(
    consumer: Consumer,
    start: TopicPartition,
    start_ms: int,
    end_ms: int,
    out: gzip.GzipFile,
    read_before: int,
    report: Callable[[int], None],
) -> tuple[int, int]:
    """Copy one partition's records stamped in the window, to the partition's end: how many
    were written, and how many read."""
    consumer.assign([start])
    written, read, stalled = 0, 0, 0.0
    while True:
        message = consumer.poll(POLL_S)
        if message is None:
            stalled += POLL_S
            if stalled >= STALL_S:
                raise DBLError(f"partition {start.partition} stopped answering")
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return written, read
            raise DBLError(f"reading partition {start.partition}: {error}")
        stalled = 0.0
        read += 1
        value = message.value()
        if value is not None and start_ms <= message.timestamp()[1] < end_ms:
            out.write(value.rstrip(b"\n") + b"\n")
            written += 1
        if read % REPORT_EVERY == 0:
            report(read_before + read)
