"""Running the real flow over a partitioned input: in this process on 1 or more workers, or
as a Bytewax cluster of 2 processes."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSink, cluster_main, run_main

from config.settings import Settings
from contracts import codec
from contracts.envelope import Envelope, partition_key
from dataflows.flow import build_flow
from dataflows.io.sinks import ProfileWrite
from dataflows.models import Models
from runtime.ports import free_port

Partitions = dict[str, list[KafkaSourceMessage[bytes, bytes]]]


def partitioned(signals: list[Envelope], count: int) -> Partitions:
    """The signals as the collector would spread them over `count` topic partitions (by
    broker key, each partition in arrival order)."""
    parts: Partitions = {f"{n}-events": [] for n in range(count)}
    for signal in signals:
        key = partition_key(signal).encode()
        part = parts[f"{zlib.crc32(key) % count}-events"]
        part.append(
            KafkaSourceMessage(
                key=key,
                value=codec.dumps(signal),
                topic="events",
                partition=zlib.crc32(key) % count,
                offset=len(part),
                timestamp=(1, signal["received_at"]),
            )
        )
    return parts


class _Part(StatefulSourcePartition[Any, int]):
    def __init__(self, messages: list[Any], batch_size: int) -> None:
        self._batches: Iterator[list[Any]] = (
            messages[i : i + batch_size] for i in range(0, len(messages), batch_size)
        )

    def next_batch(self) -> list[Any]:
        return next(self._batches)  # StopIteration ends the partition

    def snapshot(self) -> int:
        return 0


class PartitionedSource(FixedPartitionedSource[Any, int]):
    """Like Bytewax's TestingSource, with several partitions read by different workers."""

    def __init__(self, parts: Partitions, batch_size: int = 3) -> None:
        self._parts = parts
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return sorted(self._parts)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Part:
        return _Part(self._parts[for_part], self._batch_size)


def run_in_process(
    parts: Partitions, workers: int, models: Models | None = None
) -> tuple[dict[str, Any], list[Any]]:
    """Final profiles and alerts of the flow run in this process on `workers` workers."""
    writes: list[ProfileWrite] = []
    alerts: list[Any] = []
    flow = build_flow(
        Settings(),
        workers=workers,
        events=PartitionedSource(parts),
        profiles=TestingSink(writes),
        alerts=TestingSink(alerts),
        dead_letters=TestingSink([]),
        models=models,
    )
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return final_profiles(writes), [codec.loads(a.value) for a in alerts]


def final_profiles(writes: list[ProfileWrite]) -> dict[str, Any]:
    """The read model after applying `writes` in order."""
    final: dict[str, Any] = {}
    for write in writes:
        final[write.person] = write.view
    return {person: view for person, view in final.items() if view is not None}


class _FileSink(DynamicSink[Any]):
    """Each worker pickles what it writes to its own file."""

    def __init__(self, directory: Path, name: str) -> None:
        self._directory = directory
        self._name = name

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FilePart:
        return _FilePart(self._directory / f"{self._name}-{worker_index}.pickle")


class _FilePart(StatelessSinkPartition[Any]):
    def __init__(self, path: Path) -> None:
        self._file = path.open("ab")

    def write_batch(self, items: list[Any]) -> None:
        # Stamped with the wall clock, which both processes share: Redis, too, applies
        # the workers' writes in the order they come.
        pickle.dump((time.time_ns(), items), self._file)

    def close(self) -> None:
        self._file.close()


def _read_batches(paths: list[Path]) -> list[list[Any]]:
    """Every worker's batches, in the order they were written."""
    batches = []
    for path in paths:
        with path.open("rb") as file:
            while True:
                try:
                    batches.append(pickle.load(file))
                except EOFError:
                    break
    return [items for _, items in sorted(batches, key=lambda batch: batch[0])]


def run_cluster(
    parts: Partitions, directory: Path, timeout: float = 60
) -> tuple[dict[str, Any], list[Any]]:
    """Final profiles and alerts of the flow run as a cluster of 2 processes, 1 worker each."""
    (directory / "input.pickle").write_bytes(pickle.dumps(parts))
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    logs = [(directory / f"process-{n}.log").open("wb") for n in range(2)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.flows.partitioned", str(directory), str(n), addresses],
            stdout=log,
            stderr=log,
        )
        for n, log in enumerate(logs)
    ]
    try:
        for n, process in enumerate(processes):
            code = process.wait(timeout)
            assert code == 0, (directory / f"process-{n}.log").read_text()
    finally:
        for process, log in zip(processes, logs, strict=True):
            process.kill()
            process.wait()
            log.close()
    writes = [w for b in _read_batches(sorted(directory.glob("profiles-*.pickle"))) for w in b]
    alerts = [a for b in _read_batches(sorted(directory.glob("alerts-*.pickle"))) for a in b]
    return final_profiles(writes), [codec.loads(a.value) for a in alerts]


def _cluster_process(directory: Path, process_id: int, addresses: str) -> None:
    parts = pickle.loads((directory / "input.pickle").read_bytes())
    flow = build_flow(
        Settings(),
        workers=2,
        events=PartitionedSource(parts),
        profiles=_FileSink(directory, "profiles"),
        alerts=_FileSink(directory, "alerts"),
        dead_letters=_FileSink(directory, "dlq"),
    )
    cluster_main(flow, addresses.split(";"), process_id, worker_count_per_proc=1)


if __name__ == "__main__":
    _cluster_process(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
