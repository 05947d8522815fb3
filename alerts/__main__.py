"""`python -m alerts`: the dispatcher and the rep API on DBL_REP_API_HOST:DBL_REP_API_PORT."""

import logging

from config.secrets import checked_settings
from runtime.asgi import serve

if __name__ == "__main__":
    settings = checked_settings()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    serve(
        "alerts.api:create_app",
        settings.rep_api_host,
        settings.rep_api_port,
        settings.request_timeout_s,
    )
