"""What uvicorn's httptools protocol lacks in front of the open internet: a cap on a
request's header bytes (431) and a deadline to receive a whole request (408), so slow or
bloated requests cannot hold a server's memory and connections.

uvicorn's own `limit_concurrency` caps connections, and `timeout_keep_alive` closes idle
ones between requests; a proxy in front (README, "Deploying") adds per-address limits.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from contracts import codec

MAX_HEADER_BYTES: Final = 16 * 1024


class _Refused(Exception):
    """Stops the parser: the connection was answered and closed."""


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the header cap and the request deadline."""

    # Seconds to receive one whole request (line, headers and body) once it began, or the
    # first request once connected.
    request_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(b"431 Request Header Fields Too Large", "request headers too large")
            raise _Refused

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._refuse(b"408 Request Timeout", "the request did not arrive in time")

    def _refuse(self, status: bytes, reason: str) -> None:
        body = codec.dumps({"error": reason})
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()


def guarded(request_timeout_s: float) -> type[Any]:
    """The protocol class with this request deadline."""
    return type("GuardedHttpTools", (GuardedHttpTools,), {"request_timeout_s": request_timeout_s})
