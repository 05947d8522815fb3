"""Machine traffic that is not interest: web bots, email link scanners, mail privacy
proxies. Pure: decisions from the user agent and address only (timing-based detection of
scanners happens in the dataflow, which knows when an email was delivered)."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Final

from contracts.envelope import LINK_SCANNER, MAIL_PROXY, WEB_BOT

_WEB_BOTS: Final = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|headless|phantomjs|python-requests|python-urllib|"
    r"curl/|wget/|go-http-client|java/|okhttp|facebookexternalhit|preview|monitor|pingdom|"
    r"lighthouse|httpclient|scrapy",
    re.IGNORECASE,
)
_LINK_SCANNERS: Final = re.compile(
    r"safelinks|mimecast|proofpoint|barracuda|forcepoint|trendmicro|symantec|messagelabs|"
    r"sophos|fireeye|mcafee|cisco|ironport|zscaler|appriver|vadesecure|bitdefender",
    re.IGNORECASE,
)
# Apple Mail Privacy Protection fetches with a bare "Mozilla/5.0" and from Apple's 17/8.
_APPLE_PROXY_UA: Final = re.compile(r"^Mozilla/5\.0$")
_APPLE_NETWORK: Final = ipaddress.ip_network("17.0.0.0/8")
# Published ranges of the big email-security gateways (samples; extend as needed).
_SCANNER_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "40.92.0.0/15",  # Microsoft Exchange Online Protection (Safe Links)
        "40.107.0.0/16",
        "52.100.0.0/14",
        "104.47.0.0/17",
        "205.139.110.0/24",  # Mimecast
        "207.211.30.0/24",
        "148.163.128.0/19",  # Proofpoint
        "67.231.144.0/20",
    )
)


def web_bot(user_agent: str | None) -> str | None:
    """`web_bot` for a known crawler or automation user agent."""
    if user_agent and _WEB_BOTS.search(user_agent):
        return WEB_BOT
    return None


def email_machine(kind: str, user_agent: str | None, ip: str | None) -> str | None:
    """The reason an email open or click was made by a machine, or None."""
    address = _address(ip)
    if user_agent and _LINK_SCANNERS.search(user_agent):
        return LINK_SCANNER
    if address is not None and any(address in network for network in _SCANNER_NETWORKS):
        return LINK_SCANNER
    if kind == "email_open" and (
        (user_agent and _APPLE_PROXY_UA.match(user_agent))
        or (address is not None and address in _APPLE_NETWORK)
    ):
        return MAIL_PROXY
    if kind == "email_click" and web_bot(user_agent):
        return LINK_SCANNER
    return None


@lru_cache(maxsize=4096)
def truncate_ip(ip: str | None) -> str | None:
    """The network part only (IPv4 /24, IPv6 /48): enough for abuse, not for a person."""
    address = _address(ip)
    if address is None:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not ip:
        return None
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None
