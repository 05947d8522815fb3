"""`python -m tracking`: serve the collector on DBL_COLLECTOR_HOST:DBL_COLLECTOR_PORT."""

from config.secrets import checked_settings
from runtime.asgi import serve

if __name__ == "__main__":
    settings = checked_settings()
    serve(
        "tracking.app:create_app",
        settings.collector_host,
        settings.collector_port,
        settings.request_timeout_s,
    )
