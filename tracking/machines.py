"""Machine traffic that is not interest: web bots, email link scanners, mail privacy
proxies. Pure: decisions from the user agent and address only (timing-based detection of
scanners happens in the dataflow, which knows when an email was delivered)."""

from __future__ import annotations

import ipaddress
import re
import re._constants as sre_constants  # type: ignore[import-not-found]  # no stubs
import re._parser as sre_parse  # type: ignore[import-not-found]  # no stubs
from collections.abc import Iterable
from functools import lru_cache
from typing import Final

from crawleruseragents import CRAWLER_USER_AGENTS_DATA

from contracts.envelope import LINK_SCANNER, MAIL_PROXY, WEB_BOT


class CrawlerIndex:
    """Patterns of user agents (the maintained crawler-user-agents list), each filed under
    the first three characters of a literal it cannot match without, so an agent is tried
    against the few patterns whose literal it holds instead of all 1,500 of them.

    >>> index = CrawlerIndex([r"Googlebot\\/", "[wW]get", "Chirp|gotosocial"])
    >>> index.matches("Mozilla/5.0 (compatible; Googlebot/2.1)"), index.matches("wget/1.2")
    (True, True)
    >>> index.matches("gotosocial/0.5"), index.matches("Mozilla/5.0 Firefox/128.0")
    (True, False)
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        self._by_trigram: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        self._always: list[re.Pattern[str]] = []
        for pattern in patterns:
            compiled = re.compile(pattern)
            literal = _needed_literal(pattern)
            if len(literal) >= 3:
                self._by_trigram.setdefault(literal[:3], []).append((literal, compiled))
            else:
                self._always.append(compiled)

    def matches(self, agent: str) -> bool:
        """Whether any pattern matches `agent` (each distinct trigram of it looked up once:
        an agent repeating one trigram costs no more than one that has it once)."""
        trigrams = {agent[start : start + 3] for start in range(len(agent) - 2)}
        for trigram in trigrams & self._by_trigram.keys():
            for literal, pattern in self._by_trigram[trigram]:
                if literal in agent and pattern.search(agent):
                    return True
        return any(pattern.search(agent) for pattern in self._always)


def _needed_literal(pattern: str) -> str:
    """The longest run of plain characters every match of `pattern` contains ("" if none:
    a pattern of alternatives or one that ignores case).

    >>> _needed_literal(r"Googlebot\\/"), _needed_literal("AdsBot-Google([^-]|$)")
    ('Googlebot/', 'AdsBot-Google')
    >>> _needed_literal("Chirp|gotosocial"), _needed_literal("(?i)bot")
    ('', '')
    """
    parsed = sre_parse.parse(pattern)
    if parsed.state.flags & re.IGNORECASE:
        return ""
    runs, run = [], ""
    for op, value in parsed:
        if op is sre_constants.LITERAL:
            run += chr(value)
        else:
            runs.append(run)
            run = ""
    return max([*runs, run], key=len)


_CRAWLERS: Final = CrawlerIndex(crawler["pattern"] for crawler in CRAWLER_USER_AGENTS_DATA)
# Besides the maintained list (whose patterns name each crawler): the words any crawler may
# call itself by, and HTTP clients the list leaves out.
_SELF_NAMED: Final = re.compile(r"bot\b|spider|crawl|java/|postmanruntime", re.IGNORECASE)
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


# Real traffic repeats a few thousand user agents (they are cut to 512 characters before).
@lru_cache(maxsize=16_384)
def web_bot(user_agent: str | None) -> str | None:
    """`web_bot` for a known crawler or automation user agent.

    >>> web_bot("Mozilla/5.0 (compatible; GPTBot/1.2; +https://openai.com/gptbot)")
    'web_bot'
    >>> web_bot("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Version/17.0 Safari/605.1.15")
    """
    if user_agent and (_SELF_NAMED.search(user_agent) or _CRAWLERS.matches(user_agent)):
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
