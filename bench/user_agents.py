"""What the crawler list costs the collector: turning one browser page view into an
envelope (`from_segment`, the collector's whole decode) when its user agent was seen
before, against when every user agent is new (a client making them up), in the same run.

    python -m bench.user_agents [--events 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from config.settings import CONFIG_DIR
from config.sites import load_sites
from tracking.machines import web_bot
from tracking.segment import from_segment

SITE = load_sites(CONFIG_DIR / "sites.toml")["wk_demo_browser"]
AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.{} Safari/537.36"
)
# As many distinct agents as a busy site sees in a day, fewer than the cache keeps.
REPEATED = 500


def per_event_us(events: int, agent: Callable[[int], str]) -> float:
    """Microseconds to decode one page view whose user agent is `agent(n)`."""
    message = {"type": "page", "anonymousId": "a-1", "properties": {"path": "/pricing"}}
    started = time.perf_counter()
    for n in range(events):
        from_segment(message, site=SITE, received_at=1_767_225_600_000, user_agent=agent(n))
    return (time.perf_counter() - started) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    events = parser.parse_args().events
    web_bot.cache_clear()
    per_event_us(REPEATED, lambda n: AGENT.format(n))  # the repeated agents, seen once
    seen = per_event_us(events, lambda n: AGENT.format(n % REPEATED))
    web_bot.cache_clear()
    new = per_event_us(events, lambda n: AGENT.format(REPEATED + n))
    print(f"decode, user agent seen before: {seen:.1f} µs per event")
    print(f"decode, every user agent new:   {new:.1f} µs per event ({new / seen:.1f} times)")


if __name__ == "__main__":
    main()
