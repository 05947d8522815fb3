"""Step `rollup_account`, per account."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

from bytewax.operators import StatefulBatchLogic

from config.scoring import ScoringModel
from dataflows.accounts import Account, account_update
from dataflows.compact import pack
from dataflows.leads import LeadUpdate


class RollupAccount(StatefulBatchLogic[LeadUpdate, dict[str, Any], bytes]):
    """Per account: sum its contacts' engagement and alert when the account surges."""

    __slots__ = ("_account", "_rule")

    def __init__(self, model: ScoringModel, resume: bytes | None) -> None:
        self._rule = model.alerts.account_surge
        self._account: Account = pickle.loads(resume) if resume is not None else Account()

    def on_batch(self, values: list[LeadUpdate]) -> tuple[Iterable[dict[str, Any]], bool]:
        alerts = [account_update(self._account, update, self._rule) for update in values]
        return [alert for alert in alerts if alert], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return pack(self._account)
