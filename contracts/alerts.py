"""The alert: the value of every message on `dbl.alerts`, read by the dispatcher, the live
page and webhook receivers. Fields are only ever added.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, NotRequired, TypedDict

from contracts.read_model import ProfileView

Kind = Literal["sales_ready", "cooling", "key_action", "live_visit", "account_surge"]


class Identity(TypedDict):
    """How the person behind the alert's signal was recognized, and whether that proof
    could be forged with a public write key."""

    recognized_by: str | None
    verified: bool


class Alert(TypedDict):
    """One moment a rep should know about, with the profile that explains it."""

    id: str
    kind: str
    # Event time (epoch ms) of the moment.
    ts: int
    # The contact it is about (None for an account alert: `account_surge`).
    contact: str | None
    account: str | None
    owner: str | None
    # The contact's grade and fit (None for an account alert); its engagement, or the
    # account's summed engagement.
    grade: str | None
    fit: float | None
    engagement: float
    reason: str
    # A signal that arrived late (after later ones) caused it.
    late: bool
    # The id of the signal that raised it (None for a timed one, cooling, and for an
    # account alert).
    signal: str | None
    identity: Identity
    # The version of the scoring model that raised it (a content hash).
    model: str
    # The contact's chance of the model's outcome (0..1) when the model knows it; None for
    # an account alert or a model without one.
    probability: float | None
    # The contact's profile; for an account alert the account: person (the account key),
    # account, owner, engagement, and contacts (each person, name, title, grade, owner;
    # the engaged ones, most engaged first).
    profile: ProfileView | dict[str, Any]
    # account_surge only: the account's engaged contacts' keys.
    contacts: NotRequired[list[str]]
    # The lead's visit (its session) the alert belongs to: alerts of one visit share it and
    # make one thread for the rep. None for a cooling by decay and for account alerts.
    thread: NotRequired[str | None]
    # key_action only: the id of the key action that raised it (precision is per rule).
    rule: NotRequired[str]


def visit_thread(contact: str, session_start: int) -> str:
    """The thread id of a lead's visit (the session that started at `session_start`).

    >>> visit_thread("dana@acme.com", 1) == visit_thread("dana@acme.com", 1)
    True
    >>> visit_thread("dana@acme.com", 1) != visit_thread("dana@acme.com", 2)
    True
    """
    return alert_id(contact, "visit", session_start)


def alert_id(subject: str, kind: str, ordinal: int | str) -> str:
    """Deterministic alert id: the same crossing or session after a replay gets the same id
    (the subject is the contact, or the account for account alerts).

    >>> len(alert_id("dana@acme.com", "sales_ready", 1))
    32
    """
    digest = hashlib.sha256(f"{subject}\x1f{kind}\x1f{ordinal}".encode()).hexdigest()
    return digest[:32]
