"""The event envelope: the value of every message on `dbl.events`, and its decoder.

Everything downstream of the collector reads envelopes, and anything may have been written
to the topic, so `decode` checks each one and raises `InvalidEvent` with a reason. Pure: no
I/O. The collector builds envelopes from Segment calls (`tracking/segment.py`).

>>> key = partition_key(decode(b'{"id": "e1", "type": "page", "channel": "web", '
...     b'"ts": 1767225600000, "received_at": 1767225600000, "anon_id": "cookie-1", '
...     b'"source": "www", "trust": "browser"}'))
>>> key
'cookie-1'
"""

from __future__ import annotations

from typing import Any, Final, NotRequired, TypedDict

from contracts import codec
from contracts.errors import DBLError

# Properties and traits are flat in practice; anything nested deeper is refused, so no reader
# down the line (the dataflow, the profile API, a rep's browser) pays for someone's bomb.
MAX_NESTING: Final = 16
# Envelopes from the broker must carry times in this range (2000-01-01 to 2100-01-01).
EARLIEST_MS: Final = 946_684_800_000
LATEST_MS: Final = 4_102_444_800_000

SEGMENT_TYPES: Final = frozenset({"page", "screen", "track", "identify", "alias", "group"})
# A trusted request to erase a contact (right to be forgotten): server write keys only.
FORGET: Final = "forget"
CALL_TYPES: Final = SEGMENT_TYPES | {FORGET}
ENVELOPE_TYPES: Final = CALL_TYPES | {"email_open", "email_click", "form_submit"}
CHANNELS: Final = frozenset({"web", "email", "event", "crm"})
TRUSTS: Final = frozenset({"browser", "signed", "server"})

# Why a machine, not a person, made a signal (`machine`); a fixed set: they are metric labels.
WEB_BOT: Final = "web_bot"
LINK_SCANNER: Final = "link_scanner"
MAIL_PROXY: Final = "mail_privacy_proxy"
SCANNER_TIMING: Final = "clicked_at_delivery"
SCANNER_BURST: Final = "click_burst"
MACHINE_REASONS: Final = (WEB_BOT, LINK_SCANNER, MAIL_PROXY, SCANNER_TIMING, SCANNER_BURST)

# Person keys of anonymous visitors start with this: no contact's id or email may.
ANONYMOUS_PREFIX: Final = "anon:"
# Keys the dataflow reserves for addressing its workers start with this noncharacter.
RESERVED_PREFIX: Final = "\U0010ffff"


class InvalidEvent(DBLError):
    """An event that cannot be accepted; `reason` says why, for the sender and the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Page(TypedDict, total=False):
    url: str
    path: str
    referrer: str
    title: str


class Context(TypedDict, total=False):
    page: Page
    campaign: dict[str, Any]
    user_agent: str
    ip: str


class Envelope(TypedDict):
    """One signal, normalised. Times are epoch milliseconds; `ts` is event time."""

    id: str
    type: str
    channel: str
    ts: int
    received_at: int
    anon_id: str | None
    user_id: str | None
    email: str | None
    account: str | None
    name: str | None
    event: str | None
    props: dict[str, Any]
    context: Context
    source: str
    trust: str
    # Why a machine, not a person, made this signal (kept out of scores), or None.
    machine: str | None
    # The version of the scoring model in effect at the signal's place in the log: set by
    # the dataflow as it reads the log ("" before any publication), never by the collector.
    model: NotRequired[str]


def contact_key(user_id: str | None, email: str | None) -> str | None:
    """The person key of a known contact: the user id, else the normalised email."""
    return user_id or email


def partition_key(envelope: Envelope) -> str:
    """The broker key: the anonymous id, else the contact key (one is always present)."""
    key = envelope["anon_id"] or contact_key(envelope["user_id"], envelope["email"])
    assert key is not None, "from_segment and decode guarantee an id"
    return key


def check_not_anonymous(*named: tuple[str, str | None]) -> None:
    """`anon:<cookie>` is the read-model key of that cookie's visitor: no contact may take it."""
    for name, value in named:
        if value is not None and value.startswith(ANONYMOUS_PREFIX):
            raise InvalidEvent(f"{name} may not start with {ANONYMOUS_PREFIX!r} (visitor keys)")


_REQUIRED_TEXT: Final = ("id", "type", "channel", "source", "trust")
_OPTIONAL_TEXT: Final = ("anon_id", "user_id", "email", "account", "name", "event", "machine")


def decode(raw: bytes | None) -> Envelope:
    """Parse and check an envelope read from the broker; raises `InvalidEvent` with the reason."""
    if raw is None:
        raise InvalidEvent("the message has no value")
    try:
        data = codec.loads(raw)
    except codec.JSONDecodeError as exc:
        raise InvalidEvent(f"the value is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent("the value is not a JSON object")
    if raw.count(b"{") + raw.count(b"[") > MAX_NESTING:  # else it cannot nest that deep
        check_nesting(data)
    for key in _REQUIRED_TEXT:
        if not isinstance(data.get(key), str) or not data[key]:
            raise InvalidEvent(f"{key} must be a non-empty string")
    for key in _OPTIONAL_TEXT:
        data.setdefault(key, None)
        if data[key] is not None and not isinstance(data[key], str):
            raise InvalidEvent(f"{key} must be a string or null")
    for key in ("anon_id", "user_id", "email", "account"):
        if data[key] is not None and data[key].startswith(RESERVED_PREFIX):
            raise InvalidEvent(f"{key} starts with a reserved character")
    check_not_anonymous(("user_id", data["user_id"]), ("email", data["email"]))
    for key in ("ts", "received_at"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidEvent(f"{key} must be epoch milliseconds")
        if not EARLIEST_MS <= value <= LATEST_MS:
            raise InvalidEvent(f"{key} {value} is not a plausible time (years 2000 to 2100)")
    for key in ("props", "context"):
        data.setdefault(key, {})
        if not isinstance(data[key], dict):
            raise InvalidEvent(f"{key} must be a JSON object")
    _check_context(data["context"])
    _check_choice(data, "type", ENVELOPE_TYPES)
    _check_choice(data, "channel", CHANNELS)
    _check_choice(data, "trust", TRUSTS)
    if data["machine"] is not None and data["machine"] not in MACHINE_REASONS:
        raise InvalidEvent(f"machine {data['machine']!r} is not one of {list(MACHINE_REASONS)}")
    if not (data["anon_id"] or data["user_id"] or data["email"]):
        raise InvalidEvent("the event has neither anon_id, user_id nor email")
    return data  # type: ignore[return-value]


def check_nesting(event: dict[str, Any]) -> None:
    """Refuse objects and arrays nested more than MAX_NESTING levels deep."""
    level: list[Any] = [event]
    for _ in range(MAX_NESTING):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        ]
        if not level:
            return
    raise InvalidEvent(f"the event nests deeper than {MAX_NESTING} levels")


def _check_context(context: dict[str, Any]) -> None:
    page = context.get("page")
    if page is not None:
        if not isinstance(page, dict):
            raise InvalidEvent("context.page must be a JSON object")
        for key, value in page.items():
            if not isinstance(value, str):
                raise InvalidEvent(f"context.page.{key} must be a string")
    if "campaign" in context and not isinstance(context["campaign"], dict):
        raise InvalidEvent("context.campaign must be a JSON object")
    for key in ("user_agent", "ip"):
        if key in context and not isinstance(context[key], str):
            raise InvalidEvent(f"context.{key} must be a string")


def _check_choice(data: dict[str, Any], key: str, allowed: frozenset[str]) -> None:
    if data[key] not in allowed:
        raise InvalidEvent(f"{key} {data[key]!r} is not one of {sorted(allowed)}")
