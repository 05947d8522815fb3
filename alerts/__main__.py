"""`python -m alerts [api|dispatch]`: the rep API on DBL_REP_API_HOST:DBL_REP_API_PORT and
alert delivery (dispatcher and webhook sender); `api` or `dispatch` alone to scale them
apart (the API only reads, so it may run as many replicas as needed)."""

import argparse
import logging
import signal
import threading

from prometheus_client import start_http_server

from alerts.delivery import Delivery
from config.secrets import checked_settings
from runtime.asgi import serve

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m alerts", description=__doc__)
    parser.add_argument("role", nargs="?", choices=("api", "dispatch"), help="one part only")
    role = parser.parse_args().role
    settings = checked_settings()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    delivery = None if role == "api" else Delivery(settings)
    if delivery is not None:
        delivery.start()
    try:
        if role == "dispatch":
            start_http_server(settings.delivery_metrics_port, settings.rep_api_host)
            stopped = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stopped.set())
            stopped.wait()
        else:
            serve(
                "alerts.app:create_app",
                settings.rep_api_host,
                settings.rep_api_port,
                settings.request_timeout_s,
            )
    finally:
        if delivery is not None:
            delivery.stop()
