"""Live pages' alert feeds: one reader per process follows every watched rep's alert stream
and hands new entries to each open page, so a thousand open pages cost one Redis
connection, not a thousand (each blocked on its own read).

A page subscribes first, then catches up from where it was (`Last-Event-ID`) with one
read of its own, and skips what the reader hands it again: nothing is lost between the
two and nothing comes twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any, Final, cast

import redis
import redis.asyncio as aioredis

log = logging.getLogger("dbl.alerts")

Entry = tuple[bytes, dict[bytes, bytes]]
# How long the reader blocks in one read: a page that subscribes to a rep nobody watched
# waits at most this long for the reader to follow that stream too.
BLOCK_MS: Final = 500
READ_COUNT: Final = 500
# A page that cannot keep up is cut off (its browser reconnects and resumes) rather than
# holding alerts in memory without bound.
PAGE_BACKLOG: Final = 1000
RETRY_S: Final = 1.0
ENTRY_ID: Final = re.compile(rb"\d{1,20}-\d{1,20}")
# Each part of a stream entry id is a 64-bit number; past the last id nothing comes.
LAST_ID: Final = (2**64 - 1, 2**64 - 1)


def entry_key(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id as a number pair, for ordering.

    >>> entry_key(b"1700000000000-2") < entry_key(b"1700000000001-0")
    True
    """
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def valid_entry_id(value: str) -> bool:
    """True for a stream entry id such as `1700000000000-0` (what `Last-Event-ID` holds).

    >>> valid_entry_id("1700000000000-0"), valid_entry_id("garbage"), valid_entry_id("1²-0")
    (True, False, False)
    >>> valid_entry_id("99999999999999999999-0")  # more than 64 bits: Redis refuses it
    False
    """
    raw = value.encode("utf-8", "replace")
    if ENTRY_ID.fullmatch(raw) is None:
        return False
    ms, seq = entry_key(raw)
    return ms <= LAST_ID[0] and seq <= LAST_ID[1] and (ms, seq) != LAST_ID


class Subscription:
    """One open page's queue of new entries of one rep's stream."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.entries: asyncio.Queue[list[Entry] | None] = asyncio.Queue(PAGE_BACKLOG)

    def offer(self, entries: list[Entry]) -> None:
        """Queue entries for the page; a page too far behind is told to go (None)."""
        try:
            self.entries.put_nowait(entries)
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                self.entries.get_nowait()
            self.entries.put_nowait(None)


class LiveFeeds:
    """Follows the alert streams of every rep some page watches, with one connection."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._subscribers: dict[str, set[Subscription]] = {}
        # Per followed stream: the id of the last entry the reader has handed on.
        self._positions: dict[str, bytes] = {}
        self._reader: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def subscribe(self, stream: str) -> AsyncIterator[Subscription]:
        """A subscription to new entries of `stream` for as long as the page is open."""
        subscription = Subscription(stream)
        if stream not in self._positions:
            latest = cast(list[Entry], await self._client.xrevrange(stream, count=1))
            self._positions[stream] = latest[0][0] if latest else b"0-0"
        self._subscribers.setdefault(stream, set()).add(subscription)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._follow())
        try:
            yield subscription
        finally:
            watchers = self._subscribers.get(stream)
            if watchers is not None:
                watchers.discard(subscription)
                if not watchers:
                    del self._subscribers[stream]
                    self._positions.pop(stream, None)

    async def close(self) -> None:
        """Stop the reader."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _follow(self) -> None:
        while self._subscribers:
            positions: dict[Any, Any] = {
                s: self._positions[s] for s in self._subscribers if s in self._positions
            }
            try:
                found = await self._client.xread(positions, count=READ_COUNT, block=BLOCK_MS)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("live pages: Redis unavailable, retrying: %s", exc)
                await asyncio.sleep(RETRY_S)
                continue
            for raw_stream, entries in cast(list[tuple[bytes, list[Entry]]], found or []):
                stream = raw_stream.decode()
                if stream not in self._positions or not entries:
                    continue
                self._positions[stream] = entries[-1][0]
                for subscription in list(self._subscribers.get(stream, ())):
                    subscription.offer(entries)
