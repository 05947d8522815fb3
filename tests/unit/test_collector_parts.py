"""Pure parts of the collector: machine traffic, IP truncation, email links, SendGrid
mapping, the rate limiter, attendance CSVs, and the snippet's size."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from crawleruseragents import CRAWLER_USER_AGENTS_DATA, is_crawler
from hypothesis import given
from hypothesis import strategies as st

from config.settings import CONFIG_DIR
from config.sites import Site, load_sites
from contracts import email_links
from contracts.envelope import InvalidEvent
from tracking.esp import sendgrid_envelopes
from tracking.imports import read_attendance
from tracking.machines import CrawlerIndex, email_machine, truncate_ip, web_bot
from tracking.ratelimit import RateLimiter

SITES = load_sites(CONFIG_DIR / "sites.toml")
DEMO = SITES["wk_demo_browser"]
SERVER = SITES["wk_demo_server"]
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
NOW = 1_767_225_600


@pytest.mark.parametrize(
    ("agent", "bot"),
    [
        (CHROME, False),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", True),
        ("Mozilla/5.0 (compatible; bingbot/2.0)", True),
        ("HeadlessChrome/120.0", True),
        ("python-requests/2.32", True),
        ("curl/8.5.0", True),
        # From the maintained list only: none of them says "bot" or "crawl".
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True),
        ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Amazonbot/0.1)", True),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True),
        ("Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", True),
        ("axios/1.7.2", True),
        ("Java/17.0.2", True),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            False,
        ),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0", False),
        (None, False),
    ],
)
def test_web_bots_by_user_agent(agent, bot):
    assert (web_bot(agent) is not None) is bot


INDEX = CrawlerIndex(c["pattern"] for c in CRAWLER_USER_AGENTS_DATA)
INSTANCES = [agent for c in CRAWLER_USER_AGENTS_DATA for agent in c.get("instances", [])]


def test_every_crawler_the_list_knows_is_a_web_bot():
    assert len(INSTANCES) > 1000
    assert [agent for agent in INSTANCES if not INDEX.matches(agent)] == []
    assert [agent for agent in INSTANCES if web_bot(agent) is None] == []


@given(
    st.sampled_from([CHROME, *INSTANCES]),
    st.text(max_size=40),
    st.integers(min_value=0, max_value=200),
)
def test_the_index_agrees_with_the_list(agent, noise, at):
    """The index answers as the list's own matcher, on its crawlers and on altered ones."""
    for text in (agent, agent[:at] + noise + agent[at:], noise, agent.swapcase()):
        assert INDEX.matches(text) is is_crawler(text)


def test_email_scanners_and_privacy_proxies():
    assert email_machine("email_click", "Mozilla/5.0 SafeLinks", None) == "link_scanner"
    assert email_machine("email_click", CHROME, "40.92.10.20") == "link_scanner"
    assert email_machine("email_open", "Mozilla/5.0", "17.58.1.2") == "mail_privacy_proxy"
    assert email_machine("email_open", CHROME, "17.58.1.2") == "mail_privacy_proxy"
    assert email_machine("email_click", CHROME, "81.2.69.160") is None
    assert email_machine("email_open", CHROME, None) is None


def test_ips_are_truncated_to_their_network():
    assert truncate_ip("203.0.113.77") == "203.0.113.0"
    assert truncate_ip("2001:db8:1234:5678::1") == "2001:db8:1234::"
    assert truncate_ip("not an ip") is None


def test_email_links_verify_only_when_signed_known_and_current():
    token = email_links.mint(DEMO, "dana@acme.com", "spring", "https://x.io/p", NOW + 60)
    link = email_links.verify(token, SITES, NOW)
    assert (link.contact, link.campaign, link.url) == ("dana@acme.com", "spring", "https://x.io/p")
    body, _, signature = token.partition(".")
    forged = email_links._b64(
        b'{"s":"demo","c":"eve@evil.io","m":"x","u":"https://evil.io","x":9999999999}'
    )
    for bad in (f"{forged}.{signature}", body + ".AAAA", "garbage", "", "a.b.c", "é.é"):
        with pytest.raises(email_links.InvalidLink):
            email_links.verify(bad, SITES, NOW)
    with pytest.raises(email_links.InvalidLink, match="expired"):
        email_links.verify(token, SITES, NOW + 61)


def test_only_web_urls_are_sealed_and_sites_need_a_secret():
    with pytest.raises(email_links.InvalidLink, match="only http"):
        email_links.mint(DEMO, "d@a.com", "c", "javascript:alert(1)", NOW)
    with pytest.raises(email_links.InvalidLink, match="no secret"):
        email_links.mint(SERVER, "d@a.com", "c", None, NOW)


def test_landing_url_keeps_the_query_and_adds_the_token():
    url = email_links.landing_url("https://x.io/p?a=1#top", "T0K")
    assert url == "https://x.io/p?a=1&dbl_t=T0K#top"


def test_sendgrid_events_map_to_email_signals_and_scanners_are_marked():
    events = [
        {"event": "delivered", "email": "d@acme.com", "timestamp": NOW, "campaign": "spring"},
        {"event": "open", "email": "d@acme.com", "timestamp": NOW, "useragent": CHROME},
        {
            "event": "click",
            "email": "d@acme.com",
            "timestamp": NOW,
            "url": "https://x.io",
            "useragent": "Mimecast",
            "ip": "205.139.110.4",
            "category": ["spring"],
        },
        {"event": "bounce", "email": "d@acme.com", "timestamp": NOW},
        {"event": "processed", "email": "d@acme.com", "timestamp": NOW},
        {"event": "open", "email": "not-an-email", "timestamp": NOW},
        {"event": "teleported", "email": "d@acme.com", "timestamp": NOW},
    ]
    envelopes, rejected = sendgrid_envelopes(events, SERVER, NOW * 1000)
    kinds = [(e["type"], e["event"], e["machine"]) for e in envelopes]
    assert kinds == [
        ("track", "Email Delivered", None),
        ("email_open", "Email Opened", None),
        ("email_click", "Email Link Clicked", "link_scanner"),
        ("track", "Email Bounced", None),
    ]
    assert envelopes[2]["context"]["ip"] == "205.139.110.0"
    assert envelopes[2]["props"] == {"campaign": "spring", "link": "https://x.io"}
    assert [r["index"] for r in rejected] == [5, 6]
    with pytest.raises(InvalidEvent, match="JSON array"):
        sendgrid_envelopes({"event": "open"}, SERVER, NOW)


def test_rate_limiter_refills_and_forgets_old_clients():
    limiter = RateLimiter(rate=2, burst=2, clients=2)
    assert [limiter.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("a", 0.5), "one token back after half a second"
    limiter.allow("b", 1.0)
    limiter.allow("c", 1.0)  # "a" is forgotten: a fresh bucket
    assert [limiter.allow("a", 1.0) for _ in range(3)] == [True, True, False]


def test_attendance_csv_with_a_bad_row_reports_each_line(tmp_path: Path):
    csv_file = tmp_path / "webinar.csv"
    csv_file.write_text(
        "email,name,company,title,event,status,time\n"
        "dana@acme.com,Dana Ruiz,Acme,VP Sales,Scoring webinar,attended,2025-12-20T15:00:00Z\n"
        "nobody,No One,X,Y,Scoring webinar,attended,2025-12-20T15:00:00Z\n"
        "lee@globex.io,Lee Chen,Globex,CTO,Scoring webinar,maybe,2025-12-20T15:00:00Z\n"
        "sam@initech.com,Sam,Initech,CFO,Scoring webinar,registered,yesterday\n"
    )
    _, errors = read_attendance(csv_file, SERVER, NOW * 1000)
    assert [str(e) for e in errors] == [
        "line 3: email 'nobody' is not an email address",
        "line 4: status must be one of registered, attended, visited, got 'maybe'",
        "line 5: time 'yesterday' is not ISO-8601 (e.g. 2026-11-20T15:00:00Z)",
    ]


def test_attendance_csv_becomes_identify_and_attendance_at_the_event_time(tmp_path: Path):
    csv_file = tmp_path / "webinar.csv"
    csv_file.write_text(
        "time,email,name,company,title,event,status\n"
        "2025-12-20T15:00:00Z,Dana@Acme.com,Dana Ruiz,Acme,VP Sales,Scoring,attended\n"
    )
    (identify, attended), errors = read_attendance(csv_file, SERVER, NOW * 1000 + 86_400_000)
    assert errors == []
    assert (identify["type"], identify["email"], identify["props"]["title"]) == (
        "identify",
        "dana@acme.com",
        "VP Sales",
    )
    assert (attended["event"], attended["channel"], attended["trust"]) == (
        "Webinar Attended",
        "event",
        "server",
    )
    assert attended["ts"] == 1_766_242_800_000
    again, _ = read_attendance(csv_file, SERVER, NOW * 1000)
    assert [e["id"] for e in again] == [identify["id"], attended["id"]], "re-import: same ids"


def test_a_csv_without_the_columns_is_refused(tmp_path: Path):
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("mail,who\nx,y\n")
    _, errors = read_attendance(csv_file, SERVER, 0)
    assert str(errors[0]).startswith("line 1: missing columns: email, name")


def test_the_snippet_is_small():
    snippet = (Path(__file__).parents[2] / "tracking" / "static" / "t.js").read_bytes()
    assert len(gzip.compress(snippet, 9)) < 3 * 1024


def test_site_origins_are_globs():
    site = Site("s", "k", "browser", ("https://*.example.com",))
    assert site.allows_origin("https://www.example.com")
    assert not site.allows_origin("https://example.com.evil.io")
