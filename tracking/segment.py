"""The collector's Segment normaliser: one Segment HTTP Tracking API message becomes an
envelope (`contracts/envelope.py`), or `InvalidEvent` with a reason. Pure: no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from config.sites import Site
from contracts.envelope import (
    CALL_TYPES,
    CHANNELS,
    FORGET,
    RESERVED_PREFIX,
    Context,
    Envelope,
    InvalidEvent,
    Page,
    check_nesting,
    check_not_anonymous,
)
from tracking import user_hash
from tracking.ids import new_id
from tracking.machines import email_machine, web_bot

MAX_ID_CHARS: Final = 200
MAX_TEXT_CHARS: Final = 2048
# Trusted sources may backdate events (imports) but not by more than this, nor post-date.
MAX_PAST_MS: Final = 366 * 86_400_000
MAX_FUTURE_MS: Final = 5 * 60_000

# Segment spec event names that DBL treats as first-class signal types.
_TRACK_TYPES: Final = {
    "Email Opened": ("email_open", "email"),
    "Email Link Clicked": ("email_click", "email"),
    "Form Submitted": ("form_submit", "web"),
}
_EVENT_CHANNEL_WORDS: Final = ("webinar", "trade show", "tradeshow", "conference", "meetup")

# Ids that SDKs and broken sites send when they have none; never an identity.
_JUNK_IDS: Final = frozenset(
    {"", "0", "-1", "null", "none", "nil", "nan", "undefined", "anonymous", "guest"}
    | {"unknown", "[object object]", "true", "false", "id", "email", "user"}
)


def is_junk_id(value: str) -> bool:
    """True for placeholder ids (`null`, `undefined`, `"0"`...) that must never identify anyone,
    and for ids starting with the noncharacter U+10FFFF (the dataflow's reserved key prefix)."""
    if value.startswith(RESERVED_PREFIX):
        return True
    return value.strip().strip("'\"").strip().lower() in _JUNK_IDS


def normalize_email(value: Any) -> str | None:
    """A lower-cased, trimmed email address, or None when it is not one."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 254 or " " in email:
        return None
    return email


def from_segment(
    message: Any,
    *,
    site: Site,
    received_at: int,
    call_type: str | None = None,
    user_agent: str | None = None,
    ip: str | None = None,
    signed_email: str | None = None,
) -> Envelope:
    """Normalise one Segment message (`/v1/track`, a `/v1/batch` item...) into an envelope.

    `ip` must already be truncated (`tracking.machines.truncate_ip`). `signed_email` is a
    contact proven by a signed link: it becomes the email, with trust `signed`."""
    if not isinstance(message, dict):
        raise InvalidEvent("an event must be a JSON object")
    check_nesting(message)
    segment_type = call_type or _text(message, "type", required=True)
    if segment_type not in CALL_TYPES:
        raise InvalidEvent(f"type must be one of {sorted(CALL_TYPES)}, got {segment_type!r}")
    # A forget names a contact, never a cookie (it is keyed, and applied, by the contact).
    anon_id = None if segment_type == FORGET else _identifier(message, "anonymousId")
    user_id = _identifier(message, "userId")
    context = _object(message, "context")
    traits = _traits(message, segment_type, context)
    claimed = normalize_email(traits.get("email"))
    if signed_email is not None and (user_id is not None or claimed not in (None, signed_email)):
        # A signed link proves the one contact it names; a call that names anyone else
        # (another email, a user id the link cannot vouch for) is only a claim.
        signed_email = None
    email = normalize_email(signed_email) or claimed
    check_not_anonymous(("userId", user_id), ("email", email))
    if anon_id is None and user_id is None and email is None:
        if segment_type == FORGET:
            raise InvalidEvent("a forget names the contact: a userId or an email trait")
        raise InvalidEvent("an event needs an anonymousId, a userId or an email trait")
    if segment_type == FORGET and site.trust != "server":
        raise InvalidEvent("only a server write key may ask to forget a contact")
    verified = _verified_claim(context, site, user_id, email)
    event = _text(message, "event", required=segment_type == "track")
    envelope_type, channel = _type_and_channel(segment_type, event, message, context)
    props = _props(message, segment_type, traits, site)
    context_out = _context(segment_type, message, context, user_agent)
    if ip:
        context_out["ip"] = ip
    return Envelope(
        id=_text(message, "messageId") or new_id(),
        type=envelope_type,
        channel=channel,
        ts=_event_time(message, site, received_at),
        received_at=received_at,
        anon_id=anon_id,
        user_id=user_id,
        email=email,
        account=_account(message, segment_type, context, traits),
        name=_person_name(traits),
        event=event,
        props=props,
        context=context_out,
        source=site.name,
        trust="signed" if signed_email or verified else site.trust,
        machine=_machine(envelope_type, site, context_out.get("user_agent"), ip),
    )


def _props(
    message: dict[str, Any], segment_type: str, traits: dict[str, Any], site: Site
) -> dict[str, Any]:
    if segment_type in ("identify", "group"):
        return traits
    if segment_type == "alias":
        return _merged_contact(message, site)
    if segment_type == FORGET:
        return {}  # nothing about a contact to be forgotten is kept
    return _object(message, "properties")


def _merged_contact(message: dict[str, Any], site: Site) -> dict[str, Any]:
    """A server-side alias merges the contact `previousId` (a user id or an email) into the
    one it names; from a browser key it is only a claim of identity, and merges nothing."""
    if site.trust != "server":
        return {}
    previous = _identifier(message, "previousId")
    if previous is None:
        raise InvalidEvent("an alias needs a previousId: the contact to merge into this one")
    return {"previous_id": normalize_email(previous) or previous}


def _verified_claim(
    context: dict[str, Any], site: Site, user_id: str | None, email: str | None
) -> bool:
    """True when the call carries a `context.user_hash` that signs its user id (or email)
    with the site's secret (`tracking/user_hash.py`); False when it carries none. A hash
    that does not check out is refused: the site's developer must see it, rather than get
    a quietly weaker identity."""
    given = context.get("user_hash")
    if given is None:
        return False
    identity = user_id or email
    if not isinstance(given, str) or identity is None:
        raise InvalidEvent("user_hash must be a string, and the call needs a userId or email")
    if site.secret is None:
        raise InvalidEvent(f"user_hash given, but site {site.name!r} has no secret")
    if not user_hash.signs(given, site.secret, identity):
        raise InvalidEvent("user_hash does not sign this userId (or email)")
    return True


def _machine(kind: str, site: Site, user_agent: str | None, ip: str | None) -> str | None:
    """Browsers' signals are checked for bots and scanners; a server key speaks for itself."""
    if site.trust == "server":
        return None
    if kind in ("email_open", "email_click"):
        return email_machine(kind, user_agent, ip)
    return web_bot(user_agent)


def _text(message: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = message.get(key)
    if value is None:
        if required:
            raise InvalidEvent(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{key} must be a string")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidEvent(f"{key} is longer than {MAX_TEXT_CHARS} characters")
    return value


def _identifier(message: dict[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent(f"{key} must be a string")
    text = str(value).strip()
    if len(text) > MAX_ID_CHARS:
        raise InvalidEvent(f"{key} is longer than {MAX_ID_CHARS} characters")
    return None if is_junk_id(text) else text


def _object(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent(f"{key} must be a JSON object")
    return value


def _traits(message: dict[str, Any], segment_type: str, context: dict[str, Any]) -> dict[str, Any]:
    own = _object(message, "traits") if segment_type in ("identify", "group", FORGET) else {}
    from_context = context.get("traits")
    merged = dict(from_context) if isinstance(from_context, dict) else {}
    if segment_type == "track":
        props = _object(message, "properties")
        if "email" in props:
            merged["email"] = props["email"]
    merged.update(own)
    return merged


def _type_and_channel(
    segment_type: str, event: str | None, message: dict[str, Any], context: dict[str, Any]
) -> tuple[str, str]:
    if segment_type == "track" and event in _TRACK_TYPES:
        return _TRACK_TYPES[event]
    if segment_type == FORGET:
        return FORGET, "crm"
    declared = context.get("channel")
    if isinstance(declared, str) and declared in CHANNELS:
        return segment_type, declared
    if event and any(word in event.lower() for word in _EVENT_CHANNEL_WORDS):
        return segment_type, "event"
    return segment_type, "web"


def _event_time(message: dict[str, Any], site: Site, received_at: int) -> int:
    """Browser clocks are not trusted: only server keys may set the event time."""
    raw = message.get("timestamp")
    if site.trust != "server" or raw is None:
        return received_at
    if not isinstance(raw, str):
        raise InvalidEvent("timestamp must be an ISO-8601 string")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidEvent(f"timestamp {raw[:64]!r} is not ISO-8601") from None
    if parsed.tzinfo is None:
        raise InvalidEvent("timestamp needs a time zone (e.g. Z or +00:00)")
    ts = int(parsed.timestamp() * 1000)
    if ts > received_at + MAX_FUTURE_MS:
        raise InvalidEvent("timestamp is in the future")
    if ts < received_at - MAX_PAST_MS:
        raise InvalidEvent("timestamp is more than a year in the past")
    return ts


def _account(
    message: dict[str, Any], segment_type: str, context: dict[str, Any], traits: dict[str, Any]
) -> str | None:
    candidates = (
        message.get("groupId") if segment_type == "group" else None,
        context.get("groupId"),
        traits.get("account_id"),
    )
    for value in candidates:
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:MAX_ID_CHARS]
    return None


def _person_name(traits: dict[str, Any]) -> str | None:
    name = traits.get("name")
    if not isinstance(name, str) or not name.strip():
        parts = [traits.get("first_name"), traits.get("last_name")]
        parts += [traits.get("firstName"), traits.get("lastName")]
        name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return name[:200] if name else None


def _context(
    segment_type: str, message: dict[str, Any], context: dict[str, Any], user_agent: str | None
) -> Context:
    out = Context()
    page = _page(segment_type, message, context)
    if page:
        out["page"] = page
    campaign = context.get("campaign")
    if isinstance(campaign, dict):
        out["campaign"] = campaign
    agent = context.get("userAgent")
    agent = agent if isinstance(agent, str) else user_agent
    if agent:
        out["user_agent"] = agent[:512]
    return out


def _page(segment_type: str, message: dict[str, Any], context: dict[str, Any]) -> Page:
    sources: list[dict[str, Any]] = []
    if segment_type in ("page", "screen"):
        sources.append(_object(message, "properties"))
    if isinstance(context.get("page"), dict):
        sources.append(context["page"])
    page = Page()
    for source in sources:
        for key in ("url", "path", "referrer", "title"):
            value = source.get(key)
            if isinstance(value, str) and key not in page:
                page[key] = value[:MAX_TEXT_CHARS]
    if "path" not in page and "url" in page:
        page["path"] = urlsplit(page["url"]).path or "/"
    return page
