"""Segment messages become envelopes; bad ones are refused with a reason."""

import pytest

from config.sites import Site
from contracts import codec
from contracts.envelope import InvalidEvent, decode, partition_key
from dataflows.rules.merges import forgotten_contact, trusted_merge
from tests.conftest import envelope
from tracking import user_hash
from tracking.segment import MAX_PAST_MS, from_segment, is_junk_id

BROWSER = Site("demo", "wk_b", "browser")
SERVER = Site("backend", "wk_s", "server")
NOW = 1_767_225_600_000


def build(message, site=BROWSER, call_type=None):
    return from_segment(message, site=site, received_at=NOW, call_type=call_type)


def test_page_call_normalises_page_context_and_keys_by_cookie():
    env = build(
        {"anonymousId": "c1", "properties": {"url": "https://x.io/pricing?a=1", "title": "P"}},
        call_type="page",
    )
    assert env["type"] == "page"
    assert env["channel"] == "web"
    assert env["context"]["page"] == {
        "url": "https://x.io/pricing?a=1",
        "title": "P",
        "path": "/pricing",
    }
    assert partition_key(env) == "c1"
    assert env["ts"] == env["received_at"] == NOW


def test_identify_carries_email_name_and_traits():
    env = build(
        {
            "type": "identify",
            "anonymousId": "c1",
            "traits": {"email": " Dana@Acme.COM ", "firstName": "Dana", "lastName": "Ruiz"},
        }
    )
    assert env["email"] == "dana@acme.com"
    assert env["name"] == "Dana Ruiz"
    assert env["props"]["firstName"] == "Dana"


def test_spec_email_events_become_signal_types():
    env = build(
        {"type": "track", "event": "Email Opened", "context": {"traits": {"email": "a@b.io"}}},
        site=SERVER,
    )
    assert (env["type"], env["channel"]) == ("email_open", "email")
    assert partition_key(env) == "a@b.io"


def test_browser_timestamps_are_ignored_but_server_timestamps_kept():
    message = {"type": "track", "event": "X", "userId": "u1", "timestamp": "2025-12-31T00:00:00Z"}
    assert build(message)["ts"] == NOW
    assert build(message, site=SERVER)["ts"] == NOW - 86_400_000


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ([], "must be a JSON object"),
        ({"type": "page"}, "needs an anonymousId, a userId or an email"),
        ({"type": "launch", "userId": "u"}, "type must be one of"),
        ({"type": "track", "userId": "u"}, "event is required"),
        ({"type": "track", "userId": "u", "event": 5}, "event must be a string"),
        ({"type": "page", "userId": {"x": 1}}, "userId must be a string"),
        ({"type": "page", "userId": "u" * 500}, "longer than"),
        ({"type": "page", "userId": "u", "properties": [1]}, "properties must be a JSON object"),
        ({"type": "page", "anonymousId": "undefined"}, "needs an anonymousId"),
    ],
)
def test_invalid_messages_are_refused_with_a_reason(message, reason):
    with pytest.raises(InvalidEvent, match=reason):
        build(message)


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        ("yesterday", "not ISO-8601"),
        ("2026-01-01T00:00:00", "needs a time zone"),
        ("2027-01-01T00:00:00Z", "in the future"),
        ("2020-01-01T00:00:00Z", "more than a year"),
        (12, "must be an ISO-8601 string"),
    ],
)
def test_server_timestamps_must_be_sane(timestamp, reason):
    with pytest.raises(InvalidEvent, match=reason):
        build({"type": "page", "userId": "u", "timestamp": timestamp}, site=SERVER)
    assert MAX_PAST_MS > 365 * 86_400_000


@pytest.mark.parametrize(
    "junk", ["null", "'undefined'", '"0"', " Anonymous ", "", "[object Object]"]
)
def test_junk_ids_never_identify(junk):
    assert is_junk_id(junk)
    env = build({"type": "page", "anonymousId": "c1", "userId": junk})
    assert env["user_id"] is None


def test_decode_round_trips_an_envelope():
    env = build({"type": "page", "anonymousId": "c1"})
    assert decode(codec.dumps(env)) == env


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "no value"),
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"id": "x"}', "type must be a non-empty string"),
    ],
)
def test_decode_refuses_what_is_not_an_envelope(raw, reason):
    with pytest.raises(InvalidEvent, match=reason):
        decode(raw)


def test_decode_refuses_unknown_types_and_missing_ids():
    env = build({"type": "page", "anonymousId": "c1"})
    with pytest.raises(InvalidEvent, match="type 'nope'"):
        decode(codec.dumps({**env, "type": "nope"}))
    with pytest.raises(InvalidEvent, match="neither anon_id"):
        decode(codec.dumps({**env, "anon_id": None}))
    with pytest.raises(InvalidEvent, match="ts must be epoch"):
        decode(codec.dumps({**env, "ts": "now"}))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ts": 10**17}, "not a plausible time"),
        ({"ts": -1}, "not a plausible time"),
        ({"ts": True}, "epoch milliseconds"),
        ({"context": {"page": "/pricing"}}, "context.page must be a JSON object"),
        ({"context": {"page": {"path": ["/x"]}}}, "context.page.path must be a string"),
        ({"context": {"campaign": "spring"}}, "context.campaign must be"),
        ({"props": []}, "props must be a JSON object"),
        ({"email": 5}, "email must be a string or null"),
        ({"trust": "admin"}, "trust 'admin'"),
    ],
)
def test_decode_refuses_hostile_envelopes(change, reason):
    env = build({"type": "page", "anonymousId": "c1"})
    with pytest.raises(InvalidEvent, match=reason):
        decode(codec.dumps({**env, **change}))


SECRET = "a-site-secret-of-16+"
SIGNING = Site("shop", "wk_shop", "browser", (), SECRET)
ANA = {"email": "Ana@Acme.com"}


@pytest.mark.parametrize(
    ("who", "signed_id"),
    [
        ({"userId": "u-42", "traits": {"email": "Ana@Acme.com"}}, "u-42"),
        ({"traits": {"email": "Ana@Acme.com"}}, "ana@acme.com"),
    ],
)
def test_a_user_hash_from_the_sites_backend_raises_a_browser_claim_to_signed(who, signed_id):
    context = {"user_hash": user_hash.sign(SECRET, signed_id).upper()}
    env = build({"type": "identify", "anonymousId": "c1", "context": context, **who}, SIGNING)
    assert env["trust"] == "signed"
    assert "user_hash" not in env["context"]  # a credential, not data to keep
    assert build({"type": "identify", "anonymousId": "c1", **who}, SIGNING)["trust"] == "browser"


@pytest.mark.parametrize(
    ("site", "message", "reason"),
    [
        (
            SIGNING,
            {
                "userId": "u-42",
                "context": {"user_hash": user_hash.sign("a-site-secret-of-16+", "u-7")},
            },
            "does not sign",
        ),
        (SIGNING, {"userId": "u-42", "context": {"user_hash": 42}}, "must be a string"),
        (SIGNING, {"anonymousId": "c1", "context": {"user_hash": "ab"}}, "needs a userId or email"),
        (BROWSER, {"userId": "u-42", "context": {"user_hash": "ab"}}, "has no secret"),
    ],
)
def test_a_user_hash_that_does_not_check_out_is_refused(site, message, reason):
    with pytest.raises(InvalidEvent, match=reason):
        build({"type": "identify", **message}, site)


def test_a_server_alias_names_the_contact_it_merges():
    env = build({"type": "alias", "userId": "u-1", "previousId": " Bo@Acme.com "}, site=SERVER)
    assert env["props"] == {"previous_id": "bo@acme.com"}
    assert trusted_merge(env) == ("bo@acme.com", "u-1")
    by_id = build({"type": "alias", "userId": "u-1", "previousId": "crm-7"}, site=SERVER)
    assert trusted_merge(by_id) == ("crm-7", "u-1")


@pytest.mark.parametrize("previous", [None, "null", "undefined", ""])
def test_a_server_alias_without_a_real_previous_id_is_refused(previous):
    with pytest.raises(InvalidEvent, match="an alias needs a previousId"):
        build({"type": "alias", "userId": "u-1", "previousId": previous}, site=SERVER)


def test_a_browser_alias_merges_nothing_whatever_it_says():
    message = {"type": "alias", "userId": "u-1", "previousId": "u-2"}
    forged = {**message, "properties": {"previous_id": "u-2"}}
    for env in (build(message), build(forged)):
        assert env["props"] == {}
        assert trusted_merge(env) is None
    assert trusted_merge(build({**message, "previousId": "u-1"}, site=SERVER)) is None


def test_a_forget_from_a_server_names_a_contact_and_keeps_nothing_else():
    message = {"type": "forget", "userId": "u-9", "anonymousId": "c-1", "traits": {"title": "CEO"}}
    env = build(message, site=SERVER)
    assert (env["type"], env["channel"], env["anon_id"], env["props"]) == (
        "forget",
        "crm",
        None,
        {},
    )
    assert partition_key(env) == "u-9"
    assert forgotten_contact(env) == "u-9"
    by_email = build({"type": "forget", "traits": {"email": "Dana@Acme.com"}}, site=SERVER)
    assert forgotten_contact(by_email) == "dana@acme.com"


@pytest.mark.parametrize(
    ("message", "site", "reason"),
    [
        ({"type": "forget", "userId": "u-9"}, BROWSER, "only a server write key"),
        ({"type": "forget", "anonymousId": "c-1"}, SERVER, "a forget names the contact"),
    ],
)
def test_a_forget_needs_a_server_key_and_a_contact(message, site, reason):
    with pytest.raises(InvalidEvent, match=reason):
        build(message, site=site)


def test_an_envelope_from_the_broker_may_not_take_an_anonymous_visitors_key():
    for key in ("user_id", "email"):
        forged = codec.dumps({**envelope(), key: "anon:victim-cookie"})
        with pytest.raises(InvalidEvent, match=f"{key} may not start with 'anon:'"):
            decode(forged)
