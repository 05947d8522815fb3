"""`python -m dataflows [bytewax.run options]`: serve metrics, then run the DBL dataflow.

Extra arguments go to `bytewax.run` (e.g. `-w 2`, `-i 0 -a "h1:2101;h2:2101"`,
`-r recovery/ -s 10 -b 30`).
"""

import runpy
import sys

from prometheus_client import start_http_server

from config.settings import Settings


def main() -> None:
    """Start the metrics endpoint and hand over to Bytewax's runner."""
    settings = Settings.from_environment()
    start_http_server(settings.dataflow_metrics_port, addr=settings.dataflow_metrics_host)
    sys.argv = ["bytewax.run", "dataflows.flow:build_flow()", *sys.argv[1:]]
    runpy.run_module("bytewax.run", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
