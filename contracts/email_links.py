"""Signed email links: open pixels and click-throughs that name the contact and campaign.

A token is `<base64url payload>.<base64url HMAC-SHA256(site secret, payload)>`; the payload
names the site, contact, campaign, (for clicks) the sealed URL and an expiry. Nothing in a
token is trusted until its signature checks out with that site's secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from config.sites import Site, site_named
from contracts import codec
from contracts.errors import DBLError

LINK_PARAM = "dbl_t"


class InvalidLink(DBLError):
    """A token that is malformed, tampered with, for an unknown site, or expired."""


@dataclass(frozen=True, slots=True)
class Link:
    """What a valid token says."""

    site: Site
    contact: str
    campaign: str
    url: str | None
    expires: int


def mint(site: Site, contact: str, campaign: str, url: str | None, expires: int) -> str:
    """A token for an open pixel (`url=None`) or a click-through to `url`."""
    if site.secret is None:
        raise InvalidLink(f"site {site.name!r} has no secret in sites.toml to sign links with")
    if url is not None and not _is_web_url(url):
        raise InvalidLink(f"only http(s) URLs can be sealed, not {url!r}")
    payload = {"s": site.name, "c": contact, "m": campaign, "u": url, "x": expires}
    body = _b64(codec.dumps(payload))
    return f"{body}.{_b64(_mac(site.secret, body))}"


def verify(token: str, sites: dict[str, Site], now_s: int) -> Link:
    """The link a token stands for; raises `InvalidLink` unless signed, known and current."""
    body, dot, signature = token.partition(".")
    if not dot or len(token) > 4096:
        raise InvalidLink("not a link token")
    try:
        payload = codec.loads(_unb64(body))
        given = _unb64(signature)
    except (ValueError, binascii.Error):
        raise InvalidLink("not a link token") from None
    site = _site(payload, sites)
    if site.secret is None or not hmac.compare_digest(given, _mac(site.secret, body)):
        raise InvalidLink("the token's signature does not match")
    link = Link(site, payload["c"], payload["m"], payload["u"], payload["x"])
    if link.expires < now_s:
        raise InvalidLink("the link has expired")
    if link.url is not None and not _is_web_url(link.url):
        raise InvalidLink("the sealed URL is not a web address")
    return link


def landing_url(url: str, token: str) -> str:
    """The sealed URL with the token added, so the snippet on that page can link the visitor."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), (LINK_PARAM, token)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _site(payload: Any, sites: dict[str, Site]) -> Site:
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(k), t) for k, t in (("s", str), ("c", str), ("m", str), ("x", int))
    ):
        raise InvalidLink("not a link token")
    if payload.get("u") is not None and not isinstance(payload["u"], str):
        raise InvalidLink("not a link token")
    site = site_named(sites, payload["s"])
    if site is None:
        raise InvalidLink("the token names no known site")
    return site


def _mac(secret: str, body: str) -> bytes:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
