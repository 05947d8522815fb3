"""`POST /v1/esp/sendgrid`: SendGrid's event webhook (server write keys only)."""

from __future__ import annotations

import time

from contracts.envelope import InvalidEvent
from runtime.asgi import HTTPError, Send, parse_json, read_body, respond_json
from runtime.router import Request, Route
from tracking.esp import sendgrid_envelopes
from tracking.intake import MAX_BATCH_BYTES, Intake, refusals


class SendGridApi:
    """SendGrid's opens, clicks and deliveries as signals."""

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    def routes(self) -> list[Route]:
        """The webhook."""
        return [Route("POST", "/v1/esp/sendgrid", self._events)]

    async def _events(self, request: Request, send: Send) -> None:
        body = parse_json(await read_body(request.scope, request.receive, MAX_BATCH_BYTES))
        site = self._intake.authenticate(request, {})
        if site.trust != "server":
            raise HTTPError(403, "the ESP webhook needs a server write key")
        try:
            accepted, rejected = sendgrid_envelopes(body, site, int(time.time() * 1000))
        except InvalidEvent as exc:
            raise HTTPError(400, exc.reason) from None
        messages = body if isinstance(body, list) else []
        await self._intake.store(accepted, messages, rejected)
        await respond_json(send, 200, {"success": True, **refusals(rejected)})
