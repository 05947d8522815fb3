"""`python -m alerts`: the dispatcher and the rep API, served by uvicorn."""

import logging

import uvicorn

from config.settings import Settings


def main() -> None:
    """Serve the rep service on DBL_REP_API_HOST:DBL_REP_API_PORT."""
    settings = Settings.from_environment()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    uvicorn.run(
        "alerts.api:create_app",
        factory=True,
        host=settings.rep_api_host,
        port=settings.rep_api_port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
