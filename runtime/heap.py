"""How a long-running DBL process collects cyclic garbage.

A dataflow worker keeps its per-key state in memory: a few million small objects at a
million visitors. CPython's cyclic collector runs a young-generation pass every 700 net
allocations and, every hundred of those, may walk the whole heap; at this size those walks
took 14 % of the dataflow's time in a latency run, and each one stalls every signal behind
it. Almost nothing DBL allocates per signal forms reference cycles (reference counting
frees it), so collecting rarely loses no memory that matters and removes those stalls.
"""

from __future__ import annotations

import gc
from typing import Final

# Young objects allocated between collections; young collections between middle ones;
# middle collections between full ones (CPython's defaults: 700, 10, 10).
THRESHOLDS: Final = (50_000, 50, 100)


def collect_rarely() -> None:
    """Keep what start-up built (modules, configuration) out of every future collection and
    collect cyclic garbage far less often. Call once, when the process has started."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
