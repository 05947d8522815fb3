"""The rep service: the reps' live page, the rep-facing JSON API and reps' feedback.

Every data endpoint needs a token (`Authorization: Bearer <token>` or `?token=`): a rep's
own token shows that rep's alerts and leads only; the admin token shows everything.

- `GET /reps/<rep>?token=`: the rep's live page (`api/pages.py`).
- `GET /v1/reps/<rep>/events`: server-sent events from the rep's alert stream (`api/events.py`).
- `GET /v1/reps/<rep>/hot`, `/v1/alerts`, `/v1/profiles/<person>`,
  `/v1/webhooks/dead-letters` (`api/leads.py`).
- `GET /v1/shadow`, `/ops/shadow?token=`: the live model against a shadow model (admin,
  `api/shadow.py`).
- `POST /v1/alerts/<id>/feedback`, `POST /v1/slack/actions`, `GET /v1/alerts/precision`:
  reps' feedback on alerts and the precision it measures (`api/feedback.py`).
- `GET /metrics`, `/healthz`.

The app reads, and writes only reps' feedback (to the events log, then Redis): any
number of replicas may serve it. Alerts are delivered by the
dispatcher (`alerts/delivery.py`), a process of its own or beside the API in
`python -m alerts`.
"""

from __future__ import annotations

from typing import Final

import redis

from alerts.access import Access
from alerts.api.events import AlertEvents
from alerts.api.feedback import Feedback
from alerts.api.leads import Leads
from alerts.api.pages import Pages
from alerts.api.shadow import ShadowComparison
from alerts.event_log import EventLog
from alerts.store import ReadModel
from config.routing import load_routing
from config.settings import Settings
from contracts.read_model import RedisKeys
from runtime.asgi import (
    HTTPError,
    Receive,
    Scope,
    Send,
    respond_error,
    run_lifespan,
)
from runtime.router import Request, Route, Router, operations_routes

READ_MODEL_DOWN: Final = "the read model (Redis) is not answering, retry shortly"


class RepService:
    """The rep-facing ASGI app."""

    def __init__(self, settings: Settings) -> None:
        routing = load_routing(settings.routing_path)
        access = Access(routing)
        self._store = ReadModel(settings.redis, RedisKeys(settings.redis_prefix))
        self._log = EventLog(settings.brokers, settings.events_topic)
        self.routes: list[Route] = [
            *Pages(access).routes(),
            *AlertEvents(access, self._store).routes(),
            *Leads(access, self._store, routing).routes(),
            *ShadowComparison(access, self._store).routes(),
            *Feedback(access, self._store, routing, self._log).routes(),
            *operations_routes(),
        ]
        self._router = Router(self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self._startup, self._shutdown)
            return
        request = Request.parse(scope, receive)
        try:
            handler, request.params = self._router.find(request.method, request.path)
            await handler(request, send)
        except HTTPError as error:
            await respond_error(send, error)
        except (redis.ConnectionError, redis.TimeoutError):
            await respond_error(send, HTTPError(503, READ_MODEL_DOWN, [(b"retry-after", b"2")]))

    async def _startup(self) -> None:
        self._store.open()

    async def _shutdown(self) -> None:
        await self._store.close()
        self._log.close()


def create_app() -> RepService:
    """The app uvicorn serves (`uvicorn --factory alerts.app:create_app`)."""
    return RepService(Settings.from_environment())
