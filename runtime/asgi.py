"""The little ASGI plumbing the collector and the rep service share: bodies, JSON, errors."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contracts import codec
from contracts.errors import DBLError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class HTTPError(DBLError):
    """A client-visible error: becomes a JSON `{"error": reason}` response with `status`."""

    def __init__(
        self, status: int, reason: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (names are lower-case in ASGI)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, gunzipped if sent gzipped; 413 past `limit` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "the client disconnected before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    if header(scope, b"content-encoding") == b"gzip":
        return _gunzip(body, limit)
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise HTTPError(400, "the body is not valid gzip") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise HTTPError(413, f"the decompressed body is larger than {limit} bytes")
    return data


def parse_json(body: bytes) -> Any:
    """Decode a JSON body or answer 400 with the parser's reason."""
    try:
        return codec.loads(body)
    except codec.JSONDecodeError as exc:
        raise HTTPError(400, f"the body is not valid JSON: {exc}") from None


async def respond(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = b"application/json",
) -> None:
    """Send a complete response."""
    all_headers = [(b"content-type", content_type), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(
    send: Send, status: int, value: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a JSON response."""
    await respond(send, status, codec.dumps(value), headers)


async def respond_error(send: Send, error: HTTPError) -> None:
    """Send an `HTTPError` as `{"error": reason}`."""
    await respond_json(send, error.status, {"error": error.reason}, error.headers)


async def respond_metrics(send: Send) -> None:
    """Serve this process's Prometheus metrics."""
    await respond(send, 200, generate_latest(), content_type=CONTENT_TYPE_LATEST.encode())


async def run_lifespan(
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[None]],
    shutdown: Callable[[], Awaitable[None]],
) -> None:
    """Drive the ASGI lifespan protocol around an app's own startup and shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await startup()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                raise
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


# Open connections a server keeps (live pages hold one each); more get a 503.
MAX_CONNECTIONS = 8000


def serve(factory: str, host: str, port: int, request_timeout_s: float = 10.0) -> None:
    """Serve an app factory (`module:function`) with uvicorn on httptools and uvloop, with
    the limits of `runtime/http_limits.py`."""
    import uvicorn

    from runtime.http_limits import guarded

    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        http=guarded(request_timeout_s),
        loop="uvloop",
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=5,
        log_level="warning",
        access_log=False,
        # Live pages hold server-sent-event streams open: do not wait for them to end.
        timeout_graceful_shutdown=3,
    )
