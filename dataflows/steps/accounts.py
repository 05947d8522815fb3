"""Step `rollup_account`, per account."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

from bytewax.operators import StatefulBatchLogic

from config.scoring import ScoringModel
from dataflows.accounts import Account, leave, roll_up
from dataflows.leads import LeadUpdate


class RollupAccount(StatefulBatchLogic[LeadUpdate, dict[str, Any], bytes]):
    """Per account: sum its contacts' engagement and alert when the account surges."""

    __slots__ = ("_account", "_rule")

    def __init__(self, model: ScoringModel, resume: bytes | None) -> None:
        self._rule = model.alerts.account_surge
        self._account: Account = pickle.loads(resume) if resume is not None else Account()

    def on_batch(self, values: list[LeadUpdate]) -> tuple[Iterable[dict[str, Any]], bool]:
        alerts = []
        for update in values:
            if update.gone:
                leave(self._account, update.view["person"])
            elif alert := roll_up(self._account, update.view, self._rule):
                alerts.append(alert)
        return alerts, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self._account, protocol=pickle.HIGHEST_PROTOCOL)
