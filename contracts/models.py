"""Published scoring models: the records of the models topic, and the marker that switches
the dataflow to a model at one place in the events log.

`dbl model publish` appends a `Publication` (the model's files, who, when, its evaluation)
to the models topic, then writes one marker into every partition of the events topic. Each
signal after the marker in its partition is scored with that model; a replay of the log
switches at the same places. Pure: no I/O.

>>> marker = model_change("0123456789ab", 1_767_225_600_000)
>>> changed_to(MODEL_CHANGE_KEY, marker)
'0123456789ab'
>>> changed_to(b"dana@acme.com", marker) is None  # only the marker key switches models
True
"""

from __future__ import annotations

import base64
import re
from typing import Any, Final, Literal, TypedDict

from contracts import codec
from contracts.errors import DBLError

# The events topic's key of model markers: no signal's key can be this (it starts with a
# byte the collector never puts in an id).
MODEL_CHANGE_KEY: Final = b"\x00dbl.model"
VERSION: Final = re.compile(r"[0-9a-f]{12}")

Action = Literal["publish", "rollback"]


class Publication(TypedDict):
    """One record of the models topic: a model handed to the running system."""

    version: str
    action: Action
    # Who published it (the operator's login) and when (epoch ms).
    by: str
    at: int
    # The model's files by name (TOML and lists), base64: the model itself, not a path.
    files: dict[str, str]
    # What a backtest said of it, if the publisher gave its report (the candidate's
    # figures), else None.
    evaluation: dict[str, Any] | None


class BadPublication(DBLError):
    """A models-topic record or marker that is not what this release writes."""


def model_change(version: str, at: int) -> bytes:
    """The value of a marker switching to `version`, published at `at` (epoch ms)."""
    return codec.dumps({"type": "model_change", "version": version, "at": at})


def changed_to(key: bytes | None, value: bytes | None) -> str | None:
    """The version a marker switches to, or None for any other message."""
    if key != MODEL_CHANGE_KEY:
        return None
    return change_in(value)


def change_in(value: bytes | None) -> str | None:
    """The version a marker's value switches to (an export keeps values only), or None.

    >>> change_in(model_change("0123456789ab", 0)), change_in(b'{"type": "page"}')
    ('0123456789ab', None)
    """
    if value is None or b"model_change" not in value:
        return None
    try:
        data = codec.loads(value)
    except codec.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("type") != "model_change":
        return None
    version = data.get("version")
    return version if isinstance(version, str) and VERSION.fullmatch(version) else None


def publication(
    version: str,
    files: dict[str, bytes],
    *,
    action: Action,
    by: str,
    at: int,
    evaluation: dict[str, Any] | None,
) -> Publication:
    """A publication record of a model's files."""
    encoded = {name: base64.b64encode(content).decode() for name, content in files.items()}
    return Publication(
        version=version, action=action, by=by, at=at, files=encoded, evaluation=evaluation
    )


def decode_publication(value: bytes | None) -> Publication:
    """A models-topic record, checked; raises `BadPublication` saying what is wrong."""
    try:
        data = codec.loads(value or b"")
    except codec.JSONDecodeError as exc:
        raise BadPublication(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadPublication("not a JSON object")
    if not isinstance(data.get("version"), str) or not VERSION.fullmatch(data["version"]):
        raise BadPublication("version must be 12 hex digits")
    if data.get("action") not in ("publish", "rollback"):
        raise BadPublication("action must be publish or rollback")
    files = data.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise BadPublication("files must map names to base64 text")
    return data  # type: ignore[return-value]


def files_of(record: Publication) -> dict[str, bytes]:
    """The model's files of a publication."""
    return {name: base64.b64decode(text) for name, text in record["files"].items()}
