"""The rep service: the dispatcher and webhook sender (background threads), the reps' live
page and the rep-facing JSON API.

Every data endpoint needs a token (`Authorization: Bearer <token>` or `?token=`): a rep's
own token shows that rep's alerts and leads only; the admin token shows everything.

- `GET /reps/<rep>?token=`: the rep's live page.
- `GET /v1/reps/<rep>/events`: server-sent events from the rep's alert stream (resumable
  with `Last-Event-ID`); without it, the last 20 alerts first.
- `GET /v1/reps/<rep>/hot`: the rep's leads active in the last 30 minutes, hottest first.
- `GET /v1/alerts?rep=<rep>&limit=N`: the rep's latest alerts, newest first.
- `GET /v1/profiles/<person>`: a lead's profile.
- `GET /v1/webhooks/dead-letters?limit=N`: webhook calls that failed every attempt (admin).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from asyncio import FIRST_COMPLETED
from importlib import resources
from typing import Any, Final, cast
from urllib.parse import parse_qs

import redis
import redis.asyncio as aioredis

from alerts.dispatcher import AlertConsumer, Dispatcher
from alerts.live import LiveFeeds, Subscription, entry_key, valid_entry_id
from alerts.outbox import WebhookSender
from config.routing import Routing, load_routing, route
from config.settings import Settings
from contracts import codec
from contracts.read_model import RedisKeys, decode_profile
from runtime.asgi import (
    HTTPError,
    Receive,
    Scope,
    Send,
    header,
    respond,
    respond_error,
    respond_json,
    respond_metrics,
    run_lifespan,
)
from runtime.worker import BackgroundWorker

PROFILE_PREFIX: Final = "/v1/profiles/"
DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
REPLAYED_ON_CONNECT: Final = 20
HOT_WINDOW_MS: Final = 30 * 60_000
HEARTBEAT_S: Final = 15.0
MAX_CATCH_UP: Final = 1000
# Reads of the read model fail fast when Redis does not answer: a 503, not a hung page.
REDIS_TIMEOUT_S: Final = 2.0
REDIS_CONNECTIONS: Final = 50
SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]
STATIC: Final = {"rep.js": b"text/javascript", "rep.css": b"text/css"}
PAGE_HEADERS: Final = [
    (b"content-security-policy", b"default-src 'self'; object-src 'none'; base-uri 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
]
Entries = list[tuple[bytes, dict[bytes, bytes]]]
READ_MODEL_DOWN: Final = "the read model (Redis) is not answering, retry shortly"


class RepService:
    """The rep-facing ASGI app; runs the dispatcher and webhook sender unless `dispatch=False`."""

    def __init__(self, settings: Settings, *, dispatch: bool = True) -> None:
        self._settings = settings
        self._keys = RedisKeys(settings.redis_prefix)
        self._routing: Routing = load_routing(settings.routing_path)
        self._dispatch = dispatch
        self._redis: aioredis.Redis | None = None
        self._live: LiveFeeds | None = None
        self._workers: list[BackgroundWorker] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(receive, send, self._startup, self._shutdown)
            return
        try:
            await self._route(scope, receive, send)
        except HTTPError as error:
            await respond_error(send, error)
        except (redis.ConnectionError, redis.TimeoutError):
            await respond_error(send, HTTPError(503, READ_MODEL_DOWN, [(b"retry-after", b"2")]))

    async def _startup(self) -> None:
        # A burst of pages opening waits its turn for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            self._settings.redis,
            max_connections=REDIS_CONNECTIONS,
            timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._live = LiveFeeds(self._redis)
        if self._dispatch:
            client = redis.Redis.from_url(self._settings.redis)
            dispatcher = Dispatcher(client, self._keys, self._routing)
            self._workers = [
                AlertConsumer(self._settings, dispatcher),
                WebhookSender(client, self._keys, self._routing, self._settings),
            ]
            for worker in self._workers:
                worker.start()

    async def _shutdown(self) -> None:
        for worker in self._workers:
            worker.stop()
        if self._live is not None:
            await self._live.close()
        if self._redis is not None:
            await self._redis.aclose()

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["method"] != "GET":
            raise HTTPError(405, "the rep service is read-only (GET)")
        parts = path.strip("/").split("/")
        if path == "/metrics":
            await respond_metrics(send)
        elif path == "/healthz":
            await respond_json(send, 200, {"ok": True})
        elif len(parts) == 2 and parts[0] == "static" and parts[1] in STATIC:
            await _static(send, parts[1])
        elif len(parts) == 2 and parts[0] == "reps":
            self._require_rep(scope, parts[1])
            await _static(send, "rep.html")
        elif len(parts) == 4 and parts[:2] == ["v1", "reps"] and parts[3] == "events":
            self._require_rep(scope, parts[2])
            await self._events(scope, receive, send, parts[2])
        elif len(parts) == 4 and parts[:2] == ["v1", "reps"] and parts[3] == "hot":
            self._require_rep(scope, parts[2])
            await respond_json(send, 200, await self._hot(parts[2]))
        elif path.startswith(PROFILE_PREFIX) and len(path) > len(PROFILE_PREFIX):
            await respond_json(send, 200, await self._profile(scope, path[len(PROFILE_PREFIX) :]))
        elif path == "/v1/alerts":
            await respond_json(send, 200, await self._alerts(scope))
        elif path == "/v1/webhooks/dead-letters":
            self._require_admin(scope)
            await respond_json(send, 200, await self._dead_letters(scope))
        else:
            raise HTTPError(404, f"no endpoint GET {path}")

    def _token(self, scope: Scope) -> str:
        bearer = header(scope, b"authorization") or b""
        if bearer[:7].lower() == b"bearer ":
            return bearer[7:].decode("latin-1").strip()
        return _query(scope, "token")

    def _is_admin(self, token: str) -> bool:
        return bool(token) and _same(token, self._routing.admin_token)

    def _require_admin(self, scope: Scope) -> None:
        if not self._is_admin(self._token(scope)):
            raise HTTPError(401, "a valid admin token is required")

    def _require_rep(self, scope: Scope, rep_id: str) -> None:
        """The caller is this rep (its token) or an admin; anything else is 401, no data."""
        token = self._token(scope)
        rep = self._routing.reps.get(rep_id)
        if self._is_admin(token):
            if rep is None:
                raise HTTPError(404, f"no rep {rep_id!r} in routing.toml")
            return
        if rep is None or not token or not _same(token, rep.token):
            raise HTTPError(401, "a valid token for this rep is required")

    async def _events(self, scope: Scope, receive: Receive, send: Send, rep: str) -> None:
        stream = self._keys.rep_alerts(rep)
        last_id = (header(scope, b"last-event-id") or b"").decode("latin-1") or _query(
            scope, "last_id"
        )
        if last_id and not valid_entry_id(last_id):
            raise HTTPError(400, "Last-Event-ID must be an alert id such as 1700000000000-0")
        async with self._feeds.subscribe(stream) as subscription:
            # Subscribed first, then caught up: what arrives meanwhile comes through both
            # and is sent once.
            if last_id:
                missed = cast(
                    Entries,
                    await self._client.xrange(stream, min=f"({last_id}", count=MAX_CATCH_UP),
                )
            else:
                recent = await self._client.xrevrange(stream, count=REPLAYED_ON_CONNECT)
                missed = list(reversed(cast(Entries, recent)))
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await _send_events(send, missed)
            sent = missed[-1][0] if missed else (last_id.encode() or b"0-0")
            await _stream(receive, send, subscription, sent)
        await send({"type": "http.response.body", "body": b""})

    async def _hot(self, rep: str) -> dict[str, Any]:
        since = int(time.time() * 1000) - HOT_WINDOW_MS
        people = cast(
            list[bytes], await self._client.zrangebyscore(self._keys.rep_recent(rep), since, "+inf")
        )
        pipe = self._client.pipeline(transaction=False)
        for person in people:
            pipe.hgetall(self._keys.profile(person.decode()))
        profiles = [decode_profile(fields) for fields in await pipe.execute() if fields]
        profiles.sort(key=lambda p: -float(p.get("engagement") or 0))
        return {"rep": rep, "name": self._routing.reps[rep].name, "leads": profiles}

    async def _profile(self, scope: Scope, person: str) -> dict[str, Any]:
        token = self._token(scope)
        if not token or not (self._is_admin(token) or self._rep_of_token(token)):
            raise HTTPError(401, "a valid token is required")
        fields = cast(dict[bytes, bytes], await self._client.hgetall(self._keys.profile(person)))
        profile = decode_profile(fields) if fields else None
        if profile is None or not (
            self._is_admin(token) or route(profile, self._routing) == self._rep_of_token(token)
        ):
            raise HTTPError(404, f"no profile for {person!r}")
        return profile

    def _rep_of_token(self, token: str) -> str | None:
        for rep in self._routing.reps.values():
            if _same(token, rep.token):
                return rep.id
        return None

    async def _alerts(self, scope: Scope) -> dict[str, Any]:
        rep = _query(scope, "rep")
        if not rep:
            raise HTTPError(400, "rep is required (?rep=<rep id>)")
        self._require_rep(scope, rep)
        limit = _limit(_query(scope, "limit") or str(DEFAULT_LIMIT))
        stream = self._keys.rep_alerts(rep)
        entries = cast(Entries, await self._client.xrevrange(stream, count=limit))
        alerts = [codec.loads(fields[b"alert"]) for _, fields in entries]
        return {"rep": rep, "alerts": alerts}

    async def _dead_letters(self, scope: Scope) -> dict[str, Any]:
        limit = _limit(_query(scope, "limit") or str(DEFAULT_LIMIT))
        raw = cast(list[bytes], await self._client.lrange(self._keys.webhook_dead, 0, limit - 1))
        return {"dead_letters": [codec.loads(item) for item in raw]}

    @property
    def _client(self) -> aioredis.Redis:
        assert self._redis is not None, "the lifespan opens Redis"
        return self._redis

    @property
    def _feeds(self) -> LiveFeeds:
        assert self._live is not None, "the lifespan starts the live feeds"
        return self._live


async def _stream(receive: Receive, send: Send, subscription: Subscription, sent: bytes) -> None:
    """New alerts as they come, a heartbeat comment when none came for a while, until the
    page goes (or falls too far behind: its browser reconnects and resumes)."""
    gone = asyncio.create_task(_disconnected(receive))
    try:
        while not gone.done():
            get = asyncio.create_task(subscription.entries.get())
            await asyncio.wait({get, gone}, timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                if not gone.done():
                    await send({"type": "http.response.body", "body": b": ", "more_body": True})
                continue
            entries = get.result()
            if entries is None:
                return
            fresh = [entry for entry in entries if entry_key(entry[0]) > entry_key(sent)]
            if fresh:
                await _send_events(send, fresh)
                sent = fresh[-1][0]
    finally:
        gone.cancel()


async def _send_events(send: Send, entries: Entries) -> None:
    chunks = [
        b"id: " + entry_id + b"\nevent: alert\ndata: " + fields[b"alert"] + b"\n\n"
        for entry_id, fields in entries
    ]
    if chunks:
        await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _static(send: Send, name: str) -> None:
    body = (resources.files("alerts") / "static" / name).read_bytes()
    content_type = STATIC.get(name, b"text/html; charset=utf-8")
    await respond(send, 200, body, PAGE_HEADERS, content_type=content_type)


def _query(scope: Scope, name: str) -> str:
    values = parse_qs(scope["query_string"].decode("latin-1")).get(name)
    return values[0] if values else ""


def _same(given: str, secret: str) -> bool:
    """Constant-time comparison of a token as given (any text) with a secret."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), secret.encode())


def _limit(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise HTTPError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def create_app() -> RepService:
    """The app uvicorn serves (`uvicorn --factory alerts.api:create_app`)."""
    return RepService(Settings.from_environment())
