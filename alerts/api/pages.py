"""`GET /reps/<rep>?token=`: a rep's live page, and its static files."""

from __future__ import annotations

from importlib import resources
from typing import Final

from alerts.access import Access
from runtime.asgi import HTTPError, Send, respond
from runtime.router import Request, Route

STATIC: Final = {
    "rep.js": b"text/javascript",
    "rep.css": b"text/css",
    "shadow.js": b"text/javascript",
}
PAGE_HEADERS: Final = [
    (b"content-security-policy", b"default-src 'self'; object-src 'none'; base-uri 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
]


class Pages:
    """The live page (for its rep or an admin) and its script and style."""

    def __init__(self, access: Access) -> None:
        self._access = access

    def routes(self) -> list[Route]:
        """The page and its static files."""
        return [
            Route("GET", "/static/{name}", self._static),
            Route("GET", "/reps/{rep}", self._page),
        ]

    async def _static(self, request: Request, send: Send) -> None:
        name = request.params["name"]
        if name not in STATIC:
            raise HTTPError(404, f"no endpoint GET {request.path}")
        await page_file(send, name)

    async def _page(self, request: Request, send: Send) -> None:
        self._access.require_rep(request, request.params["rep"])
        await page_file(send, "rep.html")


async def page_file(send: Send, name: str) -> None:
    """One of the service's static files, with the pages' security headers."""
    body = (resources.files("alerts") / "static" / name).read_bytes()
    content_type = STATIC.get(name, b"text/html; charset=utf-8")
    await respond(send, 200, body, PAGE_HEADERS, content_type=content_type)
