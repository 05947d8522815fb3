"""Step `score`, per lead: absorb linked histories, score each signal, raise alerts."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from config.scoring import DAY_MS
from dataflows.guard import Failure, apply_each, failure
from dataflows.io import metrics
from dataflows.models import Models
from dataflows.ordering.clock import EventClock
from dataflows.ordering.operator import DomainStep
from dataflows.rules.leads import (
    LeadUpdate,
    cool_if_due,
    dissolve,
    fold_in,
    refresh_due,
    refresh_if_due,
    update_lead,
)
from dataflows.rules.merges import Dissolve, ForLead, Join, merge_order
from dataflows.rules.profile import Profile
from dataflows.state import FRESH, pack, pack_or_fresh
from dataflows.steps.record_contact import count_key, unpack_own

# What the score step gets for a lead.
LeadInput = ForLead | Join | Dissolve
COOLING_CHECK = timedelta(seconds=30)
# A refresh may come this much after its midnight when the event clock outruns the wall's.
REFRESH_CHECK = timedelta(hours=1)


class ScoreLead(DomainStep[LeadInput, LeadUpdate | Failure]):
    """Per lead: absorb linked histories, score each signal, raise alerts; fold in the
    records of contact keys a trusted merge brings, and leave when merged into another. A
    sales-ready lead that decays out of it cools once the event clock has passed that moment
    by the configured lateness (so a late signal from before it can still count); a quiet
    lead's view is decayed to each UTC midnight the event clock passes. A signal
    whose rules raise is rolled back (`dataflows/guard.py`) to the lead packed before its batch."""

    __slots__ = ("_clock", "_models", "_profile", "_refresh", "_saved")

    def __init__(
        self, models: Models, clock: EventClock, resume: bytes | None, refresh: bool = True
    ) -> None:
        self._models = models
        self._clock = clock
        self._refresh = refresh
        self._profile = None if resume is None else unpack_own(resume)
        # The lead packed as it is now, when known (a snapshot): what a batch that fails
        # rolls back to, without packing it again.
        self._saved: bytes | None = resume

    def on_items(self, items: list[LeadInput]) -> tuple[Iterable[LeadUpdate | Failure], bool]:
        existed = self._profile is not None
        before: bytes = FRESH

        def start() -> Profile | None:
            nonlocal before
            before = self._saved if self._saved is not None else pack_or_fresh(self._profile)
            return self._profile

        def restore() -> Profile | None:
            return unpack_own(before)

        out, touched, profile = apply_each("score", items, start, restore, self._apply)
        if touched:
            self._profile, self._saved = profile, None
            count_key(metrics.CONTACTS, existed, profile is not None)
        retain = self._profile is not None
        return out, StatefulBatchLogic.RETAIN if retain else StatefulBatchLogic.DISCARD

    def _apply(
        self, profile: Profile | None, value: LeadInput
    ) -> tuple[Profile | None, list[LeadUpdate]]:
        models = self._models
        if isinstance(value, ForLead):
            signal = value.item.signal
            profile = profile or Profile(value.lead, since=signal["received_at"])
            updates = update_lead(profile, value.item, models.of(signal.get("model", "")))
            metrics.LAG_SECONDS.observe(max(0.0, time.time() - signal["received_at"] / 1000))
            return profile, updates
        if isinstance(value, Join):
            if value.own is None and profile is None:
                return None, []  # nothing known on either side yet
            own = unpack_own(value.own or FRESH)
            profile = profile or Profile(value.lead, since=value.merge["received_at"])
            order = merge_order(value.merge, value.member)
            model = models.of(value.merge.get("model", ""))
            return profile, fold_in(profile, own, value.merge, model, order)
        if profile is None:
            return None, []
        (metrics.FORGETS if value.forgotten else metrics.IDENTITY_MERGES).inc()
        model = models.of(value.signal.get("model", ""))
        return None, [dissolve(profile, value.signal, model, merge_order(value.signal))]

    def notify_at(self) -> datetime | None:
        # Bytewax wakes a key on the wall clock, and only this key's own activity moves it.
        # Live, the event clock runs at wall speed; in a replay it runs faster. So wake at
        # the expected moment, but at least every COOLING_CHECK to look at the event clock
        # for a cooling (a few leads), every REFRESH_CHECK for a refresh (every quiet lead).
        wakes = [
            min(self._clock.wall_time_when(due), datetime.now(tz=UTC) + check)
            for due, check in (
                (self._cooling_due(), COOLING_CHECK),
                (self._refresh_due(), REFRESH_CHECK),
            )
            if due is not None
        ]
        return min(wakes, default=None)

    def on_notify(self) -> tuple[Iterable[LeadUpdate | Failure], bool]:
        return self._when_clock_passed(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[LeadUpdate | Failure], bool]:
        return self._when_clock_passed(), StatefulBatchLogic.RETAIN

    def _when_clock_passed(self) -> list[LeadUpdate | Failure]:
        """The timed updates whose moment the event clock has passed: a pending cooling,
        then a quiet lead's view decayed to the latest midnight."""
        now = self._clock.now()
        if self._profile is None:
            return []
        cooling, refresh = self._cooling_due(), self._refresh_due()
        if (cooling is None or now < cooling) and (refresh is None or now < refresh):
            return []
        profile = self._profile
        saved = self._saved if self._saved is not None else pack(profile)
        try:
            model = self._models.lasting(profile.model)
            updates: list[LeadUpdate | Failure] = []
            if cooling is not None and now >= cooling:
                assert profile.cooling_at is not None
                order = (cooling, cooling, "", profile.person)
                cooled = cool_if_due(profile, profile.cooling_at, model, order)
                updates += [cooled] if cooled else []
            refreshed = refresh_if_due(profile, now, model) if self._refresh else None
            updates += [refreshed] if refreshed else []
        except Exception as error:
            restored = unpack_own(saved)
            assert restored is not None
            restored.cooling_at = None  # not tried again: the lead's next signal decides
            restored.viewed_at = max(now // DAY_MS * DAY_MS, restored.viewed_at)
            self._profile, self._saved = restored, None
            return [failure("score", error, None)]
        self._saved = None
        return updates

    def _cooling_due(self) -> int | None:
        """When (event time) a pending cooling is reported: lateness after it happened."""
        if self._profile is None or self._profile.cooling_at is None:
            return None
        model = self._models.lasting(self._profile.model)
        return self._profile.cooling_at + int(model.alerts.late_after_ms)

    def _refresh_due(self) -> int | None:
        if self._profile is None or not self._refresh:
            return None
        return refresh_due(self._profile, self._models.lasting(self._profile.model))

    def snapshot(self) -> bytes:
        if self._saved is None:
            self._saved = pack_or_fresh(self._profile)
        return self._saved
