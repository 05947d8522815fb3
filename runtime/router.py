"""A request parsed once, and a route table: what the HTTP services are built from.

>>> async def hello(request: Request, send: Send) -> None: ...
>>> router = Router([Route("GET", "/v1/reps/{rep}/hot", hello)])
>>> handler, params = router.find("GET", "/v1/reps/sam/hot")
>>> handler is hello, params
(True, {'rep': 'sam'})
>>> router.find("POST", "/v1/reps/sam/hot")
Traceback (most recent call last):
...
runtime.asgi.HTTPError: /v1/reps/sam/hot takes GET
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from runtime.asgi import HTTPError, Receive, Scope, Send, respond_json, respond_metrics


@dataclass(slots=True)
class Request:
    """One HTTP request: method, path, headers and query read once from the ASGI scope."""

    scope: Scope
    receive: Receive
    method: str
    path: str
    # Lower-case header name -> its first value.
    headers: dict[bytes, bytes]
    # Query parameter -> its first value.
    query: dict[str, str]
    # Path parameters of the matched route.
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, scope: Scope, receive: Receive) -> Request:
        """Read an ASGI HTTP scope."""
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(bytes(name), bytes(value))
        query: dict[str, str] = {}
        for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            query.setdefault(name, value)
        return cls(scope, receive, scope["method"], scope["path"], headers, query)

    def header(self, name: bytes) -> bytes | None:
        """A header's first value (`name` lower-case)."""
        return self.headers.get(name)

    @property
    def client(self) -> str | None:
        """The client's address, when the server knows it."""
        client = self.scope.get("client")
        return str(client[0]) if client else None


Handler = Callable[[Request, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    """`method` requests to paths matching `pattern` go to `handler`. A `{name}` in the
    pattern matches one path segment, `{name:path}` the rest of the path."""

    method: str
    pattern: str
    handler: Handler


class Router:
    """Finds the handler of a request: the first route whose pattern and method match."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = [(route, _compile(route.pattern)) for route in routes]

    def find(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path parameters; 404 when no pattern matches, 405 when only
        other methods' do."""
        allowed: list[str] = []
        for route, regex in self._routes:
            match = regex.fullmatch(path)
            if match is None:
                continue
            if route.method == method:
                return route.handler, match.groupdict()
            allowed.append(route.method)
        if allowed:
            raise HTTPError(
                405, f"{path} takes {', '.join(allowed)}", [(b"allow", ", ".join(allowed).encode())]
            )
        raise HTTPError(404, f"no endpoint {method} {path}")


def operations_routes() -> list[Route]:
    """`GET /metrics` (this process's Prometheus metrics) and `GET /healthz`."""
    return [Route("GET", "/metrics", _metrics), Route("GET", "/healthz", _health)]


async def _metrics(request: Request, send: Send) -> None:
    await respond_metrics(send)


async def _health(request: Request, send: Send) -> None:
    await respond_json(send, 200, {"ok": True})


def _compile(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)(:path)?\}", pattern)
    regex = ""
    for index in range(0, len(parts), 3):
        regex += re.escape(parts[index])
        if index + 1 < len(parts):
            name, rest = parts[index + 1], parts[index + 2]
            regex += f"(?P<{name}>.+)" if rest else f"(?P<{name}>[^/]+)"
    return re.compile(regex)
