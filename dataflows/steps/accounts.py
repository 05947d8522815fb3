"""Step `rollup_account`, per account."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

from bytewax.operators import StatefulBatchLogic

from config.scoring import ScoringModel
from dataflows.accounts import Account, account_update
from dataflows.compact import FRESH
from dataflows.guard import Failure, apply_packed
from dataflows.leads import LeadUpdate


class RollupAccount(StatefulBatchLogic[LeadUpdate, dict[str, Any] | Failure, bytes]):
    """Per account: sum its contacts' engagement and alert when the account surges."""

    __slots__ = ("_packed", "_rule")

    def __init__(self, model: ScoringModel, resume: bytes | None) -> None:
        self._rule = model.alerts.account_surge
        self._packed = resume if resume is not None else FRESH

    def on_batch(self, values: list[LeadUpdate]) -> tuple[Iterable[dict[str, Any] | Failure], bool]:
        out, self._packed, _ = apply_packed(
            "rollup_account", self._packed, values, _unpack, self._apply
        )
        return out, StatefulBatchLogic.RETAIN

    def _apply(self, account: Account, update: LeadUpdate) -> tuple[Account, list[dict[str, Any]]]:
        alert = account_update(account, update, self._rule)
        return account, [] if alert is None else [alert]

    def snapshot(self) -> bytes:
        return self._packed


def _unpack(packed: bytes) -> Account:
    account: Account = Account() if packed == FRESH else pickle.loads(packed)
    return account
