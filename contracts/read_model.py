"""The rep read model: the Redis layout (one place that names every key), the profile a
rep reads, and how a profile is stored (a hash of JSON values, one per field).

The dataflow writes it; the rep service reads it. Fields are only ever added.

>>> view = {"person": "dana@acme.com", "grade": "A1", "top_signals": [["pricing_page", 10.0]]}
>>> decode_profile({k.encode(): v for k, v in encode_profile(view).items()}) == view
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

from contracts import codec


class Contribution(TypedDict):
    """One part of a lead's score: a fit rule that matched, or an engagement rule's points
    decayed to the profile's time."""

    kind: str  # "fit" or "engagement"
    label: str
    points: float


class Presence(TypedDict):
    """A person's latest web visit, from browser signals only (a server's call or a CRM sync
    never counts). Times are event time (epoch ms), which for a browser is receive time."""

    since: int  # the visit's first browser signal
    last: int  # its latest one
    page: str  # the path that latest signal came from
    pages: int  # pages viewed in the visit
    engaged_seconds: float  # time the visit's pages were visible and used
    left: bool  # the latest signal said the page closed


def is_on_site(presence: Presence | None, now_ms: int, timeout_ms: int) -> bool:
    """On the site now: a browser signal within `timeout_ms` and the page not closed.

    >>> visit = {"since": 0, "last": 60_000, "page": "/pricing", "pages": 2,
    ...          "engaged_seconds": 30.0, "left": False}
    >>> is_on_site(visit, 100_000, 45_000), is_on_site(visit, 200_000, 45_000)
    (True, False)
    >>> is_on_site({**visit, "left": True}, 61_000, 45_000)
    False
    """
    return presence is not None and not presence["left"] and now_ms - presence["last"] <= timeout_ms


class ProfileView(TypedDict):
    """A person's profile as reps read it (Redis hash, profile API, alert payload)."""

    person: str
    email: str | None
    name: str | None
    title: str | None
    company: str | None
    company_size: Any
    industry: str | None
    country: str | None
    account: str | None
    owner: str | None
    # The strongest proof a source gave of who this is (`server`, `signed`, `form_fill`...).
    recognized_by: str | None
    grade: str
    fit: float
    engagement: float
    sales_ready: bool
    # Event time (epoch ms) the scores are as of, and of the person's last signal.
    as_of: int
    last_seen: int
    # [label, points] pairs: why the fit is what it is; the biggest engagement contributions.
    fit_reasons: list[list[Any]]
    top_signals: list[list[Any]]
    # [event time ms, what happened], newest first.
    activity: list[list[Any]]
    machine_signals: dict[str, int]
    # The version of the scoring model that scored it (a content hash).
    model: str
    # What became of the lead, from a server source: `created`, `won`, `lost` or None; when
    # (event time, ms); whether an opportunity is open; its amount.
    outcome: str | None
    outcome_at: int | None
    open_opportunity: bool
    outcome_amount: float | None
    # Why the score is what it is: every contribution, largest first; they add up to
    # `score` (fit rules' points plus engagement, before either is bounded for the grade).
    contributions: list[Contribution]
    score: float
    # The chance of the model's outcome (e.g. won within 90 days), 0..1, when the model
    # knows it (a learned one does); else None.
    probability: float | None
    # What `probability` is the chance of, e.g. "won within 90 days" (None without one).
    probability_of: str | None
    # The CRM's word on the lead (server sources only): its lifecycle stage (e.g.
    # `customer`) and when it was disqualified (ISO-8601 or epoch ms), or None.
    lifecycle_stage: str | None
    disqualified_at: str | int | float | None
    # The latest web visit (None: never on the site); `is_on_site` says if it goes on.
    presence: Presence | None


def encode_profile(view: ProfileView | dict[str, Any]) -> dict[str, bytes]:
    """A profile view as Redis hash fields, each holding one JSON value."""
    return {field: codec.dumps(value) for field, value in view.items()}


def decode_profile(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The inverse of `encode_profile`."""
    return {field.decode(): codec.loads(value) for field, value in fields.items()}


def profiles_of(replies: list[dict[bytes, bytes]]) -> list[dict[str, Any]]:
    """The profiles a pipeline of HGETALLs read, leaving out people gone since (an empty
    hash)."""
    return [decode_profile(fields) for fields in replies if fields]


def hottest_first(profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Profiles by engagement, hottest first: the hot list and the daily digest.

    >>> def reply(person: str, engagement: float | None) -> dict[bytes, bytes]:
    ...     return {b"person": codec.dumps(person), b"engagement": codec.dumps(engagement)}
    >>> replies = [reply("ann", 3.0), reply("bo", 9.5), reply("cy", None), {}]
    >>> [p["person"] for p in hottest_first(profiles_of(replies))]
    ['bo', 'ann', 'cy']
    """
    return sorted(profiles, key=lambda p: -float(p.get("engagement") or 0))


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Keys under one prefix (`dbl` by default; tests use their own).

    >>> RedisKeys("dbl").profile("dana@acme.com")
    'dbl:profile:dana@acme.com'
    """

    prefix: str

    def profile(self, person: str) -> str:
        """Hash: the person's profile, one JSON value per field."""
        return f"{self.prefix}:profile:{person}"

    @property
    def hot_leads(self) -> str:
        """Sorted set: known contacts by engagement."""
        return f"{self.prefix}:leads:hot"

    def rep_alerts(self, rep: str) -> str:
        """Stream: the alerts delivered to one rep, oldest first."""
        return f"{self.prefix}:alerts:{rep}"

    @property
    def raised(self) -> str:
        """Stream: every alert raised, once, before routing and throttles (capped): live,
        as the dispatcher reads them; a shadow model's, as its dataflow raises them."""
        return f"{self.prefix}:raised"

    def thread(self, rep: str, thread: str) -> str:
        """Counter: pushes to a rep of one lead visit's thread (expires after 2 days)."""
        return f"{self.prefix}:thread:{rep}:{thread}"

    @property
    def suppressed(self) -> str:
        """Stream: alerts the CRM's word on their lead kept from the rep (capped), each with
        `rep`, `state` and `alert`."""
        return f"{self.prefix}:suppressed"

    @property
    def shadow(self) -> RedisKeys:
        """The keys of a shadow (challenger) model's profiles and raised alerts.

        >>> RedisKeys("dbl").shadow.profile("dana@acme.com")
        'dbl:shadow:profile:dana@acme.com'
        """
        return RedisKeys(f"{self.prefix}:shadow")

    def throttle(self, key: str) -> str:
        """String with a TTL: event time of the last alert of a kind for a lead and rep."""
        return f"{self.prefix}:throttle:{key}"

    def rep_present(self, rep: str) -> str:
        """Sorted set: the rep's leads whose web visit goes on, by their latest browser
        signal (epoch ms); a closed page takes the lead off at once, the reader the rest."""
        return f"{self.prefix}:rep:{rep}:present"

    def digest(self, digest_id: str) -> str:
        """List: the alerts held for one digest (a rep's webhook, the end of quiet hours)."""
        return f"{self.prefix}:digest:{digest_id}"

    def daily(self, rep: str, day: str) -> str:
        """String with a TTL: the rep's daily digest of this local date is queued."""
        return f"{self.prefix}:daily:{rep}:{day}"

    def snooze(self, rep: str, scope: str, subject: str) -> str:
        """String with a TTL: the rep snoozed this lead or account (`scope`) for 7 days."""
        return f"{self.prefix}:snooze:{rep}:{scope}:{subject}"

    def feedback(self, alert_id: str) -> str:
        """String with a TTL: the rep's latest rating of an alert."""
        return f"{self.prefix}:feedback:{alert_id}"

    @property
    def ratings(self) -> str:
        """Hash: ratings counted per kind and per rule (`contracts.feedback.count_field`)."""
        return f"{self.prefix}:feedback:counts"

    def rep_recent(self, rep: str) -> str:
        """Sorted set: the rep's leads by their last signal (epoch ms), for "hot now"."""
        return f"{self.prefix}:rep:{rep}:recent"

    @property
    def webhook_due(self) -> str:
        """Sorted set: webhook job ids by when to (re)try them (epoch ms, wall clock)."""
        return f"{self.prefix}:webhooks:due"

    @property
    def webhook_jobs(self) -> str:
        """Hash: webhook job id -> the job (JSON: alert, rep, webhook, attempt, last error)."""
        return f"{self.prefix}:webhooks:jobs"

    @property
    def webhook_dead(self) -> str:
        """List: webhook jobs that failed every attempt, newest first (JSON)."""
        return f"{self.prefix}:webhooks:dead"

    def delivered(self, alert_id: str) -> str:
        """String with a TTL: marks an alert id as delivered (makes delivery idempotent); holds
        whose it is (`contracts.feedback.Delivered`, JSON; "1" before feedback existed)."""
        return f"{self.prefix}:delivered:{alert_id}"
