"""The identity and scoring semantics as a plain single-threaded loop: no Bytewax, no state
keyed by worker, nothing clever. Property tests check the dataflow against it.

The scoring of one person's signal (`update_lead`, `apply_signal`, `roll_up`) is shared with
the dataflow and unit-tested on its own; what this spells out independently is *who* each
signal belongs to and in which order signals are applied.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from config.scoring import ScoringModel
from config.settings import Settings
from dataflows.accounts import Account, roll_up
from dataflows.identity import ToContact, anonymous_person, how_recognized
from dataflows.leads import LeadUpdate, profile_view, update_lead
from dataflows.profile import Profile, apply_signal, assess
from tracking.envelope import Envelope, contact_key


@dataclass
class Reference:
    """Everything the reference keeps, in plain dictionaries."""

    model: ScoringModel
    settings: Settings
    seen: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    # cookie -> (contact, how it was recognised)
    owner: dict[str, tuple[str, str]] = field(default_factory=dict)
    anonymous: dict[str, Profile] = field(default_factory=dict)
    contacts: dict[str, Profile] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=lambda: defaultdict(Account))
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    updates: list[LeadUpdate] = field(default_factory=list)

    def run(self, signals: list[Envelope]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Final profiles and every alert, for `signals` in stream order."""
        stream = sorted(
            (s for s in signals if s["machine"] is None),
            key=lambda s: (s["received_at"], s["ts"], s["id"]),
        )
        for signal in stream:
            if self._first_time(signal):
                self._apply(signal)
        alerts = [alert for update in self.updates for alert in update.alerts]
        rule = self.model.alerts.account_surge
        for update in sorted(self.updates, key=lambda u: u.order):
            account = update.view["account"]
            surge = None if account is None else roll_up(self.accounts[account], update.view, rule)
            if surge is not None:
                alerts.append(surge)
        return self.profiles, alerts

    def _first_time(self, signal: Envelope) -> bool:
        key = signal["anon_id"] or contact_key(signal["user_id"], signal["email"])
        assert key is not None
        before = self.seen[key].get(signal["id"])
        window = self.settings.dedupe_window_s * 1000
        if before is not None and abs(signal["received_at"] - before) <= window:
            return False
        self.seen[key][signal["id"]] = signal["received_at"]
        return True

    def _apply(self, signal: Envelope) -> None:
        cookie = signal["anon_id"]
        claimed = contact_key(signal["user_id"], signal["email"])
        if cookie is None:
            assert claimed is not None
            self._to_contact(ToContact(claimed, signal, how_recognized(signal)))
            return
        current = self.owner.get(cookie)
        if claimed is not None and current is not None and claimed != current[0]:
            # A shared device: the cookie now belongs to the new person; the past stays.
            self.owner[cookie] = (claimed, "shared_device")
            self._to_contact(ToContact(claimed, signal, "shared_device"))
        elif claimed is not None and current is None:
            # The first claim: the cookie's anonymous history moves into the contact.
            history = self.anonymous.pop(cookie, None)
            if history is not None:
                del self.profiles[anonymous_person(cookie)]
            self.owner[cookie] = (claimed, how_recognized(signal))
            self._to_contact(ToContact(claimed, signal, how_recognized(signal), history))
        elif current is not None:
            self._to_contact(ToContact(current[0], signal, current[1]))
        else:
            history = self.anonymous.setdefault(cookie, Profile(anonymous_person(cookie)))
            apply_signal(history, signal, self.model)
            view = profile_view(history, assess(history, history.last_seen, self.model), self.model)
            self.profiles[history.person] = view

    def _to_contact(self, item: ToContact) -> None:
        profile = self.contacts.setdefault(item.person, Profile(item.person))
        for update in update_lead(profile, item, self.model):
            self.updates.append(update)
            self.profiles[item.person] = update.view
