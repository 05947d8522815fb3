"""Signed email links: `GET /e/o/<token>.gif` (the open pixel) and `GET /e/c/<token>` (the
click, a 302 to the sealed URL)."""

from __future__ import annotations

import base64
import time
from typing import Final

from contracts import email_links
from runtime.asgi import HTTPError, Send, respond
from runtime.router import Request, Route
from tracking import metrics
from tracking.intake import Intake, Sender
from tracking.segment import from_segment

PIXEL: Final = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE: Final = [(b"cache-control", b"no-store, private")]
LINK_GONE_PAGE: Final = (
    b"<!doctype html><title>Link expired</title><p>This link is no longer valid. "
    b"Please use the links in a recent email.</p>"
)


class EmailLinks:
    """Opens and clicks of signed links: the reader always gets the pixel or a page; a
    signal is recorded only for a valid token."""

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    def routes(self) -> list[Route]:
        """The pixel and the click."""
        return [
            Route("GET", "/e/o/{token}.gif", self._open),
            Route("GET", "/e/c/{token}", self._click),
        ]

    async def _open(self, request: Request, send: Send) -> None:
        link = self._verify(request.params["token"])
        if link is not None:
            await self._signal(request, link, "Email Opened")
        await respond(send, 200, PIXEL, NO_STORE, content_type=b"image/gif")

    async def _click(self, request: Request, send: Send) -> None:
        """302 to the sealed URL for a valid token; a plain page, never a redirect, otherwise."""
        token = request.params["token"]
        link = self._verify(token)
        if link is None or link.url is None:
            await respond(send, 404, LINK_GONE_PAGE, NO_STORE, b"text/html; charset=utf-8")
            return
        await self._signal(request, link, "Email Link Clicked")
        location = email_links.landing_url(link.url, token).encode()
        await respond(send, 302, b"", [(b"location", location), *NO_STORE], b"text/plain")

    def _verify(self, token: str) -> email_links.Link | None:
        try:
            return email_links.verify(token, self._intake.sites, int(time.time()))
        except email_links.InvalidLink:
            metrics.REJECTIONS.labels("bad_link").inc()
            return None

    async def _signal(self, request: Request, link: email_links.Link, event: str) -> None:
        message = {
            "type": "track",
            "event": event,
            "context": {"campaign": {"name": link.campaign}},
            "properties": {"campaign": link.campaign, "link": link.url},
        }
        sender = Sender.of(request)
        envelope = from_segment(
            message,
            site=link.site,
            received_at=int(time.time() * 1000),
            user_agent=sender.user_agent,
            ip=sender.ip,
            signed_email=link.contact,
        )
        try:
            await self._intake.store([envelope], [], [])
        except HTTPError:
            # The reader still gets the pixel or the redirect; the event is lost and counted.
            metrics.REJECTIONS.labels("email_signal_lost").inc()
