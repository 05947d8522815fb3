"""Identity transitions: a cookie's history moves into its contact once; shared devices."""

from config.scoring import load_scoring_model
from config.settings import CONFIG_DIR
from dataflows.rules.identity import Cookie, resolve
from dataflows.rules.leads import update_lead
from dataflows.rules.profile import Profile
from tests.conftest import envelope, page_view

MODEL = load_scoring_model(CONFIG_DIR / "scoring.toml")


def test_anonymous_signals_build_the_cookies_own_history():
    cookie = Cookie()
    outcome = resolve(cookie, "c1", page_view("/pricing"), MODEL)
    assert outcome.to_contact is None
    assert outcome.anonymous is not None
    assert outcome.anonymous.person == "anon:c1"
    assert cookie.history is outcome.anonymous


def test_identify_links_the_cookie_and_moves_its_history_exactly_once():
    cookie = Cookie()
    resolve(cookie, "c1", page_view("/pricing"), MODEL)
    outcome = resolve(cookie, "c1", envelope(type="identify", email="dana@acme.com"), MODEL)
    assert outcome.to_contact is not None
    assert outcome.to_contact.person == "dana@acme.com"
    assert outcome.to_contact.how == "browser_identify"
    assert outcome.to_contact.history is not None
    assert outcome.moved_from == "anon:c1"
    assert cookie.history is None

    later = resolve(cookie, "c1", page_view("/pricing"), MODEL)
    assert later.to_contact is not None
    assert later.to_contact.person == "dana@acme.com"
    assert later.to_contact.history is None, "history moves only once"


def test_a_different_browser_identify_repoints_the_cookie_without_moving_history():
    cookie = Cookie()
    resolve(cookie, "c1", envelope(type="identify", email="dana@acme.com"), MODEL)
    outcome = resolve(cookie, "c1", envelope(type="identify", email="lee@acme.com"), MODEL)
    assert outcome.to_contact is not None
    assert outcome.to_contact.person == "lee@acme.com"
    assert outcome.to_contact.how == "shared_device"
    assert outcome.to_contact.history is None
    assert outcome.moved_from is None


def test_a_form_fill_is_recognised_as_such():
    cookie = Cookie()
    signal = envelope(type="form_submit", email="dana@acme.com", props={"form_id": "demo"})
    outcome = resolve(cookie, "c1", signal, MODEL)
    assert outcome.to_contact is not None
    assert outcome.to_contact.how == "form_fill"


def test_the_contact_profile_carries_the_anonymous_history():
    cookie = Cookie()
    for _ in range(3):
        resolve(cookie, "c1", page_view("/pricing"), MODEL)
    outcome = resolve(cookie, "c1", envelope(type="identify", email="dana@acme.com"), MODEL)
    assert outcome.to_contact is not None
    profile = Profile("dana@acme.com")
    (update,) = update_lead(profile, outcome.to_contact, MODEL)
    assert update.view["engagement"] == 33.0  # 3 x (pricing 10 + page view 1)
    assert [what for _, what in update.view["activity"]][-3:] == ["Viewed /pricing"] * 3
    assert update.view["recognized_by"] == "browser_identify"
