"""The recorded signal stream a backtest replays, from the broker or from an export, laid out
as part files the replay's workers read.

Each part file holds one line per record: its receive time, `e` (an event) or `m` (a model
marker), the record as it was written. From the broker, a part is one partition of the
events topic in log order (the live dataflow's exact input). From an export (`dbl
export-events`), events are spread over parts by their partition key, each part in
receive-time order (the order the live dataflow puts them in before scoring), and each
model marker goes into every part at its time.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from config.settings import Settings
from contracts import codec, kafka
from contracts.envelope import InvalidEvent, decode, partition_key
from contracts.errors import DBLError
from contracts.models import change_in, changed_to

POLL_S: Final = 1.0
STALL_S: Final = 30.0
REPORT_EVERY: Final = 5000
EVENT: Final = b"e"
MARKER: Final = b"m"
# (receive time, EVENT or MARKER, the record as written)
Line = tuple[int, bytes, bytes]
# Parts of an export's replay: the number of workers reading it (more would only add
# progress markers).
EXPORT_PARTS: Final = 4


@dataclass(frozen=True, slots=True)
class History:
    """Part files ready to replay, how many events they hold and their receive-time span."""

    parts: list[Path]
    events: int
    first_ms: int | None
    last_ms: int | None
    source: str


@dataclass(slots=True)
class _Span:
    count: int = 0
    first: int | None = None
    last: int | None = None

    def add(self, received_at: int) -> None:
        self.count += 1
        self.first = received_at if self.first is None else min(self.first, received_at)
        self.last = received_at if self.last is None else max(self.last, received_at)


def from_export(
    path: Path,
    directory: Path,
    window: tuple[int | None, int | None],
    report: Callable[[int], None],
    parts: int = EXPORT_PARTS,
) -> History:
    """Lay out an export's events received within `window` (epoch ms, either end open)."""
    if not path.is_file():
        raise DBLError(f"{path}: no such export file")
    lines: list[list[Line]] = [[] for _ in range(parts)]
    span = _Span()
    for number, raw in enumerate(_export_lines(path), start=1):
        if change_in(raw) is not None:
            at = codec.loads(raw).get("at")
            if isinstance(at, int) and _within(at, window):
                for part in lines:
                    part.append((at, MARKER, raw))
            continue
        try:
            event = decode(raw)
        except InvalidEvent as exc:
            raise DBLError(f"{path}, line {number}: not an event ({exc.reason})") from None
        received = event["received_at"]
        if _within(received, window):
            key = partition_key(event).encode()
            lines[zlib.crc32(key) % parts].append((received, EVENT, raw))
            span.add(received)
        if number % REPORT_EVERY == 0:
            report(number)
    files = []
    for index, part in enumerate(lines):
        # Stable: events received in the same millisecond keep the export's order.
        part.sort(key=lambda line: line[0])
        files.append(_write_part(directory / f"part-{index}.events", part))
    return History(files, span.count, span.first, span.last, str(path))


def _export_lines(path: Path) -> Iterator[bytes]:
    try:
        with gzip.open(path, "rb") as file:
            for line in file:
                if line.strip():
                    yield line.rstrip(b"\n")
    except (OSError, EOFError) as exc:
        raise DBLError(f"{path}: not a gzipped export ({exc})") from None


def from_broker(
    settings: Settings,
    directory: Path,
    window: tuple[int | None, int | None],
    report: Callable[[int], None],
) -> History:
    """Lay out the events topic's events received within `window`, partition by partition."""
    span = _Span()
    parts: dict[int, list[Line]] = {}
    for partition, received, key, value in recorded(settings, window, report):
        if changed_to(key, value) is not None:
            parts.setdefault(partition, []).append((received, MARKER, value))
            continue
        parts.setdefault(partition, []).append((received, EVENT, value))
        span.add(received)
    files = [_write_part(directory / f"part-{p}.events", parts.get(p, [])) for p in sorted(parts)]
    source = f"topic {settings.events_topic}"
    return History(files, span.count, span.first, span.last, source)


def recorded(
    settings: Settings, window: tuple[int | None, int | None], report: Callable[[int], None]
) -> Iterator[tuple[int, int, bytes | None, bytes]]:
    """(partition, receive time, key, value) of each record on the events topic received within
    `window`, partition by partition in log order. `report` is told how many records were
    read so far (the window's edges are found by time where the broker can: the embedded one
    cannot, and its partitions are read whole and filtered)."""
    topic = settings.events_topic
    consumer = Consumer(kafka.reader_config(settings.brokers, "dbl-history"))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise DBLError(f"no topic {topic!r} on the broker")
        read = 0
        for partition in sorted(metadata.partitions):
            start = _first_offset(consumer, TopicPartition(topic, partition), window[0])
            for received, key, value in _read_partition(consumer, start):
                read += 1
                if _within(received, window):
                    yield partition, received, key, value
                if read % REPORT_EVERY == 0:
                    report(read)
        report(read)
    finally:
        consumer.close()


def _first_offset(consumer: Consumer, at: TopicPartition, start_ms: int | None) -> TopicPartition:
    """From the first record at or after `start_ms` (a broker without a time index answers 0:
    the whole partition is read and filtered)."""
    if start_ms is None:
        return TopicPartition(at.topic, at.partition, 0)
    [found] = consumer.offsets_for_times(
        [TopicPartition(at.topic, at.partition, start_ms)], timeout=10
    )
    offset = found.offset if found.offset >= 0 else OFFSET_END
    return TopicPartition(at.topic, at.partition, offset)


def _read_partition(
    consumer: Consumer, start: TopicPartition
) -> Iterator[tuple[int, bytes | None, bytes]]:
    """(broker timestamp, key, value) of each record from `start` to the partition's end."""
    consumer.assign([start])
    stalled = 0.0
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
                return
            raise DBLError(f"reading partition {start.partition}: {error}")
        stalled = 0.0
        value = message.value()
        if value is not None:
            yield message.timestamp()[1], message.key(), value


def _within(received: int, window: tuple[int | None, int | None]) -> bool:
    start, end = window
    return (start is None or received >= start) and (end is None or received < end)


def _write_part(path: Path, lines: list[Line]) -> Path:
    with path.open("wb") as file:
        for received, kind, raw in lines:
            file.write(b"%d %s %s\n" % (received, kind, raw))
    return path


def read_part(path: Path) -> Iterator[Line]:
    """A part file's (receive time, kind, record), in order.

    >>> import tempfile
    >>> part = Path(tempfile.mkdtemp()) / "part-0.events"
    >>> _ = _write_part(part, [(5, EVENT, b'{"id": 1}')])
    >>> list(read_part(part))
    [(5, b'e', b'{"id": 1}')]
    """
    with path.open("rb") as file:
        for line in file:
            received, kind, raw = line.rstrip(b"\n").split(b" ", 2)
            yield int(received), kind, raw
