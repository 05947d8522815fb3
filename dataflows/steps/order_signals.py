"""Step `order_signals`, per worker: contacts' signals in stream order, with trusted merges
and forgets applied at their point of the stream (`rules/contact_routes.py`)."""

from __future__ import annotations

from typing import Any

from config.scoring import ScoringModel
from dataflows.io.sinks import ProfileWrite
from dataflows.ordering.buffer import Sequenced
from dataflows.ordering.workers import worker_keys, worker_of
from dataflows.rules.contact_routes import Anonymous, ContactRoutes
from dataflows.rules.identity import Outcome
from dataflows.rules.leads import profile_view
from dataflows.rules.merges import Forget, Merge, forgotten_contact, merge_order, trusted_merge
from dataflows.rules.positions import signal_order
from dataflows.rules.profile import Profile, assess
from dataflows.steps.identify import IdentityRules


def place_signal(kv: tuple[str, Outcome], workers: int) -> list[tuple[str, Sequenced]]:
    """Where an identified signal waits: a contact's signal at its own key; a trusted merge
    also at every worker (ordered just before the signal that carries it); a trusted forget
    at every worker instead. Anonymous outcomes go no further."""
    to_contact = kv[1].to_contact
    if to_contact is None:
        return []
    person, signal = to_contact.person, to_contact.signal
    forgotten = forgotten_contact(signal)
    if forgotten is not None:
        forget = Forget(forgotten, signal)
        return [(k, Sequenced(merge_order(signal), (k, forget))) for k in worker_keys(workers)]
    placed = [(person, Sequenced(signal_order(signal, person), (person, to_contact)))]
    merge = trusted_merge(signal)
    if merge is not None:
        item = Merge(*merge, signal)
        order = merge_order(signal)
        placed += [(key, Sequenced(order, (key, item))) for key in worker_keys(workers)]
    return placed


class FollowContacts:
    """Each released signal goes on with its lead; a merge tells each moved contact key of
    this worker to rejoin, a forget each erased one to drop its record; a cookie anonymous
    again after a forget has its view written to the read model."""

    def __init__(self, rules: IdentityRules, workers: int, routes: ContactRoutes | None) -> None:
        self._rules = rules
        self._workers = workers
        self._routes = routes or ContactRoutes()

    def follow(self, key: str, value: Any, worker: int) -> list[tuple[str, Any]]:
        routes = self._routes
        if isinstance(value, Merge):
            return self._mine(routes.merge(value), worker)
        if isinstance(value, Forget):
            return self._mine(routes.forget(value), worker)
        model = self._rules.model_of(value.signal)
        routed = routes.route(key, value, model, model.identity.anonymous_ttl_ms)
        return [(k, _written(v, model) if isinstance(v, Anonymous) else v) for k, v in routed]

    def _mine(self, routed: list[tuple[str, Any]], worker: int) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in routed if worker_of(k, self._workers) == worker]

    def state(self) -> ContactRoutes:
        return self._routes


def anonymous_write(history: Profile, model: ScoringModel) -> ProfileWrite:
    """An anonymous visitor's view for the read model."""
    view = profile_view(history, assess(history, history.last_seen, model), model)
    return ProfileWrite(history.person, view)


def _written(anonymous: Anonymous, model: ScoringModel) -> ProfileWrite:
    if anonymous.history is None:
        return ProfileWrite(anonymous.person, None)
    return anonymous_write(anonymous.history, model)
