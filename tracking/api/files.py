"""`GET /t.js` (the snippet, gzipped when the browser takes it) and `GET /openapi.json`."""

from __future__ import annotations

import gzip
from importlib import resources

from runtime.asgi import Send, respond
from runtime.router import Request, Route


class Files:
    """The collector's static files, read once."""

    def __init__(self) -> None:
        static = resources.files("tracking") / "static"
        self._snippet = (static / "t.js").read_bytes()
        self._snippet_gz = gzip.compress(self._snippet, 9)
        self._openapi = (static / "openapi.json").read_bytes()

    def routes(self) -> list[Route]:
        """The snippet and the API description."""
        return [Route("GET", "/t.js", self._snippet_js), Route("GET", "/openapi.json", self._spec)]

    async def _snippet_js(self, request: Request, send: Send) -> None:
        headers = [(b"cache-control", b"public, max-age=3600"), (b"vary", b"accept-encoding")]
        body = self._snippet
        if b"gzip" in (request.header(b"accept-encoding") or b""):
            body = self._snippet_gz
            headers.append((b"content-encoding", b"gzip"))
        await respond(send, 200, body, headers, content_type=b"text/javascript; charset=utf-8")

    async def _spec(self, request: Request, send: Send) -> None:
        await respond(send, 200, self._openapi)
