"""The scoring models a dataflow process scores with, by version.

Each signal names the model in effect at its place in the log (`Envelope["model"]`, set by
the source: empty before any publication); a step asks `Models.of` for it. The deployment's
`scoring.toml` is the base; a published model is fetched once, on first use, from the
models topic (the same content on every process: versions are content hashes).

>>> from config.scoring import load_scoring_model
>>> from config.settings import Settings
>>> base = load_scoring_model(Settings().scoring_path)
>>> models = Models(base)
>>> models.of("") is base and models.of(base.version) is base
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from config.scoring import ScoringModel
from contracts.errors import DBLError

Fetch = Callable[[str], ScoringModel]


class UnknownModel(DBLError):
    """A signal names a model this process cannot find."""


def _no_fetch(version: str) -> ScoringModel:
    raise UnknownModel(f"model {version} was never published here")


class Models:
    """The base model, and published ones fetched on first use. `fixed` scores everything
    with the base, whatever the log says (a backtest of one model)."""

    def __init__(
        self, base: ScoringModel, fetch: Fetch = _no_fetch, *, fixed: bool = False
    ) -> None:
        self.base = base
        self._fetch = fetch
        self._fixed = fixed
        self._known = {"": base, base.version: base}
        self._lock = threading.Lock()

    def of(self, version: str) -> ScoringModel:
        """The model of a version ("" is the base); fetched once, on first use."""
        if self._fixed:
            return self.base
        model = self._known.get(version)
        if model is not None:
            return model
        with self._lock:
            if version not in self._known:
                fetched = self._fetch(version)
                if fetched.version != version:
                    raise UnknownModel(f"model {version} was published as {fetched.version}")
                self._known[version] = fetched
            return self._known[version]

    def lasting(self, version: str) -> ScoringModel:
        """The model of a version for a timed decision about state it scored: the base when
        that version cannot be had (state from a deployment whose file has changed since)."""
        try:
            return self.of(version)
        except UnknownModel:
            return self.base
