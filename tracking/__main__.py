"""`python -m tracking`: serve the collector on DBL_COLLECTOR_HOST:DBL_COLLECTOR_PORT."""

from config.settings import Settings
from dbl.asgi import serve

if __name__ == "__main__":
    settings = Settings.from_environment()
    serve("tracking.app:create_app", settings.collector_host, settings.collector_port)
