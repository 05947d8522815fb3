"""State memory per visitor: 1,000,000 anonymous visitors (one page view each) and 50,000
known contacts (an identify and a pricing view each) through the DBL dataflow, one worker,
against the same states kept in a plain dict by the pure logic, measured in the same run.

    python -m bench.memory [--visitors 1000000] [--contacts 50000]

Events are made as they are read (nothing is held in a list), outputs go to counting sinks;
the figure is the growth of resident memory from just before the run to its peak, divided
by the number of visitors.
"""

from __future__ import annotations

import argparse
import gc
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import psutil
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.testing import run_main

from bench.dataflow import CountingSink
from config.scoring import load_scoring_model
from config.settings import Settings
from contracts import codec
from contracts.envelope import Envelope
from dataflows.flow import build_flow
from dataflows.rules.dedupe import SeenIds
from dataflows.rules.identity import Cookie, resolve
from runtime.heap import collect_rarely

T0 = 1_767_225_600_000
BATCH = 1_000
TRAITS = {"title": "VP Sales", "company_size": 800, "industry": "Software", "country": "US"}


def signals(visitors: int, contacts: int) -> Iterator[Envelope]:
    """One page view per anonymous visitor; an identify and a pricing view per contact.
    Receive times advance 1 ms per signal."""
    received = T0
    for n in range(visitors + contacts):
        known = n >= visitors
        cookie = f"visitor-{n:07d}"
        for kind in ("identify", "page") if known else ("page",):
            received += 1
            yield _signal(kind, cookie, received, f"c{n}@acme.com" if known else None)


def _signal(kind: str, cookie: str, received: int, email: str | None) -> Envelope:
    page = {"path": "/pricing" if email else "/blog/lead-scoring"}
    return cast(
        Envelope,
        {
            "id": f"{cookie}-{kind}",
            "type": kind,
            "channel": "web",
            "ts": received,
            "received_at": received,
            "anon_id": cookie,
            "user_id": None,
            "email": email if kind == "identify" else None,
            "account": None,
            "name": None,
            "event": None,
            "props": TRAITS if kind == "identify" else {},
            "context": {"page": page},
            "source": "bench",
            "trust": "browser",
            "machine": None,
        },
    )


class _GeneratedPartition(StatefulSourcePartition[Any, int]):
    def __init__(self, visitors: int, contacts: int) -> None:
        self._signals = signals(visitors, contacts)
        self._offset = 0

    def next_batch(self) -> list[Any]:
        batch = []
        for signal in self._signals:
            batch.append(
                KafkaSourceMessage(
                    key=signal["anon_id"].encode(),  # type: ignore[union-attr]
                    value=codec.dumps(signal),
                    topic="events",
                    partition=0,
                    offset=self._offset,
                    timestamp=(1, signal["received_at"]),
                )
            )
            self._offset += 1
            if len(batch) == BATCH:
                return batch
        if not batch:
            raise StopIteration
        return batch

    def snapshot(self) -> int:
        return self._offset


class GeneratedSource(FixedPartitionedSource[Any, int]):
    """The benchmark's signals as broker messages of one partition, made as they are read."""

    def __init__(self, visitors: int, contacts: int) -> None:
        self._visitors = visitors
        self._contacts = contacts

    def list_parts(self) -> list[str]:
        """One partition."""
        return ["0-events"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _GeneratedPartition:
        """The generated partition (always from the start)."""
        return _GeneratedPartition(self._visitors, self._contacts)


class PeakMemory:
    """Samples this process's resident memory in a background thread; keeps the peak."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.base = self._rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self._rss())

    def _rss(self) -> int:
        return int(self._process.memory_info().rss)

    @property
    def growth(self) -> int:
        """Bytes the process grew by, from the start to the peak."""
        return self.peak - self.base


def plain_states(visitors: int, contacts: int) -> dict[str, tuple[SeenIds, Cookie]]:
    """What the identity step keeps per cookie, built by the pure logic into a plain dict."""
    settings = Settings()
    model = load_scoring_model(settings.scoring_path)
    window = model.identity.dedupe_window_ms
    states: dict[str, tuple[SeenIds, Cookie]] = {}
    for signal in signals(visitors, contacts):
        anon = str(signal["anon_id"])
        seen, cookie = states.setdefault(anon, (SeenIds(), Cookie()))
        seen.first_time(signal["id"], signal["received_at"], window)
        resolve(cookie, anon, signal, model)
    return states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=50_000)
    args = parser.parse_args()
    visitors, contacts = args.visitors, args.contacts
    collect_rarely()  # as `python -m dataflows` does
    events = visitors + 2 * contacts
    print(f"{visitors:,} anonymous visitors + {contacts:,} contacts = {events:,} events")

    gc.collect()
    with PeakMemory() as plain:
        started = time.perf_counter()
        states = plain_states(visitors, contacts)
        plain_s = time.perf_counter() - started
    plain_per_visitor = plain.growth / (visitors + contacts)
    del states
    gc.collect()

    sink = CountingSink()
    flow = build_flow(
        Settings(),
        events=GeneratedSource(visitors, contacts),
        profiles=sink,
        alerts=CountingSink(),
        dead_letters=CountingSink(),
    )
    with PeakMemory() as dbl:
        started = time.perf_counter()
        run_main(flow)
        dbl_s = time.perf_counter() - started
    dbl_per_visitor = dbl.growth / (visitors + contacts)

    print(f"{'run':<44} {'bytes/visitor':>14} {'seconds':>8} {'events/s':>9}")
    for name, per_visitor, seconds in (
        ("identity state in a plain dict (baseline)", plain_per_visitor, plain_s),
        ("DBL dataflow (all steps, one worker)", dbl_per_visitor, dbl_s),
    ):
        print(f"{name:<44} {per_visitor:>14,.0f} {seconds:>8.1f} {events / seconds:>9,.0f}")
    print(f"ratio dataflow / plain: {dbl_per_visitor / plain_per_visitor:.2f}")
    verdict = "met" if dbl_per_visitor <= 1024 else "NOT met"
    print(f"target, at most 1,024 bytes per visitor: {verdict}")


if __name__ == "__main__":
    main()
