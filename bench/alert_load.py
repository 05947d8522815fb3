"""How many pushes a rep gets: `dbl run --demo` of a checkout for some minutes, then each
rep's alerts read from the rep API (admin token) and counted.

    python -m bench.alert_load --minutes 10                    # this checkout
    python -m bench.alert_load --minutes 10 --checkout DIR     # another one (e.g. a release)

A rep is pushed each alert that reaches the stream, except the later alerts of a visit
already pushed (they update its thread: `[visits] pushes`, default 1). Figures: alerts in
the reps' streams and pushes per rep per hour (over the span of event time the alerts
cover), and pushes per lead visit (a thread; a lead's alerts without one count as one
visit per lead, as the demo's visitors make one visit each).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from contracts import codec
from runtime.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "demo-admin-token"
HOUR_MS = 3_600_000


def count(alerts_by_rep: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Figures of the alerts each rep's stream holds (newest first, as the API gives them).

    >>> count({"sam": [{"ts": 3_600_000, "contact": "a", "thread": "t1"},
    ...                {"ts": 0, "contact": "a", "thread": "t1"}]})["pushes_per_visit"]
    1.0
    """
    alerts = pushes = 0
    visits: set[tuple[str, str]] = set()
    spans = []
    for rep, told in alerts_by_rep.items():
        alerts += len(told)
        threads = Counter(a.get("thread") or f"lead:{a.get('contact')}:{a.get('id')}" for a in told)
        pushes += len(threads)
        visits |= {(rep, a.get("thread") or f"lead:{a.get('contact')}") for a in told}
        if told:
            spans.append(max(a["ts"] for a in told) - min(a["ts"] for a in told))
    reps = len(alerts_by_rep)
    hours = max(sum(spans) / max(len(spans), 1), 60_000) / HOUR_MS
    return {
        "reps": reps,
        "alerts": alerts,
        "pushes": pushes,
        "visits": len(visits),
        "alerts_per_rep_hour": round(alerts / reps / hours, 1),
        "pushes_per_rep_hour": round(pushes / reps / hours, 1),
        "pushes_per_visit": round(pushes / max(len(visits), 1), 2),
    }


def _get(url: str) -> Any:
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return codec.loads(response.read())


def measure(checkout: Path, minutes: float) -> dict[str, Any]:
    """Run the checkout's demo for `minutes`, then count what reached the reps."""
    ports = {
        name: str(free_port())
        for name in (
            "DBL_COLLECTOR_PORT",
            "DBL_REP_API_PORT",
            "DBL_DATAFLOW_METRICS_PORT",
            "DBL_DELIVERY_METRICS_PORT",
        )
    }
    env = {**os.environ, **ports, "PYTHONPATH": str(checkout)}
    env["DBL_PUBLIC_URL"] = f"http://127.0.0.1:{ports['DBL_COLLECTOR_PORT']}"
    command = [sys.executable, "-m", "dbl.cli", "run", "--demo"]
    process = subprocess.Popen(
        command,
        cwd=checkout,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{ports['DBL_REP_API_PORT']}"
    try:
        time.sleep(minutes * 60)
        routing = tomllib.loads((checkout / "config" / "routing.toml").read_text())
        by_rep = {
            rep: _get(f"{base}/v1/alerts?rep={rep}&limit=500")["alerts"] for rep in routing["reps"]
        }
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return {"checkout": str(checkout), "minutes": minutes, **count(by_rep)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--checkout", type=Path, default=ROOT)
    args = parser.parse_args()
    print(codec.dumps(measure(args.checkout.resolve(), args.minutes)).decode())


if __name__ == "__main__":
    main()
