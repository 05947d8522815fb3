"""`GET /v1/reps/<rep>/events`: server-sent events from the rep's alert stream (resumable
with `Last-Event-ID`); without it, the last 20 alerts first."""

from __future__ import annotations

import asyncio
from asyncio import FIRST_COMPLETED
from typing import Final, cast

from alerts.access import Access
from alerts.live import Subscription, entry_key, valid_entry_id
from alerts.store import ReadModel
from runtime.asgi import HTTPError, Receive, Send
from runtime.router import Request, Route

REPLAYED_ON_CONNECT: Final = 20
HEARTBEAT_S: Final = 15.0
MAX_CATCH_UP: Final = 1000
SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]
Entries = list[tuple[bytes, dict[bytes, bytes]]]


class AlertEvents:
    """A rep's alerts as they are delivered, caught up first."""

    def __init__(self, access: Access, store: ReadModel) -> None:
        self._access = access
        self._store = store

    def routes(self) -> list[Route]:
        """The event stream."""
        return [Route("GET", "/v1/reps/{rep}/events", self._events)]

    async def _events(self, request: Request, send: Send) -> None:
        rep = request.params["rep"]
        self._access.require_rep(request, rep)
        stream = self._store.keys.rep_alerts(rep)
        last_id = (request.header(b"last-event-id") or b"").decode("latin-1") or request.query.get(
            "last_id", ""
        )
        if last_id and not valid_entry_id(last_id):
            raise HTTPError(400, "Last-Event-ID must be an alert id such as 1700000000000-0")
        client = self._store.client
        async with self._store.feeds.subscribe(stream) as subscription:
            # Subscribed first, then caught up: what arrives meanwhile comes through both
            # and is sent once.
            if last_id:
                missed = cast(
                    Entries, await client.xrange(stream, min=f"({last_id}", count=MAX_CATCH_UP)
                )
            else:
                recent = await client.xrevrange(stream, count=REPLAYED_ON_CONNECT)
                missed = list(reversed(cast(Entries, recent)))
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await _send_events(send, missed)
            sent = missed[-1][0] if missed else (last_id.encode() or b"0-0")
            await _stream(request.receive, send, subscription, sent)
        await send({"type": "http.response.body", "body": b""})


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
