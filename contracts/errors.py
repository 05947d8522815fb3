"""The one exception root of DBL; each package's errors say what the operator should do."""


class DBLError(Exception):
    """Base of every error DBL raises on purpose."""
