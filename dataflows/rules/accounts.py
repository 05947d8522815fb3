"""Account rollup: engagement summed over an account's contacts, and surge detection. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from config.scoring import AccountSurge
from contracts.alerts import Alert, alert_id
from contracts.read_model import ProfileView
from dataflows.rules.leads import LeadUpdate
from dataflows.rules.trust import is_verified

# What an account alert shows of each contact (`Account.contacts` holds the rest).
SHOWN: Final = ("person", "name", "title", "grade", "owner")


@dataclass(slots=True)
class Account:
    """What an account keeps: each contact's latest engagement and when they were engaged."""

    engagement: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    # Contacts by when they were last engaged, oldest first (pruned past the window).
    engaged_at: dict[str, int] = field(default_factory=dict)
    surging: bool = False
    surges: int = 0
    # Each counted contact as a surge shows it: [name, title, grade, owner].
    contacts: dict[str, list[str | None]] = field(default_factory=dict)


def roll_up(
    account: Account, view: ProfileView, rule: AccountSurge, *, late: bool = False
) -> Alert | None:
    """Fold a contact's new view into its account; returns an `account_surge` alert when the
    account starts surging (it must calm down before it can surge again)."""
    contact, now = view["person"], view["as_of"]
    account.total += view["engagement"] - account.engagement.get(contact, 0.0)
    account.engagement[contact] = view["engagement"]
    account.contacts[contact] = [view["name"], view["title"], view["grade"], view["owner"]]
    if view["engagement"] >= rule.engaged_at_least:
        # Re-inserted, so the dict stays ordered by engagement time and pruning is cheap.
        last = account.engaged_at.pop(contact, now)
        account.engaged_at[contact] = max(now, last)
    while account.engaged_at:
        oldest, ts = next(iter(account.engaged_at.items()))
        if now - ts <= rule.window_ms:
            break
        del account.engaged_at[oldest]
    total = account.total
    surging = len(account.engaged_at) >= rule.engaged_contacts or total >= rule.account_engagement
    started = surging and not account.surging
    account.surging = surging
    if not started:
        return None
    account.surges += 1
    key = view["account"]
    assert key is not None, "only a lead with an account rolls up"
    reason = (
        f"{key} is surging: {len(account.engaged_at)} engaged contacts in "
        f"{rule.window_ms / 86_400_000:.0f} days, account engagement {total:.0f}"
    )
    return surge_alert(account, key, now, reason, late=late, model=view.get("model", ""))


def surge_alert(
    account: Account, key: str, now: int, reason: str, *, late: bool, model: str
) -> Alert:
    """An `account_surge` alert: about the account, not one of its contacts. It names the
    engaged contacts (most engaged first) and goes to the account's owner: the owner most
    of its engaged contacts have (ties: the most engaged contact's), else as routing
    places the account."""
    engaged = sorted(account.engaged_at, key=lambda c: (-account.engagement[c], c))
    shown = engaged or sorted(account.engagement, key=lambda c: (-account.engagement[c], c))[:5]
    contacts = [
        dict(zip(SHOWN, [c, *account.contacts[c]], strict=True))
        for c in shown
        if c in account.contacts
    ]
    owners = [c["owner"] for c in contacts if c["owner"]]
    owner = max(owners, key=owners.count) if owners else None
    engagement = round(account.total, 1)
    profile = {"person": key, "account": key, "owner": owner, "engagement": engagement}
    return {
        "id": alert_id(key, "account_surge", account.surges),
        "kind": "account_surge",
        "ts": now,
        "contact": None,
        "account": key,
        "owner": owner,
        "grade": None,
        "fit": None,
        "engagement": engagement,
        "reason": reason,
        "late": late,
        "signal": None,
        "identity": {"recognized_by": None, "verified": True},
        "model": model,
        "probability": None,
        "profile": {**profile, "contacts": contacts},
        "contacts": sorted(account.engaged_at),
    }


def leave(account: Account, contact: str) -> None:
    """A contact's lead was folded into another by a trusted merge: it no longer counts
    (the lead it joined counts its engagement from its next view on)."""
    account.total -= account.engagement.pop(contact, 0.0)
    account.engaged_at.pop(contact, None)
    account.contacts.pop(contact, None)


def account_of_update(update: LeadUpdate) -> str | None:
    """The account a lead's update rolls up into: none until a source nobody can forge
    (server, signed) named the lead, since anyone may claim an address at any company."""
    account: str | None = update.view["account"]
    if account is None or not (update.gone or is_verified(update.view["recognized_by"])):
        return None
    return account


def account_update(account: Account, update: LeadUpdate, rule: AccountSurge) -> Alert | None:
    """Follow one of the account's leads: its new view rolls up (perhaps a surge alert),
    or, when it was merged away or forgotten, it leaves."""
    if update.gone:
        leave(account, update.view["person"])
        return None
    return roll_up(account, update.view, rule, late=update.late)
