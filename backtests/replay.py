"""Replaying recorded signals through the live dataflow, isolated: the same rules and the
same ordering (`dataflows.flow.build_flow`), its own state, and outputs that only reach
this run's folder: no read model, no alerts topic, no webhook.

The replay runs as 1 or more Bytewax processes (`python -m backtests.replay DIR N`), each
worker keeping what a report needs of its leads and alerts and leaving it in the folder at
the end; the caller reads the progress they leave there as they go.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import cluster_main

from backtests.history import MARKER, read_part
from backtests.leads import AlertRecord, LeadRecord
from config.routing import Routing, load_routing, route
from config.scoring import load_scoring_model
from config.settings import Settings
from contracts import codec
from contracts.envelope import ANONYMOUS_PREFIX
from contracts.errors import DBLError
from contracts.models import MODEL_CHANGE_KEY
from dataflows.flow import build_flow
from dataflows.io.models import fetch_from_topic
from dataflows.io.sinks import ProfileWrite
from dataflows.models import Models
from runtime.heap import collect_rarely
from runtime.ports import free_port

BATCH: Final = 1000
PROGRESS_EVERY_S: Final = 0.5
POLL_S: Final = 0.2


@dataclass(frozen=True, slots=True)
class Job:
    """What every replay process reads from `job.pickle` in its folder."""

    # The model scoring everything, or None: the models as published in the log.
    model: Path | None
    settings: Settings
    routing: Path
    parts: list[Path]
    # The ages (after a lead's first profile, ms) at which its view is kept.
    ages_ms: tuple[int, ...]
    processes: int
    workers_per_process: int
    addresses: list[str]


@dataclass(frozen=True, slots=True)
class Replayed:
    """A replay's results: each known lead, every alert (by time, then id), dead letters by
    reason, and how long the replay took."""

    leads: dict[str, LeadRecord]
    alerts: list[AlertRecord]
    dead_letters: dict[str, int]
    seconds: float


def replay(
    parts: list[Path],
    model: Path | None,
    directory: Path,
    *,
    settings: Settings,
    routing: Path,
    ages_ms: tuple[int, ...],
    processes: int = 1,
    workers_per_process: int = 1,
    report: Callable[[int], None] = lambda done: None,
    timeout_s: float = 24 * 3600,
) -> Replayed:
    """Replay the part files with `model` (None: the models as published in the log, and
    the deployment's before the first) in `directory` (which must be empty); `report` is
    told how many events were read so far."""
    if model is not None:
        load_scoring_model(model)  # refuse a bad model before starting anything
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)] if processes > 1 else []
    job = Job(model, settings, routing, parts, ages_ms, processes, workers_per_process, addresses)
    (directory / "job.pickle").write_bytes(pickle.dumps(job))
    started = time.monotonic()
    logs = [(directory / f"process-{n}.log").open("wb") for n in range(processes)]
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "backtests.replay", str(directory), str(n)],
            stdout=log,
            stderr=log,
        )
        for n, log in enumerate(logs)
    ]
    try:
        _wait(children, directory, report, started + timeout_s)
    finally:
        for child, log in zip(children, logs, strict=True):
            child.kill()
            child.wait()
            log.close()
    seconds = time.monotonic() - started
    return _collect(directory, seconds)


def _wait(
    children: list[subprocess.Popen[bytes]],
    directory: Path,
    report: Callable[[int], None],
    deadline: float,
) -> None:
    while True:
        report(_progress(directory))
        codes = [child.poll() for child in children]
        failed = [n for n, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            log = (directory / f"process-{failed[0]}.log").read_text(errors="replace")
            raise DBLError(f"the replay failed:\n{log[-3000:]}")
        if all(code == 0 for code in codes):
            report(_progress(directory))
            return
        if time.monotonic() > deadline:
            raise DBLError("the replay took too long")
        time.sleep(POLL_S)


def _progress(directory: Path) -> int:
    done = 0
    for path in directory.glob("progress-*"):
        text = path.read_text()
        done += int(text) if text.isdigit() else 0
    return done


def _collect(directory: Path, seconds: float) -> Replayed:
    leads: dict[str, LeadRecord] = {}
    for path in sorted(directory.glob("leads-*.pickle")):
        for person, lead in pickle.loads(path.read_bytes()).items():
            if person not in leads or leads[person].final["as_of"] < lead.final["as_of"]:
                leads[person] = lead
    alerts: list[AlertRecord] = []
    for path in sorted(directory.glob("alerts-*.pickle")):
        alerts += pickle.loads(path.read_bytes())
    dead: dict[str, int] = {}
    for path in sorted(directory.glob("dead-*.pickle")):
        for reason, count in pickle.loads(path.read_bytes()).items():
            dead[reason] = dead.get(reason, 0) + count
    alerts.sort(key=lambda a: (a.ts, a.id))
    return Replayed(dict(sorted(leads.items())), alerts, dict(sorted(dead.items())), seconds)


class _Read:
    """Events this process's source partitions have read (reported to the caller)."""

    count = 0


class _PartReader(StatefulSourcePartition[Any, None]):
    def __init__(self, path: Path) -> None:
        self._lines = read_part(path)
        self._partition = int(path.stem.split("-")[1])
        self._offset = 0

    def next_batch(self) -> list[Any]:
        batch = []
        for received, kind, raw in self._lines:
            batch.append(
                KafkaSourceMessage(
                    key=MODEL_CHANGE_KEY if kind == MARKER else None,
                    value=raw,
                    topic="history",
                    partition=self._partition,
                    offset=self._offset,
                    timestamp=(1, received),
                )
            )
            self._offset += 1
            if len(batch) == BATCH:
                break
        if not batch:
            raise StopIteration
        _Read.count += sum(1 for message in batch if message.key is None)
        return batch

    def snapshot(self) -> None:
        return None


class PartsSource(FixedPartitionedSource[Any, None]):
    """The part files of a recorded history, one partition each."""

    def __init__(self, parts: list[Path]) -> None:
        self._parts = {path.name: path for path in parts}

    def list_parts(self) -> list[str]:
        """The part files' names."""
        return sorted(self._parts)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _PartReader:
        """A reader of one part file."""
        return _PartReader(self._parts[for_part])


class _Collected(StatelessSinkPartition[Any]):
    """Folds what a worker writes, and leaves the result in the folder when the run ends."""

    def __init__(self, path: Path, fold: Callable[[list[Any]], None], result: Any) -> None:
        self._path = path
        self._fold = fold
        self._result = result

    def write_batch(self, items: list[Any]) -> None:
        self._fold(items)

    def close(self) -> None:
        self._path.write_bytes(pickle.dumps(self._result))


class LeadsSink(DynamicSink[ProfileWrite]):
    """Keeps each known contact's `LeadRecord` (anonymous visitors are not leads)."""

    def __init__(self, directory: Path, ages_ms: tuple[int, ...]) -> None:
        self._directory = directory
        self._ages_ms = ages_ms

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Collected:
        """One worker's records."""
        leads: dict[str, LeadRecord] = {}
        ages = self._ages_ms

        def fold(writes: list[ProfileWrite]) -> None:
            for write in writes:
                person = write.person
                if person.startswith(ANONYMOUS_PREFIX):
                    continue
                if write.view is None:
                    leads.pop(person, None)  # merged into another lead
                elif person in leads:
                    leads[person].add(write.view, ages)
                else:
                    leads[person] = LeadRecord.first(write.view, ages)

        return _Collected(self._directory / f"leads-{worker_index}.pickle", fold, leads)


class AlertsSink(DynamicSink[KafkaSinkMessage[bytes, bytes]]):
    """Keeps every alert, with the rep routing would have told."""

    def __init__(self, directory: Path, routing: Routing) -> None:
        self._directory = directory
        self._routing = routing

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Collected:
        """One worker's alerts."""
        alerts: list[AlertRecord] = []
        routing = self._routing

        def fold(messages: list[KafkaSinkMessage[bytes, bytes]]) -> None:
            for message in messages:
                alert = codec.loads(message.value)
                subject = alert["contact"] or alert["account"] or ""
                rep = route(alert["profile"], routing)
                alerts.append(
                    AlertRecord(
                        alert["id"],
                        alert["kind"],
                        alert["ts"],
                        subject,
                        rep,
                        alert["grade"],
                        alert["reason"],
                    )
                )

        return _Collected(self._directory / f"alerts-{worker_index}.pickle", fold, alerts)


class DeadLettersSink(DynamicSink[KafkaSinkMessage[bytes | None, bytes]]):
    """Counts dead letters by reason."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Collected:
        """One worker's counts."""
        counts: dict[str, int] = {}

        def fold(letters: list[KafkaSinkMessage[bytes | None, bytes]]) -> None:
            for letter in letters:
                reason = str(codec.loads(letter.value).get("reason"))
                counts[reason] = counts.get(reason, 0) + 1

        return _Collected(self._directory / f"dead-{worker_index}.pickle", fold, counts)


def _report_progress(path: Path) -> None:
    while True:
        path.write_text(str(_Read.count))
        time.sleep(PROGRESS_EVERY_S)


def _models(job: Job) -> Models:
    if job.model is not None:
        return Models(load_scoring_model(job.model), fixed=True)
    base = load_scoring_model(job.settings.scoring_path)
    return Models(base, fetch_from_topic(job.settings))


def run_process(directory: Path, process_id: int) -> None:
    """One replay process: build the flow on the job's parts and run it to their end."""
    job: Job = pickle.loads((directory / "job.pickle").read_bytes())
    collect_rarely()  # as `python -m dataflows` does
    progress = directory / f"progress-{process_id}"
    threading.Thread(target=_report_progress, args=(progress,), daemon=True).start()
    flow = build_flow(
        Settings(),
        workers=job.processes * job.workers_per_process,
        events=PartsSource(job.parts),
        profiles=LeadsSink(directory, job.ages_ms),
        alerts=AlertsSink(directory, load_routing(job.routing)),
        dead_letters=DeadLettersSink(directory),
        models=_models(job),
        visitor_profiles=False,
        refreshed_views=False,
    )
    cluster_main(flow, job.addresses, process_id, worker_count_per_proc=job.workers_per_process)
    progress.write_text(str(_Read.count))


if __name__ == "__main__":
    run_process(Path(sys.argv[1]), int(sys.argv[2]))
