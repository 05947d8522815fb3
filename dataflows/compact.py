"""Per-key state that pickles small: field values in order, without field names."""

from __future__ import annotations

import copyreg
import pickle
from dataclasses import MISSING, fields
from operator import attrgetter
from typing import Any, Final

# The classes held in packed per-key state, each named in a pickle by a one-byte extension
# code (the standard library's extension registry; 240-255 are for private use) instead of
# its module and name: some thirty bytes less per class, per visitor.
EXTENSION_CODES: dict[tuple[str, str], int] = {
    ("dataflows.dedupe", "SeenIds"): 240,
    ("dataflows.identity", "Cookie"): 241,
    ("dataflows.profile", "Profile"): 242,
    ("dataflows.scoring", "Engagement"): 243,
    ("dataflows.scoring", "Fit"): 244,
}
for (module, name), code in EXTENSION_CODES.items():
    copyreg.add_extension(module, name, code)


class Compact:
    """Mixin for slotted dataclasses of per-key state: pickles as the tuple of its field
    values. A million visitors' packed states, and every snapshot of them, then carry no
    field names. A new field goes at the end, with a default: state packed before it was
    added restores with that default.

    >>> import pickle
    >>> from dataclasses import dataclass
    >>> @dataclass(slots=True)
    ... class Visit(Compact):
    ...     path: str
    ...     ts: int
    >>> pickle.loads(pickle.dumps(Visit("/pricing", 1)))
    Visit(path='/pricing', ts=1)
    """

    __slots__ = ()

    def __getstate__(self) -> tuple[Any, ...]:
        state: tuple[Any, ...] = _layout(type(self))[1](self)
        return state

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        names = _layout(type(self))[0]
        if len(state) > len(names):
            raise pickle.UnpicklingError(
                f"{type(self).__name__} state has {len(state)} fields, this release knows "
                f"{len(names)}: it was written by a newer release"
            )
        for name, value in zip(names, state, strict=False):
            object.__setattr__(self, name, value)
        # State written before fields were added (always at the end) takes their defaults.
        for name in names[len(state) :]:
            object.__setattr__(self, name, _default(type(self), name))


# The packed state of a key seen for the first time (nothing to unpickle).
FRESH: Final = b""


def pack(state: object) -> bytes:
    """Per-key state as a step keeps it between batches and snapshots it."""
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def pack_or_fresh(state: object | None) -> bytes:
    """`pack`, except that a key with no state left (None) packs as `FRESH`."""
    return FRESH if state is None else pack(state)


def _default(cls: type, name: str) -> Any:
    found = next(f for f in fields(cls) if f.name == name)
    if found.default_factory is not MISSING:
        return found.default_factory()
    if found.default is MISSING:
        raise pickle.UnpicklingError(f"{cls.__name__}.{name} has no default to restore with")
    return found.default


# Per class: its field names, and one getter that reads them all into a tuple.
_LAYOUTS: dict[type, tuple[tuple[str, ...], attrgetter[Any]]] = {}


def _layout(cls: type) -> tuple[tuple[str, ...], attrgetter[Any]]:
    layout = _LAYOUTS.get(cls)
    if layout is None:
        names = tuple(f.name for f in fields(cls))
        assert len(names) > 1, "attrgetter returns a tuple only for two names or more"
        layout = _LAYOUTS[cls] = (names, attrgetter(*names))
    return layout
