"""Per-key state as the steps keep it between batches and in recovery snapshots: the one
owner of its format.

Packed state is one format byte (`FORMAT`) and a pickle in which every persisted class is
named by a stable code (`CODES`) and holds the tuple of its field values, without field
names: a million visitors' states, and every snapshot of them, carry neither names nor
module paths, and a class may move to another module without breaking a snapshot. The
pickle goes without its protocol opcode and first frame header, which it may lack (state
packed with them, as releases before did, reads the same).

Rules for changing a persisted class (tests/unit/test_state.py holds golden bytes of each):
- a new field goes at the end, with a default: state packed before restores with it;
- a field is never removed, renamed or reordered; a class code is never reused. Anything
  else needs a new `FORMAT` and an upgrade of the older one here;
- state from a newer release (more fields, a newer format) is refused with the reason.

>>> from dataflows.rules.dedupe import SeenIds
>>> unpack(pack(SeenIds({7: 1_000})))
SeenIds(seen={7: 1000}, added=0)
>>> pack(SeenIds())[:1] == bytes([FORMAT])
True
"""

from __future__ import annotations

import copyreg
import io
import pickle
from dataclasses import MISSING, fields
from operator import attrgetter
from typing import Any, Final

from dataflows.ordering.buffer import Progress, ReorderBuffer, Sequenced, Watermarks
from dataflows.rules.accounts import Account
from dataflows.rules.contact_routes import ContactRoutes
from dataflows.rules.dedupe import SeenIds
from dataflows.rules.identity import Cookie, ToContact
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
from dataflows.rules.profile import Profile
from dataflows.rules.scoring import Engagement, Fit

# The format byte of packed state. Format 2 leaves out what a key says by itself (the
# person of a cookie's anonymous history: `steps/identify.py`), so that a release reading
# formats up to 1 refuses it rather than lose that person; it reads as format 1 does.
# Format 0 (no byte: a bare pickle, which starts with 0x80) named some classes by module
# path and is still read.
FORMAT: Final = 2
# Formats that are a format byte and a pickle.
_PICKLED: Final = (bytes([1]), bytes([FORMAT]))

# Every class held in per-key state, by its stable code (the pickle extension registry:
# codes up to 255 take two bytes, larger ones three).
CODES: Final[dict[int, type]] = {
    240: SeenIds,
    241: Cookie,
    242: Profile,
    243: Engagement,
    244: Fit,
    245: Account,
    246: Progress,
    247: Sequenced,
    248: Watermarks,
    249: ReorderBuffer,
    250: ContactGraph,
    251: ToContact,
    252: Merge,
    253: Forget,
    254: ForLead,
    255: LeadUpdate,
    256: Rejoin,
    257: Erase,
    258: Join,
    259: Dissolve,
    260: Move,
    261: ContactRoutes,
}

# Format 0 named these by module path (release 0.1.0's layout).
_FORMAT_0_PATHS: Final[dict[tuple[str, str], type]] = {
    ("dataflows.accounts", "Account"): Account,
}

# The packed state of a key seen for the first time (nothing to unpickle).
FRESH: Final = b""
# A pickle's protocol opcode (2 bytes) and a frame's header (the opcode and 8 bytes).
_HEADER: Final = 2
_FRAME_HEADER: Final = 9


def pack(state: object) -> bytes:
    """Per-key state as a step keeps it between batches and snapshots it.

    >>> pack(None) == bytes([FORMAT]) + pickle.NONE + pickle.STOP
    True
    """
    body = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    # The protocol opcode and the first frame's header are optional to the unpickler, and
    # would be 11 bytes of every packed key: a million visitors hold 11 MB of them.
    start = _HEADER + _FRAME_HEADER if body[_HEADER : _HEADER + 1] == pickle.FRAME else _HEADER
    return bytes([FORMAT]) + memoryview(body)[start:]


def pack_or_fresh(state: object | None) -> bytes:
    """`pack`, except that a key with no state left (None) packs as `FRESH`."""
    return FRESH if state is None else pack(state)


def unpack(packed: bytes) -> Any:
    """The inverse of `pack`; also reads format 0. Raises `pickle.UnpicklingError` for
    state this release cannot read, saying why."""
    if packed[:1] in _PICKLED:
        return pickle.loads(memoryview(packed)[1:])
    if packed[:1] == pickle.PROTO:
        return _Format0(io.BytesIO(packed)).load()
    raise pickle.UnpicklingError(
        f"packed state of format {packed[0] if packed else 'none'}: this release reads "
        f"formats 0 to {FORMAT} (was it written by a newer release?)"
    )


class _Format0(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _FORMAT_0_PATHS.get((module, name)) or super().find_class(module, name)


def _register(code: int, cls: type) -> None:
    names = tuple(f.name for f in fields(cls))
    getter = attrgetter(*names)

    def reduce(obj: Any) -> tuple[Any, ...]:
        values = getter(obj)
        newobj = copyreg.__newobj__  # type: ignore[attr-defined]
        return newobj, (cls,), values if len(names) > 1 else (values,)

    def setstate(obj: Any, state: tuple[Any, ...]) -> None:
        if _is_slot_state(state):
            _set_by_name(obj, cls, names, state[1])
            return
        if len(state) > len(names):
            raise pickle.UnpicklingError(
                f"{cls.__name__} state has {len(state)} fields, this release knows "
                f"{len(names)}: it was written by a newer release"
            )
        for name, value in zip(names, state, strict=False):
            object.__setattr__(obj, name, value)
        for name in names[len(state) :]:
            object.__setattr__(obj, name, _default(cls, name))

    copyreg.add_extension(cls.__module__, cls.__qualname__, code)
    copyreg.pickle(cls, reduce)
    # Unpickling calls it on the new instance with the field values.
    cls.__setstate__ = setstate  # type: ignore[attr-defined]


def _is_slot_state(state: tuple[Any, ...]) -> bool:
    """Format 0 pickled classes without a layout of their own as (None, {slot: value})."""
    return len(state) == 2 and state[0] is None and isinstance(state[1], dict)


def _set_by_name(obj: Any, cls: type, names: tuple[str, ...], values: dict[str, Any]) -> None:
    """Format 0's slot state, field by field (missing fields take their defaults)."""
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise pickle.UnpicklingError(
            f"{cls.__name__} state has fields this release does not know ({unknown}): "
            "it was written by a newer release"
        )
    for name in names:
        object.__setattr__(obj, name, values[name] if name in values else _default(cls, name))


def _default(cls: type, name: str) -> Any:
    found = next(f for f in fields(cls) if f.name == name)
    if found.default_factory is not MISSING:
        return found.default_factory()
    if found.default is MISSING:
        raise pickle.UnpicklingError(f"{cls.__name__}.{name} has no default to restore with")
    return found.default


for _code, _cls in CODES.items():
    _register(_code, _cls)
