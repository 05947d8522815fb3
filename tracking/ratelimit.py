"""A per-client token bucket, in memory, per collector process. Pure apart from the clock
it is given."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Allows `rate` requests (or events) per second per client, with bursts up to `burst`.

    Remembers at most `clients` clients (least recently seen are forgotten first), so a
    flood of addresses cannot grow memory without bound.

    >>> limiter = RateLimiter(rate=1, burst=2)
    >>> [limiter.allow("1.2.3.4", now=0.0) for _ in range(3)]
    [True, True, False]
    """

    def __init__(self, rate: float, burst: float, clients: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._clients = clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, client: str, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens for `client` at time `now` (seconds); False (taking none) when
        fewer are left.

        >>> limiter = RateLimiter(rate=100, burst=150)
        >>> limiter.allow("1.2.3.4", 0.0, cost=100), limiter.allow("1.2.3.4", 0.0, cost=100)
        (True, False)
        """
        bucket = self._buckets.pop(client, None) or _Bucket(self._burst, now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        allowed = bucket.tokens >= cost
        if allowed:
            bucket.tokens -= cost
        self._buckets[client] = bucket
        if len(self._buckets) > self._clients:
            self._buckets.popitem(last=False)
        return allowed
