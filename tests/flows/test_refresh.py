"""A quiet lead's view is decayed to each UTC midnight the stream passes, so scores read
days after a lead's last signal are scores of that day (not of the signal); on the engine,
on 1 and 3 workers alike."""

from __future__ import annotations

import pytest

from config.scoring import DAY_MS, load_scoring_model
from config.settings import Settings
from dataflows.rules.leads import profile_view, refresh_if_due
from dataflows.rules.profile import Profile, apply_signal, assess
from dataflows.rules.scoring import decay
from tests.conftest import T0, envelope, page_view
from tests.flows.partitioned import partitioned, run_in_process

MODEL = load_scoring_model(Settings().scoring_path)
HOUR = 3_600_000


def known(email: str, at: int, path: str = "/pricing") -> list:
    cookie = f"cookie-{email}"
    return [
        envelope(type="identify", anon_id=cookie, email=email, ts=at, received_at=at),
        page_view(path, anon_id=cookie, ts=at + 1_000, received_at=at + 1_000),
    ]


@pytest.mark.parametrize("workers", [1, 3])
def test_a_quiet_leads_view_is_decayed_to_the_latest_midnight(workers: int):
    # Dana reads pricing on day 0; only Bo is seen after it, on day 3 at 10:00.
    signals = known("dana@acme.com", T0 + 9 * HOUR) + known(
        "bo@beta.com", T0 + 3 * DAY_MS + 10 * HOUR
    )
    profiles, alerts = run_in_process(partitioned(signals, 2), workers)
    dana, bo = profiles["dana@acme.com"], profiles["bo@beta.com"]
    assert dana["as_of"] == T0 + 3 * DAY_MS, "decayed to day 3's midnight"
    pricing = next(c for c in dana["contributions"] if c["label"] == "Viewed pricing")
    rule = next(r for r in MODEL.engagement if r.label == "Viewed pricing")
    elapsed = T0 + 3 * DAY_MS - (T0 + 9 * HOUR + 1_000)
    assert pricing["points"] == pytest.approx(decay(rule.points, elapsed, rule.half_life_ms))
    assert bo["as_of"] == T0 + 3 * DAY_MS + 10 * HOUR + 1_000, "Bo's view is of his signal"
    assert not [a for a in alerts if a["contact"] == "dana@acme.com" and a["ts"] > T0 + DAY_MS]


def test_a_refresh_raises_nothing_comes_once_a_day_and_stops_once_faded():
    lead = Profile("dana@acme.com")
    apply_signal(lead, page_view("/pricing", email="dana@acme.com"), MODEL)
    profile_view(lead, assess(lead, T0, MODEL), MODEL)  # the signal's own view
    assert refresh_if_due(lead, T0 + DAY_MS - 1, MODEL) is None, "not before midnight"
    update = refresh_if_due(lead, T0 + DAY_MS + HOUR, MODEL)
    assert update is not None
    assert update.alerts == []
    assert update.view["as_of"] == T0 + DAY_MS
    assert refresh_if_due(lead, T0 + DAY_MS + 2 * HOUR, MODEL) is None, "once a day"
    # Months later: one refresh to the last midnight before every point has decayed away.
    last = refresh_if_due(lead, T0 + 365 * DAY_MS, MODEL)
    assert last is not None
    assert T0 + 30 * DAY_MS < last.view["as_of"] < T0 + 365 * DAY_MS
    assert last.view["as_of"] % DAY_MS == 0
    assert refresh_if_due(lead, T0 + 400 * DAY_MS, MODEL) is None
