"""Which worker a Bytewax state key lives on, so a step can address every worker.

Bytewax routes a keyed item to worker `SipHash-1-3(key bytes + 0xFF, keys 0, 0) % count`
(Rust's `DefaultHasher` over a `String`). Progress markers must reach every worker of a
step after the data that worker was sent, so they are keyed with one *worker key* per
worker. `tests/flows/test_workers.py` checks this against the engine itself.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Final

from contracts.envelope import RESERVED_PREFIX

MASK: Final = 0xFFFF_FFFF_FFFF_FFFF


def _rotate(x: int, bits: int) -> int:
    return ((x << bits) | (x >> (64 - bits))) & MASK


def _sip_round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & MASK
    v1 = _rotate(v1, 13) ^ v0
    v0 = _rotate(v0, 32)
    v2 = (v2 + v3) & MASK
    v3 = _rotate(v3, 16) ^ v2
    v0 = (v0 + v3) & MASK
    v3 = _rotate(v3, 21) ^ v0
    v2 = (v2 + v1) & MASK
    v1 = _rotate(v1, 17) ^ v2
    v2 = _rotate(v2, 32)
    return v0, v1, v2, v3


def siphash13(data: bytes) -> int:
    """SipHash-1-3 with the zero key, as Rust's `DefaultHasher` computes it."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573
    whole = len(data) - len(data) % 8
    for start in range(0, whole, 8):
        (word,) = struct.unpack_from("<Q", data, start)
        v3 ^= word
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        v0 ^= word
    last = (len(data) & 0xFF) << 56
    for shift, byte in enumerate(data[whole:]):
        last |= byte << (8 * shift)
    v3 ^= last
    v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


@lru_cache(maxsize=65_536)
def worker_of(key: str, worker_count: int) -> int:
    """The index of the worker that holds state key `key` in a cluster of `worker_count`."""
    return siphash13(key.encode() + b"\xff") % worker_count


@lru_cache(maxsize=64)
def worker_keys(worker_count: int) -> tuple[str, ...]:
    """One state key per worker: `worker_keys(n)[w]` lives on worker `w`.

    >>> [worker_of(key, 3) for key in worker_keys(3)]
    [0, 1, 2]
    """
    keys: list[str | None] = [None] * worker_count
    candidate = 0
    while None in keys:
        # The prefix is a noncharacter no id may start with (decode refuses them); as the
        # largest code point it also sorts after every other key, so a step handles a
        # worker key's markers after the data items of the same activation.
        key = f"{RESERVED_PREFIX}{candidate}"
        slot = worker_of(key, worker_count)
        if keys[slot] is None:
            keys[slot] = key
        candidate += 1
    return tuple(key for key in keys if key is not None)


def is_worker_key(key: str) -> bool:
    """True for the keys `worker_keys` hands out (never a person or an account)."""
    return key.startswith(RESERVED_PREFIX)
