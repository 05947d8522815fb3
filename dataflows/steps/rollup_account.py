"""Step `rollup_account`, per account."""

from __future__ import annotations

from collections.abc import Iterable

from bytewax.operators import StatefulBatchLogic

from contracts.alerts import Alert
from dataflows.guard import Failure, apply_packed
from dataflows.models import Models
from dataflows.ordering.operator import DomainStep
from dataflows.rules.accounts import Account, account_update
from dataflows.rules.leads import LeadUpdate
from dataflows.state import FRESH, unpack


class RollupAccount(DomainStep[LeadUpdate, Alert | Failure]):
    """Per account: sum its contacts' engagement and alert when the account surges."""

    __slots__ = ("_models", "_packed")

    def __init__(self, models: Models, resume: bytes | None) -> None:
        self._models = models
        self._packed = resume if resume is not None else FRESH

    def on_items(self, items: list[LeadUpdate]) -> tuple[Iterable[Alert | Failure], bool]:
        out, self._packed, _ = apply_packed(
            "rollup_account", self._packed, items, _unpack, self._apply
        )
        return out, StatefulBatchLogic.RETAIN

    def _apply(self, account: Account, update: LeadUpdate) -> tuple[Account, list[Alert]]:
        rule = self._models.lasting(update.view.get("model", "")).alerts.account_surge
        alert = account_update(account, update, rule)
        return account, [] if alert is None else [alert]

    def snapshot(self) -> bytes:
        return self._packed


def _unpack(packed: bytes) -> Account:
    account: Account = Account() if packed == FRESH else unpack(packed)
    return account
