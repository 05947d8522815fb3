"""What the HTTP services and background workers share: ASGI helpers, the router, HTTP
limits, background threads."""
