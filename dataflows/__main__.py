"""`python -m dataflows [--shadow] [bytewax.run options]`: serve metrics, then run the DBL
dataflow (with `--shadow`: the challenger model of `DBL_SHADOW_MODEL` beside it, on its
own metrics port).

Extra arguments go to `bytewax.run` (e.g. `-w 2`, `-i 0 -a "h1:2101;h2:2101"`,
`-r recovery/ -s 10 -b 30`); the flow is told the cluster's total worker count from them.
"""

import argparse
import runpy
import sys

from prometheus_client import start_http_server

from config.settings import Settings
from runtime.heap import collect_rarely


def cluster_workers(args: list[str]) -> int:
    """Workers in the whole cluster: workers per process times the number of processes.

    >>> cluster_workers(["-w", "2", "-i", "0", "-a", "a:2101;b:2101"])
    4
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-w", "--workers-per-process", type=int, default=1)
    parser.add_argument("-a", "--addresses", default=None)
    known, _ = parser.parse_known_args(args)
    processes = len(known.addresses.split(";")) if known.addresses else 1
    return int(known.workers_per_process) * processes


def main() -> None:
    """Start the metrics endpoint, collect garbage rarely (`runtime/heap.py`) and hand over to
    Bytewax's runner."""
    settings = Settings.from_environment()
    args = sys.argv[1:]
    shadow = "--shadow" in args
    if shadow:
        args.remove("--shadow")
    port = settings.shadow_metrics_port if shadow else settings.dataflow_metrics_port
    start_http_server(port, addr=settings.dataflow_metrics_host)
    build = "build_shadow_flow" if shadow else "build_flow"
    flow = f"dataflows.flow:{build}(workers={cluster_workers(args)})"
    collect_rarely()
    sys.argv = ["bytewax.run", flow, *args]
    runpy.run_module("bytewax.run", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
