"""The Segment HTTP Tracking API: `POST /v1/batch|track|page|screen|identify|alias|group`,
and `/v1/forget` (server keys only: erase a contact).

Browser SDKs use other spellings of the same calls, all accepted: analytics.js 2.0
(`@segment/analytics-next`) posts `text/plain` to `/v1/p`, `/v1/t`, `/v1/i`, `/v1/s`,
`/v1/g`, `/v1/a` and, batching, `/v1/b`; RudderStack's beacon mode posts a batch to
`/beacon/v1/batch?writeKey=...`."""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Final

from config.sites import Site
from contracts import email_links
from contracts.envelope import FORGET, Envelope, InvalidEvent
from runtime.asgi import HTTPError, Send, parse_json, read_body, respond_json
from runtime.router import Request, Route
from tracking import metrics
from tracking.intake import (
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    Intake,
    Sender,
    count_rejected,
    refusals,
)
from tracking.segment import from_segment

# Segment's SDKs send at most a few hundred events a batch; more is an attack on the DLQ.
MAX_BATCH_EVENTS: Final = 1000
SINGLE_CALLS: Final = (
    *("track", "page", "screen", "identify", "alias", "group"),
    FORGET,
)
# analytics.js 2.0's short paths.
SHORT_CALLS: Final = {"t": "track", "p": "page", "s": "screen", "i": "identify", "a": "alias"}
SHORT_CALLS["g"] = "group"
BATCH_PATHS: Final = ("/v1/batch", "/v1/b", "/beacon/v1/batch")
# Every single-call path, under both spellings -> its call type.
CALL_PATHS: Final = {
    f"/v1/{path}": call
    for path, call in {**{call: call for call in SINGLE_CALLS}, **SHORT_CALLS}.items()
}


class SegmentApi:
    """Segment calls, one or a batch: a 2xx means the broker acknowledged every accepted
    event; bad events of a batch are listed, dead-lettered, and the good ones kept."""

    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    def routes(self) -> list[Route]:
        """The batch paths and one route per single call (each under both spellings)."""
        single = [
            Route("POST", path, partial(self._single, call)) for path, call in CALL_PATHS.items()
        ]
        return [*(Route("POST", path, self._batch) for path in BATCH_PATHS), *single]

    async def _batch(self, request: Request, send: Send) -> None:
        body = await _json_object(request, MAX_BATCH_BYTES)
        await self._ingest(request, send, body, _batch_items(body), None)

    async def _single(self, call: str, request: Request, send: Send) -> None:
        body = await _json_object(request, MAX_EVENT_BYTES)
        await self._ingest(request, send, body, [body], call)

    async def _ingest(
        self,
        request: Request,
        send: Send,
        body: dict[str, Any],
        messages: list[Any],
        call_type: str | None,
    ) -> None:
        intake = self._intake
        site = intake.authenticate(request, body)
        intake.check_origin(request, site)
        intake.limit_events(request, len(messages))
        received_at = int(time.time() * 1000)
        sender = Sender.of(request)
        accepted: list[Envelope] = []
        rejected: list[dict[str, Any]] = []
        for index, message in enumerate(messages):
            try:
                accepted.append(self._envelope(sender, message, site, received_at, call_type))
            except InvalidEvent as exc:
                rejected.append({"index": index, "reason": exc.reason})
        if not accepted and rejected:
            count_rejected(rejected)
            raise HTTPError(400, rejected[0]["reason"] if call_type else _batch_reason(rejected))
        await intake.store(accepted, messages, rejected)
        answer: dict[str, Any] = {"success": True}
        if rejected:
            answer |= refusals(rejected)
        await respond_json(send, 200, answer, intake.cors(request))

    def _envelope(
        self, sender: Sender, message: Any, site: Site, received_at: int, call_type: str | None
    ) -> Envelope:
        return from_segment(
            message,
            site=site,
            received_at=received_at,
            call_type=call_type,
            user_agent=sender.user_agent,
            ip=sender.ip,
            signed_email=self._linked_contact(message, site),
        )

    def _linked_contact(self, message: Any, site: Site) -> str | None:
        """The contact a signed email link names, when the snippet passes one on (the token
        itself is taken out of the message: it is a credential, not data to keep)."""
        context = message.get("context") if isinstance(message, dict) else None
        token = context.pop("dbl_link", None) if isinstance(context, dict) else None
        if not isinstance(token, str):
            return None
        try:
            link = email_links.verify(token, self._intake.sites, int(time.time()))
        except email_links.InvalidLink:
            metrics.REJECTIONS.labels("bad_link").inc()
            return None
        return link.contact if link.site.name == site.name else None


async def _json_object(request: Request, limit: int) -> dict[str, Any]:
    body = parse_json(await read_body(request.scope, request.receive, limit))
    if not isinstance(body, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return body


def _batch_items(body: dict[str, Any]) -> list[Any]:
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise HTTPError(400, "batch must be a JSON array of events")
    if not batch:
        raise HTTPError(400, "batch is empty")
    if len(batch) > MAX_BATCH_EVENTS:
        raise HTTPError(413, f"batch has {len(batch)} events, at most {MAX_BATCH_EVENTS}")
    return batch


def _batch_reason(rejected: list[dict[str, Any]]) -> str:
    first = rejected[0]
    return f"no event accepted; event {first['index']}: {first['reason']}"
