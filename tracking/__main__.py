"""`python -m tracking`: serve the collector with uvicorn (httptools, uvloop)."""

import uvicorn

from config.settings import Settings


def main() -> None:
    """Serve the collector on DBL_COLLECTOR_HOST:DBL_COLLECTOR_PORT."""
    settings = Settings.from_environment()
    uvicorn.run(
        "tracking.app:create_app",
        factory=True,
        host=settings.collector_host,
        port=settings.collector_port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
