"""Account rollup: engagement summed over an account's contacts, and surge detection. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from config.scoring import AccountSurge
from contracts.alerts import Alert
from contracts.read_model import ProfileView
from dataflows.rules.alerting import make_alert
from dataflows.rules.leads import LeadUpdate
from dataflows.rules.trust import is_verified


@dataclass(slots=True)
class Account:
    """What an account keeps: each contact's latest engagement and when they were engaged."""

    engagement: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    # Contacts by when they were last engaged, oldest first (pruned past the window).
    engaged_at: dict[str, int] = field(default_factory=dict)
    surging: bool = False
    surges: int = 0


def roll_up(account: Account, view: ProfileView, rule: AccountSurge) -> Alert | None:
    """Fold a contact's new view into its account; returns an `account_surge` alert when the
    account starts surging (it must calm down before it can surge again)."""
    contact, now = view["person"], view["as_of"]
    account.total += view["engagement"] - account.engagement.get(contact, 0.0)
    account.engagement[contact] = view["engagement"]
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
    engaged = sorted(account.engaged_at)
    reason = (
        f"{view['account']} is surging: {len(engaged)} engaged contacts in "
        f"{rule.window_ms / 86_400_000:.0f} days, account engagement {total:.0f}"
    )
    alert = make_alert("account_surge", account.surges, view, reason, subject=view["account"])
    alert["contacts"] = engaged
    return alert


def leave(account: Account, contact: str) -> None:
    """A contact's lead was folded into another by a trusted merge: it no longer counts
    (the lead it joined counts its engagement from its next view on)."""
    account.total -= account.engagement.pop(contact, 0.0)
    account.engaged_at.pop(contact, None)


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
    return roll_up(account, update.view, rule)
