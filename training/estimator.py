"""The learner, in scikit-learn's estimator style: explicit parameters, `fit` then
`predict_proba`, nothing hidden. An L1-regularized logistic regression over rule features
(so most candidate rules end with no weight), its strength chosen on the latest share of
the observations (time order, never random). Features are scaled to unit spread for the
fit, so the penalty weighs a rare signal and a frequent one alike; the weights it returns
are per unit of the features as given (a rule's points).

>>> import numpy as np
>>> X = np.array([[0.0], [1.0], [0.0], [1.0]] * 30)
>>> y = np.array([0, 1, 0, 1] * 30)
>>> scorer = RuleScorer(strengths=(1.0,)).fit(X, y)
>>> bool(scorer.coef_[0] > 0), scorer.strength_
(True, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


@dataclass
class RuleScorer:
    """`strengths`: inverse regularization strengths tried (scikit-learn's `C`);
    `validation_share`: the latest share of observations (rows in time order) that picks
    one; `max_iter`: the solver's limit."""

    strengths: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    validation_share: float = 0.25
    max_iter: int = 2000
    # Called after each regression it fits (one per strength tried, then the final one).
    on_fit: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    coef_: Any = field(default=None, init=False)
    intercept_: float = field(default=0.0, init=False)
    strength_: float = field(default=0.0, init=False)
    validation_auc_: dict[float, float] = field(default_factory=dict, init=False)

    def _model(self, strength: float) -> LogisticRegression:
        # liblinear penalizes the intercept like a weight; scaling its column up keeps the
        # base rate (and so the probabilities) from being pulled towards one half.
        return LogisticRegression(
            C=strength,
            l1_ratio=1.0,
            solver="liblinear",
            intercept_scaling=100.0,
            max_iter=self.max_iter,
            # liblinear visits coordinates in a shuffled order: a fixed seed makes the same
            # history give the same model, run after run and on any number of processes.
            random_state=0,
        )

    def fit(self, X: Any, y: Any) -> RuleScorer:
        """Pick the strength on the latest rows, then fit on all of them. Rows must be in
        time order."""
        X = np.asarray(X, dtype=float)
        spread = X.std(axis=0)
        spread[spread == 0] = 1.0
        X = X / spread
        cut = int(len(y) * (1 - self.validation_share))
        self.validation_auc_ = {}
        if 0 < cut < len(y) and len(set(y[:cut])) == 2 and len(set(y[cut:])) == 2:
            for strength in self.strengths:
                model = self._model(strength).fit(X[:cut], y[:cut])
                self._fitted()
                scores = model.decision_function(X[cut:])
                self.validation_auc_[strength] = float(roc_auc_score(y[cut:], scores))
            # Ties go to the weaker regularization: more rules kept, better calibrated.
            self.strength_ = max(self.validation_auc_, key=lambda s: (self.validation_auc_[s], s))
        else:
            self.strength_ = self.strengths[len(self.strengths) // 2]
        model = self._model(self.strength_).fit(X, y)
        self._fitted()
        self.coef_ = np.asarray(model.coef_[0], dtype=float) / spread
        self.intercept_ = float(model.intercept_[0])
        return self

    def _fitted(self) -> None:
        if self.on_fit is not None:
            self.on_fit()

    def decision_function(self, X: Any) -> Any:
        """The log-odds of each row."""
        return np.asarray(X, dtype=float) @ self.coef_ + self.intercept_

    def predict_proba(self, X: Any) -> Any:
        """The chance of the outcome of each row."""
        return 1.0 / (1.0 + np.exp(-self.decision_function(X)))
