"""Configuration errors that name the file (or variable), the key and what is wrong."""

from contracts.errors import DBLError


class ConfigError(DBLError):
    """A configuration file or variable is invalid; fix it and start again."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where} {problem}")
