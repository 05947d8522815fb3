"""SendGrid's event webhook, mapped to email signals. Pure: no I/O.

SendGrid posts a JSON array of events (`delivered`, `open`, `click`, `bounce`, `dropped`,
`unsubscribe`, `group_unsubscribe`, `spamreport`, ...), each with `email`, `timestamp`
(Unix seconds), `sg_event_id`, and for opens and clicks the reader's `useragent` and `ip`.
Opens and clicks made by scanners or privacy proxies are marked as machine signals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from config.sites import Site
from contracts.envelope import Envelope, InvalidEvent
from tracking.machines import email_machine, truncate_ip
from tracking.segment import from_segment

# SendGrid event -> Segment spec event name (mapped to DBL types by the envelope).
EVENTS: Final = {
    "delivered": "Email Delivered",
    "open": "Email Opened",
    "click": "Email Link Clicked",
    "bounce": "Email Bounced",
    "dropped": "Email Bounced",
    "unsubscribe": "Unsubscribed",
    "group_unsubscribe": "Unsubscribed",
    "spamreport": "Email Marked as Spam",
}
IGNORED: Final = frozenset({"processed", "deferred", "group_resubscribe"})


def sendgrid_envelopes(
    events: Any, site: Site, received_at: int
) -> tuple[list[Envelope], list[dict[str, Any]]]:
    """Envelopes for the events DBL uses, and `{index, reason}` for those it refuses."""
    if not isinstance(events, list):
        raise InvalidEvent("a SendGrid webhook body is a JSON array of events")
    envelopes: list[Envelope] = []
    rejected: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        try:
            envelope = _envelope(event, site, received_at)
        except InvalidEvent as exc:
            rejected.append({"index": index, "reason": exc.reason})
            continue
        if envelope is not None:
            envelopes.append(envelope)
    return envelopes, rejected


def _envelope(event: Any, site: Site, received_at: int) -> Envelope | None:
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise InvalidEvent("each SendGrid event needs an `event` name")
    name = event["event"]
    if name in IGNORED:
        return None
    if name not in EVENTS:
        raise InvalidEvent(f"unknown SendGrid event {name!r}")
    timestamp = event.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise InvalidEvent("timestamp must be Unix seconds")
    campaign = _campaign(event)
    properties: dict[str, Any] = {"campaign": campaign} if campaign else {}
    if isinstance(event.get("url"), str):
        properties["link"] = event["url"]
    message = {
        "type": "track",
        "event": EVENTS[name],
        "messageId": event.get("sg_event_id"),
        "timestamp": datetime.fromtimestamp(timestamp, tz=UTC).isoformat(),
        "context": {
            "traits": {"email": event.get("email")},
            "campaign": {"name": campaign} if campaign else {},
            "channel": "email",
        },
        "properties": properties,
    }
    envelope = from_segment(message, site=site, received_at=received_at)
    if envelope["email"] is None:
        raise InvalidEvent("email must be an email address")
    reader_agent = event.get("useragent") if isinstance(event.get("useragent"), str) else None
    reader_ip = event.get("ip") if isinstance(event.get("ip"), str) else None
    if reader_agent:
        envelope["context"]["user_agent"] = reader_agent[:512]
    truncated = truncate_ip(reader_ip)
    if truncated:
        envelope["context"]["ip"] = truncated
    if envelope["type"] in ("email_open", "email_click"):
        envelope["machine"] = email_machine(envelope["type"], reader_agent, reader_ip)
    return envelope


def _campaign(event: dict[str, Any]) -> str | None:
    """The campaign: a `campaign` custom argument, else the first category."""
    if isinstance(event.get("campaign"), str):
        return str(event["campaign"])
    category = event.get("category")
    if isinstance(category, list) and category and isinstance(category[0], str):
        return category[0]
    return category if isinstance(category, str) else None
