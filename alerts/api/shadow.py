"""`GET /v1/shadow` (admin): the live model against the shadow model on the same stream,
over the last day: alerts only one of them raised, and leads whose grade differs. `GET
/ops/shadow?token=` shows it as a page that refreshes itself."""

from __future__ import annotations

import time
from typing import Any, Final, cast

from alerts.access import Access
from alerts.api.pages import page_file
from alerts.shadow import compare
from alerts.store import ReadModel
from contracts import codec
from contracts.read_model import RedisKeys, decode_profile
from runtime.asgi import Send, respond_json
from runtime.router import Request, Route

WINDOW_MS: Final = 24 * 3_600_000
# Alerts read from each raised stream, and hottest leads from each model, at most.
MAX_ALERTS: Final = 10_000
HOTTEST: Final = 500
Entries = list[tuple[bytes, dict[bytes, bytes]]]


class ShadowComparison:
    """The comparison page and its JSON."""

    def __init__(self, access: Access, store: ReadModel) -> None:
        self._access = access
        self._store = store

    def routes(self) -> list[Route]:
        """The JSON and the page."""
        return [
            Route("GET", "/v1/shadow", self._comparison),
            Route("GET", "/ops/shadow", self._page),
        ]

    async def _page(self, request: Request, send: Send) -> None:
        self._access.require_admin(request)
        await page_file(send, "shadow.html")

    async def _comparison(self, request: Request, send: Send) -> None:
        self._access.require_admin(request)
        live, shadow = self._store.keys, self._store.keys.shadow
        since = int(time.time() * 1000) - WINDOW_MS
        raised = [await self._raised(keys, since) for keys in (live, shadow)]
        profiles = await self._profiles(live, shadow)
        answer = {
            "window_hours": WINDOW_MS // 3_600_000,
            "shadow_running": bool(raised[1]) or any(p[1] for p in profiles.values()),
            **compare(raised[0], raised[1], profiles),
        }
        await respond_json(send, 200, answer)

    async def _raised(self, keys: RedisKeys, since: int) -> list[dict[str, Any]]:
        client = self._store.client
        entries = cast(
            Entries, await client.xrange(keys.raised, min=f"{since}-0", count=MAX_ALERTS)
        )
        return [codec.loads(fields[b"alert"]) for _, fields in entries]

    async def _profiles(
        self, live: RedisKeys, shadow: RedisKeys
    ) -> dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
        client = self._store.client
        people: set[bytes] = set()
        for keys in (live, shadow):
            people |= set(cast(list[bytes], await client.zrevrange(keys.hot_leads, 0, HOTTEST - 1)))
        ordered = sorted(p.decode() for p in people)
        pipe = client.pipeline(transaction=False)
        for person in ordered:
            pipe.hgetall(live.profile(person))
            pipe.hgetall(shadow.profile(person))
        found = await pipe.execute()
        return {
            person: (
                decode_profile(found[2 * n]) if found[2 * n] else None,
                decode_profile(found[2 * n + 1]) if found[2 * n + 1] else None,
            )
            for n, person in enumerate(ordered)
        }
