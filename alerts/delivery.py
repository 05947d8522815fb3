"""Alert delivery: the dispatcher (reads `dbl.alerts`, routes and stores each alert once)
and the webhook sender, as background threads of one process."""

from __future__ import annotations

import redis

from alerts.dispatcher import AlertConsumer, Dispatcher
from alerts.outbox import WebhookSender
from config.routing import load_routing
from config.settings import Settings
from contracts.read_model import RedisKeys
from runtime.worker import BackgroundWorker


class Delivery:
    """Starts and stops the dispatcher and the webhook sender. One per deployment is enough;
    a second one delivers nothing twice (delivery is idempotent per alert id)."""

    def __init__(self, settings: Settings) -> None:
        routing = load_routing(settings.routing_path)
        keys = RedisKeys(settings.redis_prefix)
        client = redis.Redis.from_url(settings.redis)
        dispatcher = Dispatcher(client, keys, routing)
        self._workers: list[BackgroundWorker] = [
            AlertConsumer(settings, dispatcher),
            WebhookSender(client, keys, routing, settings),
        ]

    def start(self) -> None:
        """Start delivering."""
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        """Stop, waiting (bounded) for work in hand."""
        for worker in self._workers:
            worker.stop()
