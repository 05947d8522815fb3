"""The one JSON codec of DBL: orjson with fixed options, shared by every package."""

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError
JSONEncodeError = orjson.JSONEncodeError
_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    """Encode a value as compact UTF-8 JSON bytes."""
    return orjson.dumps(value, option=_OPTIONS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON; raises `JSONDecodeError` (a `ValueError`) on malformed input."""
    return orjson.loads(data)
