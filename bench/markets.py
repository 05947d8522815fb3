"""Generated markets whose buyers are known (for tests and benchmarks): leads who identify,
browse for weeks, and (some of them) win a deal, told by the CRM as `Opportunity Created`
and `Opportunity Won`.

Buyers read pricing and demo pages and fill the demo form in the weeks before their deal;
the others read the blog. A model that gives points to pricing and demo pages ranks them
first; one that gives points to the blog ranks them last.
"""

from __future__ import annotations

import argparse
import gzip
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from contracts import codec
from contracts.envelope import Envelope

DAY = 86_400_000
TITLES = ["VP Sales", "Head of Marketing", "Engineer", "Student", "Director of IT", "CFO"]
INDUSTRIES = ["Software", "Retail", "Finance", "Education"]


@dataclass(frozen=True)
class World:
    """The signals of a market, in receive-time order, and who bought (and when)."""

    signals: list[Envelope]
    buyers: dict[str, int]


def world(
    seed: int,
    leads: int = 120,
    start: int = 1_767_225_600_000,
    days: int = 150,
    day_ms: int = DAY,
    noise: float = 0.0,
    after_win: int = 0,
) -> World:
    """A market of `leads` leads over `days` days of `day_ms` from `start` (epoch ms); with
    `noise`, that share of each lead's page views is of the pages the others read; buyers
    open the customer portal `after_win` times in the days after their deal (a signal only
    an outcome explains: a model that learned from it would have looked ahead)."""
    rng = random.Random(seed)
    signals: list[Envelope] = []
    buyers: dict[str, int] = {}
    for n in range(leads):
        email = f"lead{n}@company{n % 40}.com"
        cookie = f"w{seed}-{n}"
        born = start + rng.randrange(0, (days - 100) * day_ms)
        buys = rng.random() < 0.25
        traits = {
            "title": rng.choice(TITLES),
            "company_size": rng.choice([5, 50, 400, 2000]),
            "industry": rng.choice(INDUSTRIES),
            "country": "US",
        }
        signals.append(_at(rng, born, type="identify", anon_id=cookie, email=email, props=traits))
        won = born + rng.randrange(20, 70) * day_ms
        buying, browsing = ["/pricing", "/demo", "/pricing", "/product"], ["/blog", "/careers"]
        pages, others = (buying, browsing) if buys else (browsing, buying)
        end = won if buys else born + 90 * day_ms
        t = born
        while True:
            t += rng.randrange(1, 6) * day_ms + rng.randrange(0, day_ms)
            if t >= end:
                break
            path = rng.choice(others if rng.random() < noise else pages)
            signals.append(_at(rng, t, anon_id=cookie, context={"page": {"path": path}}))
        if buys:
            created = won - 10 * day_ms
            signals.append(_crm(rng, created, email, "Opportunity Created"))
            signals.append(_crm(rng, won, email, "Opportunity Won", amount=12_000))
            buyers[email] = won
            for visit in range(after_win):
                at = won + (visit + 1) * day_ms // 2
                signals.append(_at(rng, at, anon_id=cookie, context={"page": {"path": "/portal"}}))
    signals.sort(key=lambda s: (s["received_at"], s["id"]))
    return World(signals, buyers)


def _at(rng: random.Random, ts: int, **fields: object) -> Envelope:
    """A signal of the market at `ts` (received then)."""
    return signal(id=uuid.UUID(int=rng.getrandbits(128)).hex, ts=ts, received_at=ts, **fields)


def signal(**fields: object) -> Envelope:
    """A browser page-view envelope, with any field overridden (`id`, `ts` and
    `received_at` given)."""
    base: dict[str, object] = {
        "type": "page",
        "channel": "web",
        "anon_id": None,
        "user_id": None,
        "email": None,
        "account": None,
        "name": None,
        "event": None,
        "props": {},
        "context": {},
        "source": "market",
        "trust": "browser",
        "machine": None,
        **fields,
    }
    return base  # type: ignore[return-value]


def _crm(
    rng: random.Random, ts: int, email: str, event: str, amount: int | None = None
) -> Envelope:
    props = {} if amount is None else {"amount": amount}
    return _at(
        rng,
        ts,
        type="track",
        channel="crm",
        trust="server",
        source="crm",
        anon_id=None,
        email=email,
        event=event,
        props=props,
    )


def write_export(signals: list[Envelope], path: Path) -> Path:
    """The signals as `dbl export-events` writes them."""
    with gzip.open(path, "wb") as out:
        for signal in signals:
            out.write(codec.dumps(signal) + b"\n")
    return path


def main() -> None:
    """Write a market as an export: `python -m bench.markets OUT.jsonl.gz --leads N`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--days", type=int, default=240)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.3)
    args = parser.parse_args()
    market = world(args.seed, leads=args.leads, days=args.days, noise=args.noise)
    write_export(market.signals, args.out)
    print(f"{args.out}: {len(market.signals)} events, {len(market.buyers)} buyers")


if __name__ == "__main__":
    main()
