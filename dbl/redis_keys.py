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

    def delivered(self, alert_id: str) -> str:
        """String with a TTL: marks an alert id as delivered (makes delivery idempotent)."""
        return f"{self.prefix}:delivered:{alert_id}"
