"""The rep service's connection to the read model: one Redis pool and one live-feed reader
per process, opened by the app's lifespan."""

from __future__ import annotations

from typing import Final

import redis.asyncio as aioredis

from alerts.live import LiveFeeds
from contracts.read_model import RedisKeys

# Reads of the read model fail fast when Redis does not answer: a 503, not a hung page.
REDIS_TIMEOUT_S: Final = 2.0
REDIS_CONNECTIONS: Final = 50


class ReadModel:
    """Redis (the read model) and the live feeds of the reps' alert streams."""

    def __init__(self, url: str, keys: RedisKeys) -> None:
        self.keys = keys
        self._url = url
        self._redis: aioredis.Redis | None = None
        self._live: LiveFeeds | None = None

    def open(self) -> None:
        """Connect (the pool connects lazily)."""
        # A burst of pages opening waits its turn for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            max_connections=REDIS_CONNECTIONS,
            timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._live = LiveFeeds(self._redis)

    async def close(self) -> None:
        """Stop the live feeds and close the pool."""
        if self._live is not None:
            await self._live.close()
        if self._redis is not None:
            await self._redis.aclose()

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client."""
        assert self._redis is not None, "the lifespan opens Redis"
        return self._redis

    @property
    def feeds(self) -> LiveFeeds:
        """The live feeds."""
        assert self._live is not None, "the lifespan starts the live feeds"
        return self._live
