"""Alert properties over random signal histories: no flapping, strict alternation."""

from hypothesis import given
from hypothesis import strategies as st

from config.scoring import MINUTE_MS, load_scoring_model
from config.settings import CONFIG_DIR
from dataflows.rules.identity import ToContact
from dataflows.rules.leads import update_lead
from dataflows.rules.profile import Profile
from dataflows.rules.scoring import is_sales_ready
from tests.conftest import T0, envelope, page_view

MODEL = load_scoring_model(CONFIG_DIR / "scoring.toml")
SIGNALS = {
    "pricing": lambda ts: page_view("/pricing", ts=ts, received_at=ts),
    "product": lambda ts: page_view("/product", ts=ts, received_at=ts),
    "careers": lambda ts: page_view("/careers", ts=ts, received_at=ts),
    "unsubscribe": lambda ts: envelope(type="track", event="Unsubscribed", ts=ts, received_at=ts),
    "webinar": lambda ts: envelope(type="track", event="Webinar Attended", ts=ts, received_at=ts),
}
histories = st.lists(
    st.tuples(st.sampled_from(sorted(SIGNALS)), st.integers(0, 20 * 24 * 60)), max_size=60
)


@given(histories)
def test_sales_ready_and_cooling_strictly_alternate_with_the_hysteresis_gap(history):
    profile = Profile("dana@acme.com", traits={"title": "VP Sales", "company_size": 800})
    alerts = []
    ts = T0
    for kind, gap_minutes in history:
        ts += gap_minutes * MINUTE_MS
        item = ToContact(profile.person, SIGNALS[kind](ts), "server")
        for update in update_lead(profile, item, MODEL):
            alerts += [a for a in update.alerts if a["kind"] in ("sales_ready", "cooling")]
    kinds = [a["kind"] for a in alerts]
    assert kinds == ["sales_ready", "cooling"] * (len(kinds) // 2) + ["sales_ready"] * (
        len(kinds) % 2
    )
    grid = MODEL.grid
    for alert in alerts:
        if alert["kind"] == "sales_ready":
            assert alert["grade"] in grid.sales_ready
        else:
            # Rounded to 0.1 in the alert; a ready lead leaves only below its band's margin.
            still_ready = is_sales_ready(
                alert["fit"], alert["engagement"] - 0.05, grid, was_ready=True
            )
            assert not still_ready, "no cooling while within the hysteresis margin"
    assert len({a["id"] for a in alerts}) == len(alerts)
