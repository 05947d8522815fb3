"""Typed access to parsed TOML: every error names the file, the key and the problem."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from config.errors import ConfigError

_MISSING: Any = object()


class Table:
    """One TOML table with its dotted path, so every error can say where it is."""

    def __init__(self, source: str, path: str, data: dict[str, Any]) -> None:
        self.source = source
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path) -> Table:
        """Parse a TOML file; a missing or malformed file is a `ConfigError`."""
        try:
            with path.open("rb") as fh:
                return cls(str(path), "", tomllib.load(fh))
        except FileNotFoundError:
            raise ConfigError(str(path), "", "does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), "", f"is not valid TOML: {exc}") from exc

    def key(self, name: str) -> str:
        """The dotted path of a key in this table."""
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> ConfigError:
        """An error about one key of this table."""
        return ConfigError(self.source, self.key(name), problem)

    def only(self, allowed: Iterable[str]) -> None:
        """Reject keys this table does not know (a typo must not be silently ignored)."""
        allowed_set = set(allowed)
        for name in self.data:
            if name not in allowed_set:
                known = ", ".join(sorted(allowed_set))
                raise self.error(name, f"is not a known key (known: {known})")

    def _get(self, name: str, default: Any) -> Any:
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise self.error(name, "is required")
        return default

    def text(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is not default and (not isinstance(value, str) or not value.strip()):
            raise self.error(name, f"must be a non-empty string, got {value!r}")
        return value

    def secret(self, name: str, default: Any = _MISSING) -> Any:
        """A secret: written in the file, or kept out of it as `{ file = "/run/secrets/x" }`
        (its first line) or `{ env = "VARIABLE" }`, so a deployment's secrets live where
        it keeps secrets (compose and Kubernetes mount them as files)."""
        value = self._get(name, default)
        if isinstance(value, dict):
            value = self._secret_from(name, value)
        elif value is not default and (not isinstance(value, str) or not value.strip()):
            raise self.error(name, "must be a non-empty string, { file = ... } or { env = ... }")
        return value

    def _secret_from(self, name: str, where: dict[str, Any]) -> str:
        if set(where) == {"file"} and isinstance(where["file"], str):
            try:
                value = Path(where["file"]).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise self.error(name, f"cannot read {where['file']}: {exc.strerror}") from None
        elif set(where) == {"env"} and isinstance(where["env"], str):
            value = os.environ.get(where["env"], "").strip()
        else:
            raise self.error(name, 'must be { file = "PATH" } or { env = "VARIABLE" }')
        if not value:
            raise self.error(name, f"is empty (read from {where})")
        return value

    def number(self, name: str, default: Any = _MISSING, *, positive: bool = False) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"must be a number, got {value!r}")
        if positive and value <= 0:
            raise self.error(name, f"must be greater than 0, got {value!r}")
        return float(value)

    def flag(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is not default and not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def texts(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, default)
        if value is default:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(name, f"must be a list of non-empty strings, got {value!r}")
        return tuple(value)

    def table(self, name: str) -> Table:
        value = self._get(name, _MISSING)
        if not isinstance(value, dict):
            raise self.error(name, "must be a table")
        return Table(self.source, self.key(name), value)

    def tables(self, name: str, default: Any = _MISSING) -> list[Table]:
        """An array of tables (`[[name]]`), each with its index in the path (`default`, if
        given, when there is none)."""
        value = self._get(name, default)
        if value is default:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(name, "must be an array of tables ([[...]])")
        return [Table(self.source, f"{self.key(name)}[{i}]", v) for i, v in enumerate(value)]

    def subtables(self) -> dict[str, Table]:
        """Every value of this table as a named sub-table (`[sites.NAME]`)."""
        return {name: self.table(name) for name in self.data}
