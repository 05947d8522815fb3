"""Packed per-key state: a visitor's identity state survives packing unchanged, and the
packed bytes carry neither field names nor class paths."""

from __future__ import annotations

import importlib
import pickle

from config.scoring import load_scoring_model
from config.settings import Settings
from dataflows.compact import EXTENSION_CODES
from dataflows.dedupe import SeenIds
from dataflows.identity import Cookie, resolve
from dataflows.profile import assess
from dataflows.steps.identify import pack_identity, unpack_identity
from tests.conftest import page_view


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
