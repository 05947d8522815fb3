"""The baseline for the collector benchmark: an ASGI app on the same uvicorn setup that
reads the body and answers 200 without doing anything."""

from runtime.asgi import Receive, Scope, Send, respond


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the whole body, answer `{"success": true}`."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await respond(send, 200, b'{"success":true}')


def create_app() -> object:
    """Factory for `runtime.asgi.serve`."""
    return app
