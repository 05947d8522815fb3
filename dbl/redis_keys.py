"""The Redis layout of the rep read model: one place that names every key."""

from __future__ import annotations

from dataclasses import dataclass


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

    def throttle(self, key: str) -> str:
        """String with a TTL: event time of the last alert of a kind for a lead and rep."""
        return f"{self.prefix}:throttle:{key}"

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
        """String with a TTL: marks an alert id as delivered (makes delivery idempotent)."""
        return f"{self.prefix}:delivered:{alert_id}"
