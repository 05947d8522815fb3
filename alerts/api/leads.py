"""The rep-facing JSON API: `GET /v1/reps/<rep>/hot` (the rep's leads active in the last 30
minutes, hottest first), `GET /v1/reps/<rep>/present` (the rep's leads on the site now,
latest first), `GET /v1/alerts?rep=<rep>&limit=N` (the rep's latest alerts,
newest first), `GET /v1/profiles/<person>` (a lead's profile),
`GET /v1/alerts/suppressed?limit=N` (alerts the CRM's word on their lead kept from the rep,
newest first, admin), and `GET /v1/webhooks/dead-letters?limit=N` (webhook calls that
failed every attempt, admin)."""

from __future__ import annotations

import time
from typing import Final, cast

from alerts.access import Access
from alerts.store import ReadModel
from config.routing import Routing, route
from contracts import codec
from contracts.read_model import decode_profile, hottest_first, is_on_site, profiles_of
from runtime.asgi import HTTPError, Send, respond_json
from runtime.router import Request, Route

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
HOT_WINDOW_MS: Final = 30 * 60_000
Entries = list[tuple[bytes, dict[bytes, bytes]]]


class Leads:
    """What the read model knows of a rep's leads and alerts."""

    def __init__(self, access: Access, store: ReadModel, routing: Routing) -> None:
        self._access = access
        self._store = store
        self._routing = routing

    def routes(self) -> list[Route]:
        """Hot leads, alerts, profiles, dead webhook calls."""
        return [
            Route("GET", "/v1/reps/{rep}/hot", self._hot),
            Route("GET", "/v1/reps/{rep}/present", self._present),
            Route("GET", "/v1/alerts", self._alerts),
            Route("GET", "/v1/alerts/suppressed", self._suppressed),
            Route("GET", "/v1/profiles/{person:path}", self._profile),
            Route("GET", "/v1/webhooks/dead-letters", self._dead_letters),
        ]

    async def _hot(self, request: Request, send: Send) -> None:
        rep = request.params["rep"]
        self._access.require_rep(request, rep)
        client, keys = self._store.client, self._store.keys
        since = int(time.time() * 1000) - HOT_WINDOW_MS
        people = cast(list[bytes], await client.zrangebyscore(keys.rep_recent(rep), since, "+inf"))
        profiles = hottest_first(profiles_of(await self._read(people)))
        answer = {"rep": rep, "name": self._routing.reps[rep].name, "leads": profiles}
        await respond_json(send, 200, answer)

    async def _present(self, request: Request, send: Send) -> None:
        rep = request.params["rep"]
        self._access.require_rep(request, rep)
        client, keys = self._store.client, self._store.keys
        now, timeout = int(time.time() * 1000), int(self._routing.presence_timeout_ms)
        key = keys.rep_present(rep)
        people = cast(list[bytes], await client.zrevrangebyscore(key, "+inf", now - timeout))
        profiles = profiles_of(await self._read(people))
        present = [
            p
            for p in profiles
            if is_on_site(p.get("presence"), now, timeout) and route(p, self._routing) == rep
        ]
        answer = {"rep": rep, "timeout_seconds": timeout / 1000, "leads": present}
        await respond_json(send, 200, answer)

    async def _read(self, people: list[bytes]) -> list[dict[bytes, bytes]]:
        """The profile hashes of these people, in one round trip (empty: gone since)."""
        pipe = self._store.client.pipeline(transaction=False)
        for person in people:
            pipe.hgetall(self._store.keys.profile(person.decode()))
        return cast(list[dict[bytes, bytes]], await pipe.execute())

    async def _profile(self, request: Request, send: Send) -> None:
        person = request.params["person"]
        access = self._access
        token = access.token(request)
        if not token or not (access.is_admin(token) or access.rep_of(token)):
            raise HTTPError(401, "a valid token is required")
        key = self._store.keys.profile(person)
        fields = cast(dict[bytes, bytes], await self._store.client.hgetall(key))
        profile = decode_profile(fields) if fields else None
        if profile is None or not (
            access.is_admin(token) or route(profile, self._routing) == access.rep_of(token)
        ):
            raise HTTPError(404, f"no profile for {person!r}")
        await respond_json(send, 200, profile)

    async def _alerts(self, request: Request, send: Send) -> None:
        rep = request.query.get("rep", "")
        if not rep:
            raise HTTPError(400, "rep is required (?rep=<rep id>)")
        self._access.require_rep(request, rep)
        limit = _limit(request)
        stream = self._store.keys.rep_alerts(rep)
        entries = cast(Entries, await self._store.client.xrevrange(stream, count=limit))
        alerts = [codec.loads(fields[b"alert"]) for _, fields in entries]
        await respond_json(send, 200, {"rep": rep, "alerts": alerts})

    async def _suppressed(self, request: Request, send: Send) -> None:
        self._access.require_admin(request)
        limit = _limit(request)
        stream = self._store.keys.suppressed
        entries = cast(Entries, await self._store.client.xrevrange(stream, count=limit))
        kept = [
            {
                "rep": fields[b"rep"].decode(),
                "state": fields[b"state"].decode(),
                "alert": codec.loads(fields[b"alert"]),
            }
            for _, fields in entries
        ]
        await respond_json(send, 200, {"suppressed": kept})

    async def _dead_letters(self, request: Request, send: Send) -> None:
        self._access.require_admin(request)
        limit = _limit(request)
        key = self._store.keys.webhook_dead
        raw = cast(list[bytes], await self._store.client.lrange(key, 0, limit - 1))
        await respond_json(send, 200, {"dead_letters": [codec.loads(item) for item in raw]})


def _limit(request: Request) -> int:
    raw = request.query.get("limit") or str(DEFAULT_LIMIT)
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise HTTPError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)
