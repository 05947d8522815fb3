"""Demo traffic: realistic visitors played against the collector through its public API.

`journey()` scripts one visitor as Segment calls (anonymous browsing, a webinar invite
email, clicks, a form fill, pricing visits...); `play()` sends calls over HTTP. `make run`
plays an endless stream of them; tests and benchmarks reuse the same scripts.
"""

from __future__ import annotations

import base64
import random
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Final

from contracts import codec

BROWSER_KEY: Final = "wk_demo_browser"
# Demo visitors are people in browsers, and say so (bot user agents are not scored).
BROWSER_AGENT: Final = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)
SERVER_KEY: Final = "wk_demo_server"

FIRST_NAMES: Final = ("Dana", "Lee", "Priya", "Marco", "Aiko", "Sam", "Noor", "Jonas", "Eva")
LAST_NAMES: Final = ("Ruiz", "Chen", "Patel", "Rossi", "Tanaka", "Okafor", "Berg", "Silva")
COMPANIES: Final = (
    ("Acme", "acme.com", 800, "Software", "US"),
    ("Globex", "globex.io", 2500, "Manufacturing", "DE"),
    ("Initech", "initech.com", 300, "Financial Services", "US"),
    ("Umbrella", "umbrella-health.com", 1200, "Healthcare", "GB"),
    ("Hooli", "hooli.xyz", 120, "SaaS", "CA"),
)
SENIOR_TITLES: Final = ("VP Sales", "Head of Marketing", "Director of Engineering", "CTO")
OTHER_TITLES: Final = ("Marketing Manager", "Analyst", "Student", "Engineer")
KINDS: Final = ("anonymous", "warm", "hot")
# Of ten visitors, about six browse anonymously, three are known leads, one is buying.
VISITOR_MIX: Final = (6, 3, 1)
VISITOR_GAP_S: Final = 3.0
BLOG_PATHS: Final = ("/", "/blog/lead-scoring-101", "/blog/intent-data", "/customers")


@dataclass(frozen=True, slots=True)
class Call:
    """One Segment HTTP API call: endpoint path, write key and message."""

    path: str
    write_key: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Person:
    """Who a demo visitor is (their explicit data)."""

    name: str
    email: str
    title: str
    company: str
    company_size: int
    industry: str
    country: str
    owner: str | None = None


def make_person(rng: random.Random, n: int, *, senior: bool) -> Person:
    """A plausible person; `n` keeps emails unique across a long demo."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company, domain, size, industry, country = rng.choice(COMPANIES)
    title = rng.choice(SENIOR_TITLES if senior else OTHER_TITLES)
    email = f"{first}.{last}.{n}@{domain}".lower()
    return Person(f"{first} {last}", email, title, company, size, industry, country)


def page(anon_id: str, path: str, title: str = "") -> Call:
    """A browser page view."""
    url = f"https://www.dbl.example{path}"
    props = {"path": path, "url": url, "title": title or path}
    message = {"anonymousId": anon_id, "properties": props}
    return Call("/v1/page", BROWSER_KEY, message)


def email_event(person: Person, event: str, campaign: str) -> Call:
    """An ESP-reported email open or click (server key, keyed by the contact's email)."""
    message = {
        "event": event,
        "context": {"traits": {"email": person.email}, "campaign": {"name": campaign}},
        "properties": {"campaign": campaign},
    }
    return Call("/v1/track", SERVER_KEY, message)


def form_fill(anon_id: str, person: Person, form_id: str) -> Call:
    """A form submission on the site that names the visitor (browser key)."""
    traits = {
        "email": person.email,
        "name": person.name,
        "title": person.title,
        "company": person.company,
        "company_size": person.company_size,
        "industry": person.industry,
        "country": person.country,
    }
    if person.owner:
        traits["owner"] = person.owner
    message = {
        "anonymousId": anon_id,
        "event": "Form Submitted",
        "properties": {"form_id": form_id, **traits},
        "context": {"traits": traits},
    }
    return Call("/v1/track", BROWSER_KEY, message)


def identify(anon_id: str, person: Person) -> Call:
    """A browser identify with the person's traits."""
    traits = {"email": person.email, "name": person.name, "title": person.title}
    message = {"anonymousId": anon_id, "traits": traits}
    return Call("/v1/identify", BROWSER_KEY, message)


def webinar(person: Person, event: str) -> Call:
    """A webinar platform's registration or attendance (server key)."""
    message = {
        "event": event,
        "context": {"traits": {"email": person.email}},
        "properties": {"webinar": "Scoring leads in real time"},
    }
    return Call("/v1/track", SERVER_KEY, message)


def journey(rng: random.Random, n: int, *, kind: str) -> list[Call]:
    """The calls of one visitor: `hot` becomes sales-ready, `warm` identifies but stays
    below it, `anonymous` browses and leaves."""
    anon_id = str(uuid.UUID(int=rng.getrandbits(128)))
    calls = [page(anon_id, rng.choice(BLOG_PATHS)) for _ in range(rng.randint(1, 3))]
    if kind == "anonymous":
        return _with_message_ids(rng, calls)
    person = make_person(rng, n, senior=kind == "hot")
    campaign = "Webinar invite: real-time scoring"
    calls += [
        email_event(person, "Email Opened", campaign),
        email_event(person, "Email Link Clicked", campaign),
        page(anon_id, "/webinars/real-time-scoring"),
        form_fill(anon_id, person, "webinar-registration"),
        webinar(person, "Webinar Registered"),
    ]
    if kind == "warm":
        return _with_message_ids(rng, calls)
    calls += [webinar(person, "Webinar Attended"), page(anon_id, "/product")]
    calls += [page(anon_id, "/pricing", "Pricing") for _ in range(3)]
    calls.append(form_fill(anon_id, person, "demo-request"))
    return _with_message_ids(rng, calls)


def post(base_url: str, call: Call, timeout: float = 5.0) -> int:
    """Send one call to the collector; returns the HTTP status."""
    token = base64.b64encode(f"{call.write_key}:".encode()).decode()
    request = urllib.request.Request(
        base_url.rstrip("/") + call.path,
        data=codec.dumps(call.message),
        headers={
            "content-type": "application/json",
            "authorization": f"Basic {token}",
            "user-agent": BROWSER_AGENT,
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def play(base_url: str, calls: list[Call], pause_s: float = 0.0) -> list[int]:
    """Send calls in order; returns their statuses."""
    statuses = []
    for call in calls:
        statuses.append(post(base_url, call))
        if pause_s:
            time.sleep(pause_s)
    return statuses


def run_forever(base_url: str, seed: int, pause_s: float, gap_s: float = VISITOR_GAP_S) -> None:
    """Endless demo traffic like a B2B site's day, sped up: mostly anonymous readers, some
    known leads, now and then a buyer (the first visitor is one, so alerts come at once);
    one visitor after another, `gap_s` apart."""
    rng = random.Random(seed)
    n = 0
    while True:
        n += 1
        kind = "hot" if n == 1 else rng.choices(KINDS, weights=VISITOR_MIX)[0]
        for status in play(base_url, journey(rng, n, kind=kind), pause_s):
            if status >= 400:
                print(f"demo: the collector answered {status}")
        time.sleep(gap_s)


def _with_message_ids(rng: random.Random, calls: list[Call]) -> list[Call]:
    """Deterministic message ids: the same seed replays the very same events."""
    for call in calls:
        call.message["messageId"] = str(uuid.UUID(int=rng.getrandbits(128)))
    return calls
