"""Multi-channel signal streams for tests that compare the dataflow with the reference.

People browse on several cookies, identify on some (sometimes a cookie of somebody else: a
shared device), fill forms, open and click emails; the CRM merges two of them (a server
alias) or passes on that one asked to be forgotten; SDKs resend events (duplicates) and
some signals arrive late. A *plan* is a list of steps; `stream` turns it into envelopes
stamped with receive times from a fixed origin, and `Stamper` stamps the same steps live,
as the collector would.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from config.scoring import load_scoring_model
from config.settings import Settings
from contracts.envelope import Envelope
from tests.conftest import T0, envelope
from tests.reference import Reference

PEOPLE = ["ana@acme.com", "bo@acme.com", "cy@globex.com", "di@gmail.com"]
TRAITS = {"title": "VP Sales", "company_size": 800, "industry": "Software", "country": "US"}
PAGES = ["/pricing", "/blog", "/demo", "/product", "/careers"]
KINDS = ["page", "page", "page", "identify", "form", "open", "click", "merge", "forget", "repeat"]
LATENESS = [0, 0, 0, 2_000, 3_600_000]  # how long after it happened a signal arrives (ms)

# (kind, person index, cookie index, page index, ms since the previous signal, lateness)
Step = tuple[str, int, int, int, int, int]


def random_plan(rng: random.Random, length: int) -> list[Step]:
    """`length` random steps (what the hypothesis strategy draws, from a seeded generator)."""
    return [
        (
            rng.choice(KINDS),
            rng.randrange(len(PEOPLE)),
            rng.randrange(3),
            rng.randrange(len(PAGES)),
            rng.randint(1, 90_000),
            rng.choice(LATENESS),
        )
        for _ in range(length)
    ]


def signal(kind: str, person: int, cookie: int, page: int, received: int, late: int) -> Envelope:
    """One signal of a step, received at `received` (epoch ms)."""
    email = PEOPLE[person]
    anon = f"c{person}-{cookie}"
    common = {"id": uuid.uuid4().hex, "received_at": received, "ts": received - late}
    if kind == "page":
        return envelope(anon_id=anon, context={"page": {"path": PAGES[page]}}, **common)
    if kind == "identify":
        return envelope(type="identify", anon_id=anon, email=email, props=TRAITS, **common)
    if kind == "form":
        props = {"form_id": "demo-request", **TRAITS}
        return envelope(type="form_submit", anon_id=anon, email=email, props=props, **common)
    if kind == "forget":
        # The person asked to be forgotten; the CRM passes it on.
        crm = {"channel": "crm", "anon_id": None, "email": email, "trust": "server"}
        return envelope(type="forget", **crm, **common)
    if kind == "merge":
        # The CRM folds another person into this one (the cookie index picks which).
        loser = PEOPLE[(person + 1 + cookie) % len(PEOPLE)]
        crm = {"channel": "crm", "anon_id": None, "email": email, "trust": "server"}
        return envelope(type="alias", props={"previous_id": loser}, **crm, **common)
    channel = {"channel": "email", "anon_id": None, "email": email, "trust": "server"}
    return envelope(type=f"email_{kind}", props={"campaign": "launch"}, **channel, **common)


class Stamper:
    """Turns steps into signals, keeping every signal made (repeats pick from them)."""

    def __init__(self) -> None:
        self.signals: list[Envelope] = []

    def next(self, step: Step, received: int) -> Envelope | None:
        """The signal of `step` received at `received`; None for a repeat with nothing to
        repeat yet."""
        kind, person, cookie, page, _, late = step
        if kind == "repeat":
            if not self.signals:
                return None
            # An SDK resending an earlier event, a little later.
            made: Envelope = {**self.signals[page % len(self.signals)], "received_at": received}
        else:
            made = signal(kind, person, cookie, page, received, late)
        self.signals.append(made)
        return made


def stream(plan: list[Step]) -> list[Envelope]:
    """The signals of a plan, in the order the collector received them (from T0)."""
    stamper = Stamper()
    received = T0
    for step in plan:
        received += step[4]
        stamper.next(step, received)
    return stamper.signals


def live_stamp(previous: int) -> int:
    """The wall clock in epoch ms, strictly after `previous` (as the collector stamps)."""
    return max(previous + 1, int(time.time() * 1000))


def expected(signals: list[Envelope]) -> tuple[dict[str, Any], list[Any]]:
    """The reference's final profiles and alerts for `signals`."""
    settings = Settings()
    model = load_scoring_model(settings.scoring_path)
    return Reference(model, settings).run(signals)
