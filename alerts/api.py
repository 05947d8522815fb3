"""The rep service: the dispatcher (in a background thread) and the rep-facing JSON API.

- `GET /v1/profiles/<person>`: the person's profile from the read model.
- `GET /v1/alerts?rep=<rep>&limit=N`: the rep's latest alerts, newest first.
"""

from __future__ import annotations

from typing import Any, Final, cast
from urllib.parse import parse_qs

import redis
import redis.asyncio as aioredis

from alerts.dispatcher import AlertConsumer, Dispatcher
from config.routing import Routing, load_routing
from config.settings import Settings
from dataflows.sinks import decode_profile
from dbl import codec
from dbl.asgi import (
    HTTPError,
    Receive,
    Scope,
    Send,
    respond_error,
    respond_json,
    respond_metrics,
    run_lifespan,
)
from dbl.redis_keys import RedisKeys

PROFILE_PREFIX: Final = "/v1/profiles/"
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
Entries = list[tuple[bytes, dict[bytes, bytes]]]


class RepService:
    """The rep-facing ASGI app; runs the dispatcher unless `dispatch=False`."""

    def __init__(self, settings: Settings, *, dispatch: bool = True) -> None:
        self._settings = settings
        self._keys = RedisKeys(settings.redis_prefix)
        self._routing: Routing = load_routing(settings.config_dir / "routing.toml")
        self._dispatch = dispatch
        self._redis: aioredis.Redis | None = None
        self._consumer: AlertConsumer | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self._startup, self._shutdown)
            return
        try:
            await self._route(scope, send)
        except HTTPError as error:
            await respond_error(send, error)

    async def _startup(self) -> None:
        self._redis = aioredis.Redis.from_url(self._settings.redis)
        if self._dispatch:
            client = redis.Redis.from_url(self._settings.redis)
            dispatcher = Dispatcher(client, self._keys, self._routing)
            self._consumer = AlertConsumer(self._settings, dispatcher)
            self._consumer.start()

    async def _shutdown(self) -> None:
        if self._consumer is not None:
            self._consumer.stop()
        if self._redis is not None:
            await self._redis.aclose()

    async def _route(self, scope: Scope, send: Send) -> None:
        path: str = scope["path"]
        if scope["method"] != "GET":
            raise HTTPError(405, "the rep API is read-only (GET)")
        if path == "/metrics":
            await respond_metrics(send)
        elif path == "/healthz":
            await respond_json(send, 200, {"ok": True})
        elif path.startswith(PROFILE_PREFIX) and len(path) > len(PROFILE_PREFIX):
            await respond_json(send, 200, await self._profile(path[len(PROFILE_PREFIX) :]))
        elif path == "/v1/alerts":
            await respond_json(send, 200, await self._alerts(scope))
        else:
            raise HTTPError(404, f"no endpoint GET {path}")

    async def _profile(self, person: str) -> dict[str, Any]:
        fields = cast(dict[bytes, bytes], await self._client.hgetall(self._keys.profile(person)))
        if not fields:
            raise HTTPError(404, f"no profile for {person!r}")
        return decode_profile(fields)

    async def _alerts(self, scope: Scope) -> dict[str, Any]:
        query = parse_qs(scope["query_string"].decode("latin-1"))
        rep = (query.get("rep") or [""])[0]
        if not rep:
            raise HTTPError(400, "rep is required (?rep=<rep id>)")
        if rep not in self._routing.reps:
            raise HTTPError(404, f"no rep {rep!r} in routing.toml")
        limit = _limit((query.get("limit") or [str(DEFAULT_LIMIT)])[0])
        stream = self._keys.rep_alerts(rep)
        entries = cast(Entries, await self._client.xrevrange(stream, count=limit))
        alerts = [codec.loads(fields[b"alert"]) for _, fields in entries]
        return {"rep": rep, "alerts": alerts}

    @property
    def _client(self) -> aioredis.Redis:
        assert self._redis is not None, "the lifespan opens Redis"
        return self._redis


def _limit(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise HTTPError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def create_app() -> RepService:
    """The app uvicorn serves (`uvicorn --factory alerts.api:create_app`)."""
    return RepService(Settings.from_environment())
