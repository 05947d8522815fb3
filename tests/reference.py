"""The identity and scoring semantics as a plain single-threaded loop: no Bytewax, no state
keyed by worker, nothing clever. Property tests check the dataflow against it.

The scoring of one person's signal (`record`, `update_lead`, `fold_in`, `apply_signal`,
`roll_up`) is shared with the dataflow and unit-tested on its own; what this spells out
independently is *who* each signal belongs to, which lead a trusted merge moves each contact
key to, and in which order all of it is applied.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from config.scoring import ScoringModel
from config.settings import Settings
from contracts.alerts import Alert
from contracts.envelope import Envelope, contact_key
from contracts.read_model import ProfileView
from dataflows.rules.accounts import Account, account_of_update, account_update
from dataflows.rules.identity import ToContact, anonymous_person
from dataflows.rules.leads import (
    LeadUpdate,
    dissolve,
    fold_in,
    profile_view,
    record,
    refresh_if_due,
    update_lead,
)
from dataflows.rules.merges import forgotten_contact, merge_order, trusted_merge
from dataflows.rules.profile import Profile, apply_signal, assess
from dataflows.rules.trust import how_recognized


@dataclass
class Reference:
    """Everything the reference keeps, in plain dictionaries."""

    model: ScoringModel
    settings: Settings
    seen: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    # cookie -> (contact, how it was recognised)
    owner: dict[str, tuple[str, str]] = field(default_factory=dict)
    anonymous: dict[str, Profile] = field(default_factory=dict)
    # contact key -> its own record; contact key -> the lead it belongs to (if merged)
    records: dict[str, Profile] = field(default_factory=dict)
    lead_of: dict[str, str] = field(default_factory=dict)
    leads: dict[str, Profile] = field(default_factory=dict)
    # cookie -> the contact a forget took it from (until it names someone again), and what
    # it did since, per (cookie, that contact)
    unlinked_from: dict[str, str] = field(default_factory=dict)
    since_forget: dict[tuple[str, str], Profile] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=lambda: defaultdict(Account))
    profiles: dict[str, ProfileView] = field(default_factory=dict)
    updates: list[LeadUpdate] = field(default_factory=list)

    def run(self, signals: list[Envelope]) -> tuple[dict[str, ProfileView], list[Alert]]:
        """Final profiles and every alert, for `signals` in stream order."""
        stream = sorted(
            (s for s in signals if s["machine"] is None),
            key=lambda s: (s["received_at"], s["ts"], s["id"]),
        )
        for signal in stream:
            if not self._first_time(signal):
                continue
            forgotten = forgotten_contact(signal)
            if forgotten is not None:
                self._forget(forgotten, signal)
                continue
            merge = trusted_merge(signal)
            if merge is not None:
                self._merge(*merge, signal)
            self._apply(signal)
        self._refresh(max((s["received_at"] for s in stream), default=0))
        alerts = [alert for update in self.updates for alert in update.alerts]
        rule = self.model.alerts.account_surge
        for update in sorted(self.updates, key=lambda u: u.order):
            account = account_of_update(update)
            if account is None:
                continue
            surge = account_update(self.accounts[account], update, rule)
            if surge is not None:
                alerts.append(surge)
        return self.profiles, alerts

    def _refresh(self, clock: int) -> None:
        """Once the stream has passed a midnight, every quiet lead's view is decayed to it."""
        for lead, profile in self.leads.items():
            if lead in self.profiles:
                refreshed = refresh_if_due(profile, clock, self.model)
                if refreshed is not None:
                    self._updated(refreshed)

    def _lead(self, contact: str) -> str:
        return self.lead_of.get(contact, contact)

    def _merge(self, loser: str, winner: str, signal: Envelope) -> None:
        """Every key of the loser's lead moves to the winner's lead (to the winner itself
        when they share one already): the old lead leaves, then each key's own record joins
        the new lead, in key order."""
        old = self._lead(loser)
        new = self._lead(winner) if self._lead(winner) != old else winner
        if old == new:
            return
        known = {old, *self.records, *self.lead_of}
        moved = sorted(key for key in known if self._lead(key) == old)
        gone = self.leads.pop(old, None)
        if gone is not None:
            self._updated(dissolve(gone, signal, self.model, merge_order(signal)))
        for member in moved:
            self.lead_of[member] = new
            own = self.records.get(member)
            if own is None and new not in self.leads:
                continue
            lead = self._lead_profile(new, signal)
            order = merge_order(signal, member)
            for update in fold_in(lead, own, signal, self.model, order):
                self._updated(update)

    def _forget(self, contact: str, signal: Envelope) -> None:
        """The contact's whole lead goes: its view, its account share, every key's own
        record and merge; the cookies of those keys are anonymous again."""
        lead = self._lead(contact)
        known = {lead, *self.records, *self.lead_of}
        members = {key for key in known if self._lead(key) == lead}
        for member in members:
            self.records.pop(member, None)
            self.lead_of.pop(member, None)
        gone = self.leads.pop(lead, None)
        if gone is not None:
            self._updated(dissolve(gone, signal, self.model, merge_order(signal)))
        for cookie, (owner, _) in list(self.owner.items()):
            if owner in members:
                del self.owner[cookie]
                self.unlinked_from[cookie] = owner

    def _after_forget(self, cookie: str, claimed: str | None, signal: Envelope) -> None:
        """A cookie a forget made anonymous: anonymous until it names someone; naming the
        same contact again brings what it did since, naming another leaves that behind."""
        before = self.unlinked_from[cookie]
        if claimed is None:
            history = self.since_forget.setdefault(
                (cookie, before), Profile(anonymous_person(cookie))
            )
            self._anonymous_signal(history, signal)
            return
        del self.unlinked_from[cookie]
        moved = self.since_forget.pop((cookie, before), None) if claimed == before else None
        if moved is not None:
            del self.profiles[moved.person]
        self.owner[cookie] = (claimed, how_recognized(signal))
        self._to_contact(ToContact(claimed, signal, how_recognized(signal), moved))

    def _first_time(self, signal: Envelope) -> bool:
        key = signal["anon_id"] or contact_key(signal["user_id"], signal["email"])
        assert key is not None
        before = self.seen[key].get(signal["id"])
        window = self.model.identity.dedupe_window_ms
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
        if cookie in self.unlinked_from:
            self._after_forget(cookie, claimed, signal)
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
            self._anonymous_signal(history, signal)

    def _anonymous_signal(self, history: Profile, signal: Envelope) -> None:
        """Score a signal into an anonymous visitor's history and show it."""
        apply_signal(history, signal, self.model)
        view = profile_view(history, assess(history, history.last_seen, self.model), self.model)
        self.profiles[history.person] = view

    def _to_contact(self, item: ToContact) -> None:
        own = self.records.setdefault(item.person, Profile(item.person))
        item = record(own, item, self.model)
        profile = self._lead_profile(self._lead(item.person), item.signal)
        for update in update_lead(profile, item, self.model):
            self._updated(update)

    def _lead_profile(self, lead: str, first: Envelope) -> Profile:
        if lead not in self.leads:
            self.leads[lead] = Profile(lead, since=first["received_at"])
        return self.leads[lead]

    def _updated(self, update: LeadUpdate) -> None:
        self.updates.append(update)
        if update.gone:
            del self.profiles[update.view["person"]]
        else:
            self.profiles[update.view["person"]] = update.view
