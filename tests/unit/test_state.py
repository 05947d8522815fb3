"""The format of per-key state (`dataflows/state.py`): golden bytes per persisted class,
state packed by the previous layout restores, state from a newer release is refused.

Golden bytes change only on purpose: `DBL_REGENERATE_GOLDEN=1 pytest tests/unit/test_state.py`
rewrites `tests/unit/state/golden.json`; a diff there in review is a format change."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from config.scoring import load_scoring_model
from config.settings import Settings
from dataflows.ordering.buffer import Progress, ReorderBuffer, Sequenced, Watermarks
from dataflows.rules.accounts import Account
from dataflows.rules.contact_routes import ContactRoutes
from dataflows.rules.dedupe import SeenIds
from dataflows.rules.identity import Cookie, ToContact, resolve
from dataflows.rules.leads import LeadUpdate
from dataflows.rules.merges import (
    ContactGraph,
    Dissolve,
    Erase,
    Forget,
    ForLead,
    Join,
    Merge,
    Move,
    Rejoin,
)
from dataflows.rules.profile import Profile, apply_signal, assess
from dataflows.rules.scoring import Engagement, Fit
from dataflows.state import CODES, FORMAT, pack, unpack
from dataflows.steps.identify import pack_identity, unpack_identity
from tests.conftest import envelope, page_view

MODEL = load_scoring_model(Settings().config_dir / "scoring.toml")
STATE = Path(__file__).parent / "state"
GOLDEN = STATE / "golden.json"
SIGNAL: Any = {"id": "e1", "type": "page", "ts": 1, "received_at": 2}


def samples() -> dict[str, object]:
    """One fixed instance of every persisted class."""
    move = Move("bo@acme.com", "u-1", ("bo@acme.com",))
    to_contact = ToContact("u-1", SIGNAL, "server", linked_at=(2, 1, "e1"))
    return {
        "SeenIds": SeenIds({7: 1_000}, 1),
        "Cookie": Cookie("u-1", "server", None, (2, 1, "e1")),
        "Profile": Profile("u-1", Engagement(5, {"page_view": 1.5}), {"title": "VP"}),
        "Engagement": Engagement(5, {"page_view": 1.5}),
        "Fit": Fit(40.0, (("title", 40.0),)),
        "Account": Account({"u-1": 3.0}, 3.0, {"u-1": 5}, False, 0),
        "Progress": Progress("events-0", 10, 1, 2),
        "Sequenced": Sequenced((2, 1, "e1", "u-1"), ("u-1", None)),
        "Watermarks": Watermarks(frozenset({"events-0@0"}), {"events-0@0": 10}),
        "ReorderBuffer": ReorderBuffer([((2, 1, "e1", "u-1"), 0, None)], 1, 1),
        "ContactGraph": ContactGraph({"bo@acme.com": "u-1"}, {"u-1": ["bo@acme.com", "u-1"]}),
        "ToContact": to_contact,
        "Merge": Merge("bo@acme.com", "u-1", SIGNAL),
        "Forget": Forget("u-1", SIGNAL),
        "ForLead": ForLead("u-1", to_contact),
        "LeadUpdate": LeadUpdate({"person": "u-1"}, [], (2, 1, "e1", "u-1")),
        "Rejoin": Rejoin(move, "bo@acme.com", SIGNAL),
        "Erase": Erase("u-1", "bo@acme.com", SIGNAL),
        "Join": Join("u-1", "bo@acme.com", None, SIGNAL),
        "Dissolve": Dissolve(SIGNAL, True),
        "Move": move,
        "ContactRoutes": ContactRoutes(ContactGraph(), {9: (2, 1, "e1")}),
    }


def test_every_persisted_class_has_a_sample_and_a_code_of_its_own():
    assert sorted(samples()) == sorted(cls.__name__ for cls in CODES.values())
    assert len(set(CODES.values())) == len(CODES)
    for cls in CODES.values():
        assert dataclasses.is_dataclass(cls)
        assert pickle.loads(pickle.dumps(cls)) is cls


def test_every_sample_packs_to_its_golden_bytes_and_back():
    packed = {name: pack(sample).hex() for name, sample in samples().items()}
    if os.environ.get("DBL_REGENERATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(packed, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    for name, sample in samples().items():
        assert packed[name] == golden[name], f"the packed format of {name} changed"
        assert unpack(bytes.fromhex(golden[name])) == sample
        assert b"dataflows" not in bytes.fromhex(golden[name]), "classes go by code, not path"


def test_state_packed_with_its_pickle_header_restores():
    """Format 1 packed the whole pickle, protocol opcode and frame header included; a
    large state spans several frames, whose later headers stay."""
    large = ContactRoutes(ContactGraph(), {n: (n, 1, f"e{n}") for n in range(20_000)})
    for sample in (*samples().values(), large):
        with_header = bytes([1]) + pickle.dumps(sample, protocol=pickle.HIGHEST_PROTOCOL)
        assert unpack(with_header) == sample
        assert unpack(pack(sample)) == sample
        assert len(pack(sample)) == len(with_header) - 11


def _plain(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _subset(expected: Any, found: Any) -> None:
    """Every field the old layout had holds the same value (new fields are extra)."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for key, value in expected.items():
            _subset(value, found[key])
    elif isinstance(expected, list) and isinstance(found, list):
        assert len(found) == len(expected)
        for old, new in zip(expected, found, strict=True):
            _subset(old, new)
    else:
        assert found == expected


@pytest.mark.parametrize("step", ["identify", "score", "rollup_account"])
def test_state_packed_by_the_previous_layout_restores(step):
    """`state/layout-0/` holds each step's state as the previous layout packed it (a bare
    pickle, no format byte; `Account` named by its old module path)."""
    restored = unpack((STATE / "layout-0" / f"{step}.pickle").read_bytes())
    expected = json.loads((STATE / "layout-0" / "expected.json").read_text())[step]
    _subset(expected, _plain(restored))
    assert unpack(pack(restored)) == restored


def test_a_restored_lead_goes_on_scoring():
    dana = unpack((STATE / "layout-0" / "score.pickle").read_bytes())
    before = dana.engagement.points["pricing_page"]
    apply_signal(dana, page_view("/pricing", user_id=dana.person, ts=dana.last_seen + 1), MODEL)
    assert dana.engagement.points["pricing_page"] > before


def test_a_profile_packed_by_release_0_1_0_restores_with_the_new_fields_defaulted():
    """`state/profile-0.1.0.pickle` was packed by release 0.1.0 (before `trust`)."""
    dana = unpack((STATE / "profile-0.1.0.pickle").read_bytes())
    assert dana.traits["owner"] == "alex"
    assert dana.trust == {}
    apply_signal(dana, envelope(type="identify", props={"owner": "sam"}), MODEL)
    assert dana.traits["owner"] == "alex", "a browser claim still never sets the owner"
    assert unpack(pack(dana)) == dana


def test_state_from_a_newer_release_is_refused_with_the_reason():
    newer_format = bytes([FORMAT + 1]) + pack(SeenIds())[1:]
    with pytest.raises(pickle.UnpicklingError, match="newer release"):
        unpack(newer_format)
    more_fields = (*dataclasses.astuple(SeenIds()), "a field this release does not know")
    with pytest.raises(pickle.UnpicklingError, match="written by a newer release"):
        SeenIds.__new__(SeenIds).__setstate__(more_fields)  # type: ignore[attr-defined]


def test_a_visitors_state_packs_small_and_unpacks_equal():
    seen, cookie = SeenIds(), Cookie()
    for path in ("/blog/lead-scoring", "/pricing"):
        signal = page_view(path)
        seen.first_time(signal["id"], signal["received_at"], 86_400_000)
        resolve(cookie, "cookie-1", signal, MODEL)
    assert cookie.history is not None
    assess(cookie.history, cookie.history.last_seen, MODEL)  # fills the fit memo too

    packed = pack_identity(seen, cookie)
    assert b"engagement" not in packed  # no field names
    assert b"cookie-1" not in packed, "the key says whose cookie it is"
    assert cookie.history.person == "anon:cookie-1", "packing leaves the cookie as it was"
    assert len(packed) < 400
    restored_seen, restored = unpack_identity(packed)
    assert restored.history is not None
    assert restored.history.person == ""
    restored.history.person = "anon:cookie-1"
    assert (restored_seen, restored) == (seen, cookie)


def test_an_account_packed_before_its_contacts_field_restores_with_it_empty():
    """`Account.contacts` was appended after format 1 shipped: the golden bytes of the
    account as they were then restore with the new field's default."""
    before = bytes.fromhex(
        "018005952f0000000000000082f5298194287d948c03752d3194474008000000000000734740080000000000007d9468024b0573894b007494622e"
    )
    account = unpack(before)
    assert account.engagement == {"u-1": 3.0}
    assert account.contacts == {}


def test_a_lead_update_packed_before_its_late_field_restores_as_not_late():
    """`LeadUpdate.late` was appended after format 1 shipped (an update in an ordering
    buffer of a snapshot)."""
    update = unpack(
        bytes.fromhex(
            "018005952d0000000000000082ff298194287d948c06706572736f6e948c03752d3194735d94284b024b018c0265319468037494897494622e"
        )
    )
    assert update.view == {"person": "u-1"}
    assert update.late is False


def test_a_profile_packed_before_outcomes_restores_with_none():
    """`Profile.outcome` and its companions were appended after format 1 shipped."""
    dana = unpack(
        bytes.fromhex(
            "018005955d0000000000000082f2298194288c03752d319482f32981944b057d948c09706167655f7669657794473ff8000000000000738694627d948c057469746c65948c02565094735d944b007d944b004b007d94894b004b004e7d945d947d944e7d947494622e"
        )
    )
    assert dana.traits == {"title": "VP"}
    assert (dana.outcome, dana.outcome_at, dana.open_opportunity) == (None, 0, False)


def test_format_0_slot_state_restores_by_name_and_refuses_unknown_fields():
    """Format 0 pickled classes without a layout of their own as (None, {slot: value})."""
    account = Account.__new__(Account)
    account.__setstate__((None, {"total": 3.0, "engagement": {"u-1": 3.0}}))  # type: ignore[attr-defined]
    assert (account.total, account.engagement, account.contacts) == (3.0, {"u-1": 3.0}, {})
    with pytest.raises(pickle.UnpicklingError, match="written by a newer release"):
        Account.__new__(Account).__setstate__((None, {"total": 1.0, "later": 2}))  # type: ignore[attr-defined]


def test_a_profile_packed_before_presence_restores_with_no_visit():
    """`Profile.visit_start` and the other presence fields were appended after format 1
    shipped: the profile's golden bytes of the release before restore with no visit."""
    dana = unpack(
        bytes.fromhex(
            "01800595650000000000000082f2298194288c03752d319482f32981944b057d948c09706167655f7669"
            "657794473ff8000000000000738694627d948c057469746c65948c02565094735d944b007d944b004b00"
            "7d94894b004b004e7d945d947d944e7d944e4b00894e8c00947494622e"
        )
    )
    assert dana.traits == {"title": "VP"}
    assert (dana.visit_start, dana.page, dana.visit_pages, dana.left) == (0, "", 0, False)
    assert (dana.dwell, dana.dwell_days) == (None, None)


def test_a_profile_packed_before_refreshes_restores_as_never_viewed():
    """`Profile.viewed_at` was appended after presence: the profile's golden bytes of the
    release before restore as never viewed."""
    dana = unpack(
        bytes.fromhex(
            "01800595770000000000000082f2298194288c03752d319482f32981944b057d948c09706167655f7669"
            "657794473ff8000000000000738694627d948c057469746c65948c02565094735d944b007d944b004b00"
            "7d94894b004b004e7d945d947d944e7d944e4b00894e8c00944b0068104b00470000000000000000894e"
            "4e7494622e"
        )
    )
    assert dana.traits == {"title": "VP"}
    assert dana.viewed_at == 0
    assert unpack(pack(dana)) == dana
