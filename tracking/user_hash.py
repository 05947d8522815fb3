"""Verified browser identities: a site's backend signs the id of its logged-in user, the
page passes the signature along as `context.user_hash`, and the collector raises the claim
to trust `signed`.

`user_hash` = hex HMAC-SHA256(site secret, id), where the id is the call's `userId`, or the
lower-cased email when it has none. Write keys are public; this signature is not.
"""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, identity: str) -> str:
    """The `user_hash` a site's backend computes for a user id (or lower-cased email)."""
    return hmac.new(secret.encode(), identity.encode(), hashlib.sha256).hexdigest()


def signs(given: str, secret: str, identity: str) -> bool:
    """True when `given` is the `user_hash` of `identity` under `secret` (constant time)."""
    return hmac.compare_digest(given.lower().encode(), sign(secret, identity).encode())
