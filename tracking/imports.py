"""Importing CSV files as trusted signals: event attendance (webinars, trade shows) and
outcomes (opportunities created, won, lost).

Attendance columns (header row, any order): email, name, company, title, event, status
(`registered` or `attended`, or `visited` for a trade-show booth), time (ISO-8601 with a
zone). Outcome columns: email, outcome (`created`, `won` or `lost`), time, and optionally
amount. Every row is checked before anything is sent: a file with a bad row imports
nothing, and the errors name each line and what is wrong.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from config.sites import Site
from contracts.envelope import Envelope, InvalidEvent
from tracking.segment import from_segment, normalize_email

COLUMNS: Final = ("email", "name", "company", "title", "event", "status", "time")
OUTCOME_COLUMNS: Final = ("email", "outcome", "time")
OUTCOME_EVENTS: Final = {
    "created": "Opportunity Created",
    "won": "Opportunity Won",
    "lost": "Opportunity Lost",
}
# Turns one checked row (its cells, the site, the receive time, a stable row id) into events.
RowReader = Callable[[dict[str, Any], Site, int, str], list[Envelope]]
STATUSES: Final = {
    "registered": "Webinar Registered",
    "attended": "Webinar Attended",
    "visited": "Trade Show Visited",
}


@dataclass(frozen=True, slots=True)
class RowError:
    """A refused row: its line in the file and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def read_attendance(
    path: Path, site: Site, received_at: int
) -> tuple[list[Envelope], list[RowError]]:
    """Envelopes for every row (an identify and the attendance), or the rows' errors."""
    return read_rows(path, COLUMNS, _row, site, received_at)


def read_outcomes(
    path: Path, site: Site, received_at: int
) -> tuple[list[Envelope], list[RowError]]:
    """Envelopes for every row (the outcome), or the rows' errors."""
    return read_rows(path, OUTCOME_COLUMNS, _outcome_row, site, received_at)


def read_rows(
    path: Path, columns: tuple[str, ...], read: RowReader, site: Site, received_at: int
) -> tuple[list[Envelope], list[RowError]]:
    """Every row of a CSV file through `read`, or the rows' errors (all of them)."""
    envelopes: list[Envelope] = []
    errors: list[RowError] = []
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            return [], [RowError(1, f"missing columns: {', '.join(missing)}")]
        for row in reader:
            line = reader.line_num
            try:
                envelopes += read(row, site, received_at, f"{digest}:{line}")
            except InvalidEvent as exc:
                errors.append(RowError(line, exc.reason))
    return envelopes, errors


def _outcome_row(row: dict[str, Any], site: Site, received_at: int, row_id: str) -> list[Envelope]:
    email = _email(row)
    outcome = (row["outcome"] or "").strip().lower()
    if outcome not in OUTCOME_EVENTS:
        raise InvalidEvent(
            f"outcome must be one of {', '.join(OUTCOME_EVENTS)}, got {row['outcome']!r}"
        )
    properties: dict[str, Any] = {}
    amount = (row.get("amount") or "").strip()
    if amount:
        try:
            properties["amount"] = float(amount)
        except ValueError:
            raise InvalidEvent(f"amount {amount!r} is not a number") from None
        if not 0 <= properties["amount"] < 1e15:
            raise InvalidEvent(f"amount {amount!r} is out of range")
    message = {
        "type": "track",
        "event": OUTCOME_EVENTS[outcome],
        "messageId": f"import:{row_id}:{outcome}",
        "timestamp": _time(row["time"]),
        "properties": properties,
        "context": {"traits": {"email": email}, "channel": "crm"},
    }
    return [from_segment(message, site=site, received_at=received_at)]


def _email(row: dict[str, Any]) -> str:
    email = normalize_email(row["email"])
    if email is None:
        raise InvalidEvent(f"email {row['email']!r} is not an email address")
    return email


def _row(row: dict[str, Any], site: Site, received_at: int, row_id: str) -> list[Envelope]:
    email = _email(row)
    status = (row["status"] or "").strip().lower()
    if status not in STATUSES:
        raise InvalidEvent(f"status must be one of {', '.join(STATUSES)}, got {row['status']!r}")
    event_name = (row["event"] or "").strip()
    if not event_name:
        raise InvalidEvent("event is empty")
    when = _time(row["time"])
    traits = {k: row[k].strip() for k in ("name", "company", "title") if (row[k] or "").strip()}
    identify = {
        "type": "identify",
        "messageId": f"import:{row_id}:identify",
        "timestamp": when,
        "traits": {"email": email, **traits},
        "context": {"channel": "event"},
    }
    attendance = {
        "type": "track",
        "event": STATUSES[status],
        "messageId": f"import:{row_id}:{status}",
        "timestamp": when,
        "properties": {"event_name": event_name, "status": status},
        "context": {"traits": {"email": email}, "channel": "event"},
    }
    return [from_segment(m, site=site, received_at=received_at) for m in (identify, attendance)]


def _time(raw: str | None) -> str:
    return zoned_time("time", raw).isoformat()


def zoned_time(name: str, raw: str | None) -> datetime:
    """An ISO-8601 time with its zone; `InvalidEvent` naming `name` otherwise.

    >>> zoned_time("time", "2026-11-20T15:00:00Z").isoformat()
    '2026-11-20T15:00:00+00:00'
    """
    text = (raw or "").strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(f"{name} {text!r} is not ISO-8601 (e.g. 2026-11-20T15:00:00Z)") from None
    if parsed.tzinfo is None:
        raise InvalidEvent(f"{name} {text!r} needs a time zone (Z or +01:00)")
    return parsed
