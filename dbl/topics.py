"""Creating the topics DBL uses (idempotent: existing topics are left as they are)."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from config.settings import Settings
from contracts import kafka
from contracts.errors import DBLError

TIMEOUT_S = 15.0


class TopicError(DBLError):
    """A topic could not be created; check the broker address and its permissions."""


def ensure_topics(settings: Settings) -> None:
    """Create the events (N partitions), alerts, DLQ and models topics unless they exist.
    Published models are kept for ever: every marker in the events log names one."""
    wanted = [
        NewTopic(settings.events_topic, settings.events_partitions, 1),
        NewTopic(settings.alerts_topic, settings.events_partitions, 1),
        NewTopic(settings.dlq_topic, 1, 1),
        NewTopic(settings.models_topic, 1, 1, config={"retention.ms": "-1"}),
    ]
    admin = AdminClient(kafka.admin_config(settings.brokers))
    for name, future in admin.create_topics(wanted, request_timeout=TIMEOUT_S).items():
        try:
            future.result(TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicError(f"cannot create topic {name}: {error.str()}") from exc
