"""A rep's word on an alert: the actions a rep may take, what the dispatcher keeps of each
delivered alert to check them, the signal feedback becomes on the events log, and the
precision it measures. Pure: no I/O.

>>> counts = {"kind\\x1fkey_action\\x1fuseful": 3, "kind\\x1fkey_action\\x1fnot_useful": 1}
>>> precision(counts)["by_kind"]["key_action"]["precision"]
0.75
"""

from __future__ import annotations

import hashlib
from typing import Any, Final, TypedDict

from contracts.envelope import Envelope

# Ratings say whether an alert was worth it; precision is useful ÷ rated.
RATINGS: Final = ("useful", "not_useful", "already_working")
SNOOZE: Final = "snooze"
ACTIONS: Final = (*RATINGS, SNOOZE)
# What a snooze silences for the rep: the lead, or its whole account.
SCOPES: Final = ("lead", "account")
SNOOZE_DAYS: Final = 7
# The event a rep's feedback is on the events log (a server signal, never engagement).
FEEDBACK_EVENT: Final = "Alert Feedback"
_SEP: Final = "\x1f"


class Delivered(TypedDict):
    """What the dispatcher keeps of an alert it delivered, under its id: whose it is and
    what it was about (feedback is checked against it)."""

    rep: str
    kind: str
    rule: str
    contact: str | None
    account: str | None


def delivered(alert: dict[str, Any], rep: str) -> Delivered:
    """The record kept of a delivered alert.

    >>> delivered({"kind": "key_action", "rule": "pricing", "contact": "d@a.com",
    ...            "account": "a.com"}, "sam")["rule"]
    'pricing'
    """
    return {
        "rep": rep,
        "kind": alert["kind"],
        "rule": rule_of(alert),
        "contact": alert.get("contact"),
        "account": alert.get("account"),
    }


def rule_of(alert: dict[str, Any]) -> str:
    """The rule that raised an alert: a key action's id, else its kind."""
    return str(alert.get("rule") or alert["kind"])


def feedback_signal(
    alert_id: str, said: Delivered, rep_name: str, action: str, scope: str, now_ms: int
) -> Envelope | None:
    """The signal a rep's feedback on a contact's alert is on the events log (None for an
    account alert: the log is keyed by person)."""
    contact = said["contact"]
    if contact is None:
        return None
    digest = hashlib.sha256(_SEP.join((alert_id, action, scope, str(now_ms))).encode())
    return {
        "id": "feedback-" + digest.hexdigest()[:24],
        "type": "track",
        "channel": "crm",
        "ts": now_ms,
        "received_at": now_ms,
        "anon_id": None,
        "user_id": contact,
        "email": None,
        "account": None,
        "name": None,
        "event": FEEDBACK_EVENT,
        "props": {
            "alert_id": alert_id,
            "action": action,
            "scope": scope,
            "kind": said["kind"],
            "rule": said["rule"],
            "rep": said["rep"],
            "rep_name": rep_name,
        },
        "context": {},
        "source": "reps",
        "trust": "server",
        "machine": None,
    }


def is_feedback(signal: Any) -> bool:
    """A rep's feedback on the events log (from the rep service: a server signal). A browser
    sending the same event name sends a plain track call."""
    return bool(signal.get("event") == FEEDBACK_EVENT and signal.get("trust") == "server")


def describe_feedback(props: dict[str, Any]) -> str:
    """The lead's timeline line: who said what of which alert.

    >>> describe_feedback({"rep_name": "Sam Patel", "action": "not_useful", "kind": "key_action"})
    'Sam Patel: not useful (key action)'
    """
    action = str(props.get("action", "")).replace("_", " ")
    kind = str(props.get("kind", "")).replace("_", " ")
    return f"{props.get('rep_name') or props.get('rep')}: {action} ({kind})"


def count_field(group: str, name: str, rating: str) -> str:
    """The field of the ratings hash counting `rating` for one kind or rule."""
    return _SEP.join((group, name, rating))


def precision(counts: dict[str, int]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Ratings by kind and by rule with their precision (useful ÷ rated; None unrated)."""
    answer: dict[str, dict[str, dict[str, float | int | None]]] = {"by_kind": {}, "by_rule": {}}
    for field, count in counts.items():
        group, name, rating = field.split(_SEP)
        row = answer[f"by_{group}"].setdefault(name, dict.fromkeys(RATINGS, 0))
        row[rating] = int(count)
    for rows in answer.values():
        for row in rows.values():
            rated = sum(int(row[r] or 0) for r in RATINGS)
            row["rated"] = rated
            row["precision"] = round(int(row["useful"] or 0) / rated, 4) if rated else None
    return answer
