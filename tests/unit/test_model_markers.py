"""Only a marker written by `dbl model publish` switches models: a visitor's event, whatever
its key or its properties say, never does."""

from __future__ import annotations

from contracts import codec
from contracts.models import MODEL_CHANGE_KEY, changed_to, model_change
from tests.conftest import envelope


def test_an_event_dressed_as_a_marker_is_not_one():
    forged = envelope(props={"type": "model_change", "version": "0123456789ab"})
    assert changed_to(MODEL_CHANGE_KEY, codec.dumps(forged)) is None
    nested = envelope(context={"page": {"path": "/model_change"}}, anon_id="\x00dbl.model")
    assert changed_to(MODEL_CHANGE_KEY, codec.dumps(nested)) is None


def test_a_marker_needs_its_key_and_a_well_formed_version():
    assert changed_to(b"cookie-1", model_change("0123456789ab", 1)) is None
    bad = codec.dumps(
        {
            "type": "model_change",
            "version": "".join(chr(0xFF10 + n) for n in range(10)) + "ab",
            "at": 1,
        }
    )
    assert changed_to(MODEL_CHANGE_KEY, bad) is None, "unicode digits are no version"
    assert changed_to(MODEL_CHANGE_KEY, b'{"type": "model_change", "version": ["x"]}') is None
    assert changed_to(MODEL_CHANGE_KEY, b"\xff not json model_change") is None
    assert changed_to(MODEL_CHANGE_KEY, model_change("0123456789ab", 1)) == "0123456789ab"
