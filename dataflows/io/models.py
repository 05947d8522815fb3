"""Published models, fetched from the models topic by version."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from config.errors import ConfigError
from config.scoring import ScoringModel, load_model_files
from config.settings import Settings
from contracts import kafka
from contracts.models import BadPublication, Publication, decode_publication, files_of
from dataflows.models import UnknownModel

log = logging.getLogger("dbl.dataflow")

POLL_S: Final = 0.5
# How long to look for a version before the signals naming it go to the DLQ.
FETCH_TIMEOUT_S: Final = 60.0


def publications(settings: Settings, timeout_s: float = FETCH_TIMEOUT_S) -> list[Publication]:
    """Every publication on the models topic, oldest first (records that do not decode are
    logged and left out)."""
    topic = settings.models_topic
    consumer = Consumer(kafka.reader_config(settings.brokers, "dbl-models"))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        parts = sorted(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        found: list[Publication] = []
        ended: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(ended) < len(parts) and time.monotonic() < deadline:
            message = consumer.poll(POLL_S)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ended.add(message.partition() or 0)
                continue
            try:
                found.append(decode_publication(message.value()))
            except BadPublication as exc:
                log.warning("models topic, offset %s: %s", message.offset(), exc)
        return found
    finally:
        consumer.close()


def fetch_from_topic(settings: Settings) -> Callable[[str], ScoringModel]:
    """A fetch for `Models`: the model of a version, from its latest publication."""

    def fetch(version: str) -> ScoringModel:
        deadline = time.monotonic() + FETCH_TIMEOUT_S
        while time.monotonic() < deadline:
            found = [p for p in publications(settings) if p["version"] == version]
            if found:
                try:
                    return load_model_files(files_of(found[-1]))
                except ConfigError as exc:
                    raise UnknownModel(f"model {version} does not load: {exc}") from exc
            log.warning("model %s is not on %s yet; looking again", version, settings.models_topic)
            time.sleep(1.0)
        raise UnknownModel(f"model {version} is not on {settings.models_topic}")

    return fetch
