"""Webhook calls: the Slack and JSON bodies, Standard Webhooks signatures, one guarded POST.

Every call carries `webhook-id` (the alert id), `webhook-timestamp` (Unix seconds) and
`webhook-signature` (`v1,<base64 HMAC-SHA256>` of `"<id>.<timestamp>.<body>"`, keyed by the
webhook's `whsec_` secret), signed by the `standardwebhooks` library, so a receiver checks
with any Standard Webhooks library that it came from us, unchanged, recently, and drops
repeats by id.
"""

from __future__ import annotations

import random
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import standardwebhooks

from config.routing import Delivery, Webhook
from contracts import codec
from contracts.errors import DBLError
from contracts.feedback import ACTIONS

USER_AGENT = "dbl-dispatcher/1"
# A digest lists this many alerts in Slack (all of them in JSON); Slack's text limit.
DIGEST_LINES = 30
SLACK_TEXT_MAX = 3000


class DeliveryFailed(DBLError):
    """A webhook call did not get a 2xx; `reason` says what happened (it will be retried)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one call (`secret`: `whsec_…`).

    >>> secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"
    >>> sign(secret, "a-1", 1700000000, b'{"x":1}')
    'v1,9QDzeqZT9m5ktqfkH+K+CsiSe0OAVI7sg9xiBGQJGxs='
    """
    moment = datetime.fromtimestamp(timestamp, UTC)
    return standardwebhooks.Webhook(secret).sign(message_id, moment, body.decode())


def render(alert: dict[str, Any], rep_name: str, fmt: str, event: str = "created") -> bytes:
    """The request body: the alert as JSON (`type` `alert.created` for a thread's first
    push, `alert.updated` for a later alert of the same visit; `thread` says which;
    `feedback`: where the rep's token may rate it), or a Slack message with buttons."""
    if fmt == "json":
        thread = alert.get("thread") or alert["id"]
        feedback = {"url": f"/v1/alerts/{alert['id']}/feedback", "actions": list(ACTIONS)}
        return codec.dumps(
            {
                "type": f"alert.{event}",
                "thread": thread,
                "rep": rep_name,
                "alert": alert,
                "feedback": feedback,
            }
        )
    text = slack_text(alert, rep_name)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_TEXT_MAX]}}
    return codec.dumps({"text": text, "blocks": [section, slack_buttons(alert)]})


def render_digest(alerts: list[dict[str, Any]], rep_name: str, fmt: str) -> bytes:
    """One message for the alerts held during a rep's quiet hours (oldest first): as JSON
    `{type: "alert.digest", rep, alerts}`, or a Slack message listing them.

    >>> body = render_digest([{"kind": "sales_ready", "contact": "d@a.com", "grade": "A2",
    ...     "reason": "entered A2", "profile": {"name": "Dana"}}], "Sam Patel", "slack")
    >>> print(codec.loads(body)["text"])
    *While you were away* (1 alert) for Sam Patel:
    • sales ready: Dana (A2): entered A2
    """
    if fmt == "json":
        return codec.dumps({"type": "alert.digest", "rep": rep_name, "alerts": alerts})
    lines = [
        f"*While you were away* ({len(alerts)} alert{'s' * (len(alerts) != 1)}) for "
        f"{_slack(rep_name)}:"
    ]
    for alert in alerts[:DIGEST_LINES]:
        who = (
            (alert.get("profile") or {}).get("name") or alert.get("contact") or alert.get("account")
        )
        grade = f" ({_slack(alert['grade'])})" if alert.get("grade") else ""
        kind = alert["kind"].replace("_", " ")
        lines.append(f"• {_slack(kind)}: {_slack(who)}{grade}: {_slack(alert.get('reason', ''))}")
    if len(alerts) > DIGEST_LINES:
        lines.append(f"… and {len(alerts) - DIGEST_LINES} more on your live page")
    return codec.dumps({"text": "\n".join(lines)[:SLACK_TEXT_MAX]})


def render_daily(leads: list[dict[str, Any]], rep_name: str, day: str, fmt: str) -> bytes:
    """The daily digest: the rep's hottest leads of the day with why, as JSON
    `{type: "leads.daily", rep, day, leads}` or a Slack message.

    >>> body = render_daily([{"person": "d@a.com", "name": "Dana", "company": "Acme",
    ...     "grade": "A2", "engagement": 40.0, "top_signals": [["Viewed pricing", 30.0]]}],
    ...     "Sam Patel", "2026-03-11", "slack")
    >>> print(codec.loads(body)["text"])
    *Your hottest leads* on 2026-03-11, Sam Patel:
    1. Dana (Acme): A2, engagement 40.0: Viewed pricing (30.0)
    """
    if fmt == "json":
        return codec.dumps({"type": "leads.daily", "rep": rep_name, "day": day, "leads": leads})
    lines = [f"*Your hottest leads* on {day}, {_slack(rep_name)}:"]
    for n, lead in enumerate(leads, start=1):
        company = f" ({_slack(lead['company'])})" if lead.get("company") else ""
        why = ", ".join(f"{label} ({points})" for label, points in lead.get("top_signals") or [])
        lines.append(
            f"{n}. {_slack(lead.get('name') or lead['person'])}{company}: {_slack(lead['grade'])}, "
            f"engagement {lead['engagement']}: {_slack(why)}"
        )
    if not leads:
        lines.append("No lead of yours was active in the last day.")
    return codec.dumps({"text": "\n".join(lines)[:SLACK_TEXT_MAX]})


def slack_buttons(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert's feedback buttons: a click comes back signed to `/v1/slack/actions`.

    >>> [b["action_id"] for b in slack_buttons({"id": "a1", "contact": "d@a.com",
    ...     "account": "a.com"})["elements"]]
    ['useful', 'not_useful', 'already_working', 'snooze', 'snooze:account']
    """
    labels = {
        "useful": "Useful",
        "not_useful": "Not useful",
        "already_working": "Already working it",
        "snooze": "Snooze lead 7 d",
        "snooze:account": "Snooze account 7 d",
    }
    if alert.get("contact") is None:
        del labels["snooze"]
    if alert.get("account") is None:
        del labels["snooze:account"]
    buttons = [
        {
            "type": "button",
            "action_id": action,
            "value": alert["id"],
            "text": {"type": "plain_text", "text": label},
        }
        for action, label in labels.items()
    ]
    return {"type": "actions", "block_id": "feedback", "elements": buttons}


def slack_text(alert: dict[str, Any], rep_name: str) -> str:
    """The Slack message; visitor-typed text is escaped so it cannot mention or link."""
    profile = alert.get("profile") or {}
    if alert.get("contact") is None:
        return _account_text(alert, profile, rep_name)
    who = profile.get("name") or alert["contact"]
    company = profile.get("company") or alert.get("account") or ""
    lines = [
        f"*{_slack(alert['kind'].replace('_', ' '))}* for {_slack(rep_name)}: "
        f"{_slack(who)}{' of ' + _slack(company) if company else ''} "
        f"({_slack(alert.get('grade'))}, fit {alert.get('fit')}, "
        f"engagement {alert.get('engagement')})",
        _slack(alert.get("reason", "")),
    ]
    confidence = identity_line(alert)
    if confidence:
        lines.append(f"_{_slack(confidence)}_")
    for _ts, what in (profile.get("activity") or [])[:5]:
        lines.append(f"• {_slack(what)}")
    return "\n".join(lines)


def _account_text(alert: dict[str, Any], profile: dict[str, Any], rep_name: str) -> str:
    """An account alert: the account, its summed engagement, its engaged contacts."""
    lines = [
        f"*{_slack(alert['kind'].replace('_', ' '))}* for {_slack(rep_name)}: "
        f"{_slack(alert.get('account'))} (account engagement {alert.get('engagement')})",
        _slack(alert.get("reason", "")),
    ]
    for contact in (profile.get("contacts") or [])[:5]:
        title = f", {contact.get('title')}" if contact.get("title") else ""
        who = contact.get("name") or contact.get("person")
        lines.append(f"• {_slack(who)}{_slack(title)} ({_slack(contact.get('grade'))})")
    return "\n".join(lines)


def identity_line(alert: dict[str, Any]) -> str | None:
    """How sure DBL is of who this is, when a rep should know: an unverified claim.

    >>> identity_line({"identity": {"recognized_by": "form_fill", "verified": False}})
    'unverified claim (form fill): the person may not be who they say'
    >>> identity_line({"identity": {"recognized_by": "server", "verified": True}}) is None
    True
    """
    identity = alert.get("identity") or {}
    if identity.get("verified", True):
        return None
    how = str(identity.get("recognized_by") or "browser").replace("_", " ")
    return f"unverified claim ({how}): the person may not be who they say"


def _slack(value: Any) -> str:
    # Slack's own escaping: & < > are the only control characters in message text.
    text = "".join(ch for ch in str(value) if ch.isprintable())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Only configured URLs are called: a redirect elsewhere is a failure, not a hop."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def post(webhook: Webhook, message_id: str, body: bytes, now_s: int, timeout_s: float) -> None:
    """POST one signed call; raises `DeliveryFailed` unless the receiver answers 2xx."""
    request = urllib.request.Request(
        webhook.url,
        data=body,
        method="POST",
        headers={
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(now_s),
            "webhook-signature": sign(webhook.secret, message_id, now_s, body),
        },
    )
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DeliveryFailed(f"no answer: {getattr(exc, 'reason', exc)}") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status}")


def backoff_s(attempt: int, delivery: Delivery, rng: random.Random) -> float:
    """Seconds before retry number `attempt` (1-based): exponential, capped, full jitter."""
    ceiling = min(delivery.backoff_max_s, delivery.backoff_s * 2 ** (attempt - 1))
    return rng.uniform(0, ceiling)
