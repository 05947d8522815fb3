"""Dropping repeats: SDKs, beacons and retry queues resend an event when they are unsure it
arrived. Pure: no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

PRUNE_EVERY = 32


def fingerprint(message_id: str) -> int:
    """A compact stand-in for a message id (64 bits: collisions are negligible per key)."""
    return int.from_bytes(hashlib.blake2b(message_id.encode(), digest_size=8).digest(), "big")


@dataclass(slots=True)
class SeenIds:
    """The message ids one key has sent within the window, with when they were received."""

    seen: dict[int, int] = field(default_factory=dict)
    added: int = 0

    def first_time(self, message_id: str, received_at: int, window_ms: int) -> bool:
        """True the first time an id is seen within `window_ms` (receive time); records it."""
        key = fingerprint(message_id)
        previous = self.seen.get(key)
        if previous is not None and abs(received_at - previous) <= window_ms:
            return False
        self.seen[key] = received_at
        self.added += 1
        if self.added % PRUNE_EVERY == 0:
            self.seen = {k: t for k, t in self.seen.items() if received_at - t <= window_ms}
        return True
