"""Hostile input never crashes the decoders: the only failure is `InvalidEvent`, with a reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from config.settings import CONFIG_DIR
from config.sites import load_sites
from contracts import codec
from contracts.envelope import InvalidEvent, decode
from tracking.esp import sendgrid_envelopes
from tracking.segment import from_segment

SITES = list(load_sites(CONFIG_DIR / "sites.toml").values())
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)
segment_keys = st.sampled_from(
    [
        "type",
        "anonymousId",
        "userId",
        "event",
        "traits",
        "properties",
        "context",
        "timestamp",
        "messageId",
        "groupId",
        "name",
        "previousId",
    ]
)
segment_like = st.dictionaries(segment_keys, json_values, max_size=8)


def outcome(call: Callable[[], Any]) -> tuple[Any, str | None]:
    """(result, None), or (None, the refusal's reason) when the input is refused."""
    try:
        return call(), None
    except InvalidEvent as exc:
        return None, exc.reason


@given(
    st.one_of(json_values, segment_like),
    st.sampled_from(SITES),
    st.sampled_from([None, "track", "page", "identify", "group", "alias", "screen"]),
)
def test_from_segment_accepts_or_explains(message, site, call_type):
    envelope, reason = outcome(
        lambda: from_segment(message, site=site, received_at=1_767_225_600_000, call_type=call_type)
    )
    if envelope is None:
        assert reason
    else:
        assert decode(codec.dumps(envelope)) == envelope, "what we accept, the dataflow accepts"


@given(st.binary(max_size=300))
def test_decode_of_any_bytes_accepts_or_explains(raw):
    result, reason = outcome(lambda: decode(raw))
    assert result is not None or reason


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "type",
                "channel",
                "ts",
                "received_at",
                "anon_id",
                "user_id",
                "email",
                "props",
                "context",
                "source",
                "trust",
                "machine",
                "event",
                "name",
                "account",
            ]
        ),
        json_values,
        max_size=16,
    )
)
def test_decode_of_any_object_accepts_or_explains(data):
    result, reason = outcome(lambda: decode(codec.dumps(data)))
    assert result is not None or reason


@given(json_values)
def test_sendgrid_bodies_accept_or_explain(body):
    result, reason = outcome(lambda: sendgrid_envelopes(body, SITES[1], 1_767_225_600_000))
    assert result is not None or reason
