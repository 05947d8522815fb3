"""Packed per-key state: a visitor's identity state survives packing unchanged, and the
packed bytes carry neither field names nor class paths."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import pytest

from config.scoring import load_scoring_model
from config.settings import Settings
from dataflows.compact import EXTENSION_CODES, pack
from dataflows.dedupe import SeenIds
from dataflows.identity import Cookie, resolve
from dataflows.profile import Profile, apply_signal, assess
from dataflows.steps.identify import pack_identity, unpack_identity
from tests.conftest import envelope, page_view

MODEL = load_scoring_model(Settings().config_dir / "scoring.toml")


def test_every_coded_class_exists_and_round_trips_by_its_code():
    for (module, name), code in EXTENSION_CODES.items():
        cls = getattr(importlib.import_module(module), name)
        assert pickle.loads(pickle.dumps(cls)) is cls
        assert 240 <= code <= 255, "private-use codes only"


def test_a_visitors_state_packs_small_and_unpacks_equal():
    model = load_scoring_model(Settings().config_dir / "scoring.toml")
    seen, cookie = SeenIds(), Cookie()
    for path in ("/blog/lead-scoring", "/pricing"):
        signal = page_view(path)
        seen.first_time(signal["id"], signal["received_at"], 86_400_000)
        resolve(cookie, "cookie-1", signal, model)
    assert cookie.history is not None
    assess(cookie.history, cookie.history.last_seen, model)  # fills the fit memo too

    packed = pack_identity(seen, cookie)
    assert unpack_identity(packed) == (seen, cookie)
    assert b"dataflows" not in packed
    assert b"engagement" not in packed  # no field names
    assert len(packed) < 400


def test_a_profile_packed_by_the_previous_release_restores_with_the_new_fields_defaulted():
    """`tests/unit/state/profile-0.1.0.pickle` was packed by release 0.1.0 (before `trust`)."""
    packed = (Path(__file__).parent / "state" / "profile-0.1.0.pickle").read_bytes()
    dana = pickle.loads(packed)
    assert dana.traits["owner"] == "alex"
    assert dana.trust == {}
    apply_signal(dana, envelope(type="identify", props={"owner": "sam"}), MODEL)
    assert dana.traits["owner"] == "alex", "a browser claim still never sets the owner"
    assert pickle.loads(pack(dana)) == dana


def test_state_from_a_newer_release_is_refused_with_the_reason():
    state = (*Profile("dana@acme.com").__getstate__(), "a field this release does not know")
    with pytest.raises(pickle.UnpicklingError, match="written by a newer release"):
        Profile.__new__(Profile).__setstate__(state)
