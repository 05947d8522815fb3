"""Who may read what on the rep service: a rep's own token shows that rep's alerts and
leads only; the admin token shows everything."""

from __future__ import annotations

import hmac

from config.routing import Routing
from runtime.asgi import HTTPError
from runtime.router import Request


class Access:
    """Checks a request's token (`Authorization: Bearer <token>` or `?token=`)."""

    def __init__(self, routing: Routing) -> None:
        self._routing = routing

    def token(self, request: Request) -> str:
        """The token the request carries ("" for none)."""
        bearer = request.header(b"authorization") or b""
        if bearer[:7].lower() == b"bearer ":
            return bearer[7:].decode("latin-1").strip()
        return request.query.get("token", "")

    def is_admin(self, token: str) -> bool:
        """Whether `token` is the admin token."""
        return bool(token) and same(token, self._routing.admin_token)

    def require_admin(self, request: Request) -> None:
        """401 unless the request carries the admin token."""
        if not self.is_admin(self.token(request)):
            raise HTTPError(401, "a valid admin token is required")

    def require_rep(self, request: Request, rep_id: str) -> None:
        """The caller is this rep (its token) or an admin; anything else is 401, no data."""
        token = self.token(request)
        rep = self._routing.reps.get(rep_id)
        if self.is_admin(token):
            if rep is None:
                raise HTTPError(404, f"no rep {rep_id!r} in routing.toml")
            return
        if rep is None or not token or not same(token, rep.token):
            raise HTTPError(401, "a valid token for this rep is required")

    def rep_of(self, token: str) -> str | None:
        """The rep whose token this is, if any."""
        for rep in self._routing.reps.values():
            if same(token, rep.token):
                return rep.id
        return None


def same(given: str, secret: str) -> bool:
    """Constant-time comparison of a token as given (any text) with a secret."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), secret.encode())
