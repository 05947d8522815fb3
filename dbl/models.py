"""`dbl model publish | rollback | list`: versioned scoring models, handed to the running
dataflow through the log.

Publishing validates the model, appends it (its files, who, when, and the backtest that
evaluated it, if given) to the models topic, then writes a marker into every partition of
the events topic. Every signal after the marker in its partition is scored with the new
model, on every worker, live or replayed. A rollback publishes the version that was in
effect before the current one again (the deployment's `scoring.toml` before the first).
"""

from __future__ import annotations

import getpass
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from config.scoring import MODEL_FILE, load_scoring_model, model_files, version_of
from config.settings import Settings
from contracts import codec, kafka
from contracts.errors import DBLError
from contracts.models import (
    MODEL_CHANGE_KEY,
    Action,
    Publication,
    files_of,
    model_change,
    publication,
)
from dataflows.io.models import publications

FLUSH_S = 30.0
# librdkafka's "let the partitioner choose".
ANY_PARTITION = -1


@dataclass(frozen=True, slots=True)
class Published:
    """What a publication did: the version, and how many partitions carry its marker."""

    version: str
    partitions: int
    at: int


def publish(
    settings: Settings,
    path: Path,
    *,
    evaluation: Path | None = None,
    by: str | None = None,
    action: Action = "publish",
) -> Published:
    """Validate the model at `path` and hand it to the running system."""
    files = model_files(path)
    version = version_of(files)
    summary = _evaluation(evaluation, version) if evaluation is not None else None
    at = int(time.time() * 1000)
    record = publication(
        version, files, action=action, by=by or _login(), at=at, evaluation=summary
    )
    producer = Producer(kafka.producer_config(settings.brokers))
    # The model is stored before any marker names it.
    _send(producer, [(settings.models_topic, version.encode(), codec.dumps(record), None)], at)
    partitions = _partitions(producer, settings.events_topic)
    marker = model_change(version, at)
    _send(producer, [(settings.events_topic, MODEL_CHANGE_KEY, marker, p) for p in partitions], at)
    return Published(version, len(partitions), at)


def rollback(settings: Settings, *, by: str | None = None) -> Published:
    """Publish again the version in effect before the current one."""
    stack = in_effect(publications(settings))
    if not stack:
        raise DBLError("nothing was published: the deployment's scoring.toml is in effect")
    if len(stack) == 1:
        return publish(settings, settings.scoring_path, by=by, action="rollback")
    with tempfile.TemporaryDirectory(prefix="dbl-model-") as folder:
        for name, content in files_of(stack[-2]).items():
            (Path(folder) / name).write_bytes(content)
        return publish(settings, Path(folder) / MODEL_FILE, by=by, action="rollback")


def in_effect(records: list[Publication]) -> list[Publication]:
    """The publications still in effect, oldest first: a rollback undoes the latest one.

    >>> p = lambda v, a="publish": {"version": v, "action": a}
    >>> [r["version"] for r in in_effect([p("a"), p("b"), p("c"), p("b", "rollback")])]
    ['a', 'b']
    >>> [r["version"] for r in in_effect([p("a"), p("b"), p("a", "rollback")])]
    ['a']
    """
    stack: list[Publication] = []
    for record in records:
        if record["action"] == "rollback" and stack:
            stack.pop()
            if stack and stack[-1]["version"] == record["version"]:
                continue
        stack.append(record)
    return stack


def listing(settings: Settings) -> list[str]:
    """One line per publication, oldest first, the one in effect marked."""
    records = publications(settings)
    base = load_scoring_model(settings.scoring_path).version
    lines = [f"  {base}  deployment's scoring.toml" + ("  <- in effect" if not records else "")]
    for n, record in enumerate(records):
        when = datetime.fromtimestamp(record["at"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        mark = "  <- in effect" if n == len(records) - 1 else ""
        lines.append(
            f"  {record['version']}  {record['action']:8}  {when} UTC  by {record['by']}"
            f"  {_described(record['evaluation'])}{mark}"
        )
    return lines


def _described(evaluation: dict[str, Any] | None) -> str:
    if not evaluation:
        return "(no evaluation)"
    return (
        f"backtest: {evaluation.get('events')} events, sales_ready precision "
        f"{evaluation.get('precision')} (base rate {evaluation.get('base_rate')}), "
        f"AUC {evaluation.get('auc')}"
    )


def _evaluation(report_path: Path, version: str) -> dict[str, Any]:
    """The figures of a backtest report about this very version."""
    try:
        report = codec.loads(report_path.read_bytes())
        candidate = report["models"]["candidate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DBLError(f"{report_path}: not a backtest report ({exc})") from None
    if candidate.get("version") != version:
        raise DBLError(
            f"{report_path} evaluates model {candidate.get('version')}, not {version}: "
            "backtest this model first"
        )
    outcomes = candidate["outcomes"]
    auc = (outcomes["ranking"].get("auc") or {}).get("score")
    return {
        "events": report["input"]["events"],
        "first_event": report["input"]["first_event"],
        "last_event": report["input"]["last_event"],
        "alerts": candidate["alerts"]["total"],
        "precision": outcomes["sales_ready"]["precision"],
        "recall": outcomes["sales_ready"]["recall"],
        "base_rate": outcomes["base_rate"],
        "auc": auc,
    }


def _partitions(producer: Producer, topic: str) -> list[int]:
    metadata = producer.list_topics(topic, timeout=10).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise DBLError(f"no topic {topic!r} on the broker")
    return sorted(metadata.partitions)


def _send(producer: Producer, records: list[tuple[str, bytes, bytes, int | None]], at: int) -> None:
    """Produce (topic, key, value, partition) records and wait until the broker has them."""
    failed: list[str] = []
    for topic, key, value, partition in records:
        producer.produce(
            topic,
            value,
            key,
            partition=ANY_PARTITION if partition is None else partition,
            timestamp=at,
            on_delivery=lambda err, _msg: failed.append(str(err)) if err else None,
        )
    if producer.flush(FLUSH_S) or failed:
        raise DBLError(f"the broker did not take the records: {failed[:1]}")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
