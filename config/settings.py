"""The one settings object: typed, frozen, built once at start-up from the environment.

Nothing else in DBL reads `os.environ`. Each field names the variable behind it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from config.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent


def _env(name: str) -> dict[str, Any]:
    return {"env": name}


@dataclass(frozen=True)
class Settings:
    """Where DBL finds its broker, Redis, config files, and where it listens."""

    kafka_bootstrap_servers: str | None = field(
        default=None, metadata=_env("KAFKA_BOOTSTRAP_SERVERS")
    )
    redis_url: str | None = field(default=None, metadata=_env("REDIS_URL"))
    config_dir: Path = field(default=CONFIG_DIR, metadata=_env("DBL_CONFIG_DIR"))
    # The files holding secrets, when kept apart from the rest (e.g. compose secrets).
    sites_file: str | None = field(default=None, metadata=_env("DBL_SITES_FILE"))
    routing_file: str | None = field(default=None, metadata=_env("DBL_ROUTING_FILE"))
    # The demo's shipped secrets are refused unless this is on (`dbl run --demo`).
    demo: bool = field(default=False, metadata=_env("DBL_DEMO"))
    events_topic: str = field(default="dbl.events", metadata=_env("DBL_EVENTS_TOPIC"))
    alerts_topic: str = field(default="dbl.alerts", metadata=_env("DBL_ALERTS_TOPIC"))
    dlq_topic: str = field(default="dbl.events.dlq", metadata=_env("DBL_DLQ_TOPIC"))
    # Published scoring models (`dbl model publish`), kept for ever.
    models_topic: str = field(default="dbl.models", metadata=_env("DBL_MODELS_TOPIC"))
    events_partitions: int = field(default=4, metadata=_env("DBL_EVENTS_PARTITIONS"))
    redis_prefix: str = field(default="dbl", metadata=_env("DBL_REDIS_PREFIX"))
    collector_host: str = field(default="127.0.0.1", metadata=_env("DBL_COLLECTOR_HOST"))
    collector_port: int = field(default=8080, metadata=_env("DBL_COLLECTOR_PORT"))
    rep_api_host: str = field(default="127.0.0.1", metadata=_env("DBL_REP_API_HOST"))
    rep_api_port: int = field(default=8081, metadata=_env("DBL_REP_API_PORT"))
    dataflow_metrics_host: str = field(
        default="127.0.0.1", metadata=_env("DBL_DATAFLOW_METRICS_HOST")
    )
    dataflow_metrics_port: int = field(default=9464, metadata=_env("DBL_DATAFLOW_METRICS_PORT"))
    rate_limit_per_s: float = field(default=50.0, metadata=_env("DBL_RATE_LIMIT_PER_S"))
    rate_limit_burst: float = field(default=200.0, metadata=_env("DBL_RATE_LIMIT_BURST"))
    # Seconds a client has to send one whole request (slow ones get a 408 and are closed).
    request_timeout_s: float = field(default=10.0, metadata=_env("DBL_REQUEST_TIMEOUT_S"))
    # Events, not requests, per address: one request may carry a batch of 1,000.
    event_limit_per_s: float = field(default=500.0, metadata=_env("DBL_EVENT_LIMIT_PER_S"))
    event_limit_burst: float = field(default=2000.0, metadata=_env("DBL_EVENT_LIMIT_BURST"))
    public_url: str = field(default="http://127.0.0.1:8080", metadata=_env("DBL_PUBLIC_URL"))
    # How far behind the wall clock a caught-up events partition reports its progress: a
    # signal stamped earlier than that but read later is scored out of order, and a
    # caught-up dataflow holds each signal about this long (part of every alert's latency).
    idle_lag_s: float = field(default=0.05, metadata=_env("DBL_IDLE_LAG_S"))
    produce_timeout_s: float = field(default=5.0, metadata=_env("DBL_PRODUCE_TIMEOUT_S"))
    dispatcher_group: str = field(default="dbl-dispatcher", metadata=_env("DBL_DISPATCHER_GROUP"))
    # Where `python -m alerts dispatch` (delivery without the rep API) serves its metrics.
    delivery_metrics_port: int = field(default=9465, metadata=_env("DBL_DELIVERY_METRICS_PORT"))
    # A challenger scoring model (a TOML path) run beside the live one by
    # `python -m dataflows --shadow`: its own profiles and alerts, never pushed.
    shadow_model: str | None = field(default=None, metadata=_env("DBL_SHADOW_MODEL"))
    shadow_metrics_port: int = field(default=9466, metadata=_env("DBL_SHADOW_METRICS_PORT"))
    # Fault tests only: the failpoint at which to kill the process (runtime/failpoints.py).
    failpoint: str | None = field(default=None, metadata=_env("DBL_FAILPOINT"))

    @property
    def brokers(self) -> str:
        """The bootstrap servers; raises if neither set nor started by `dbl run`."""
        if not self.kafka_bootstrap_servers:
            raise ConfigError("KAFKA_BOOTSTRAP_SERVERS", "", "is not set (dbl run sets it)")
        return self.kafka_bootstrap_servers

    @property
    def redis(self) -> str:
        """The Redis URL; raises if neither set nor started by `dbl run`."""
        if not self.redis_url:
            raise ConfigError("REDIS_URL", "", "is not set (dbl run sets it)")
        return self.redis_url

    @property
    def sites_path(self) -> Path:
        """Sites and write keys: DBL_SITES_FILE, else `sites.toml` in the config folder."""
        return Path(self.sites_file) if self.sites_file else self.config_dir / "sites.toml"

    @property
    def scoring_path(self) -> Path:
        """The scoring model every process of this deployment reads: `scoring.toml` in the
        config folder."""
        return self.config_dir / "scoring.toml"

    @property
    def routing_path(self) -> Path:
        """Reps, tokens and webhooks: DBL_ROUTING_FILE, else `routing.toml` there."""
        return Path(self.routing_file) if self.routing_file else self.config_dir / "routing.toml"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (tests and the launcher use it)."""
        return replace(self, **changes)

    def as_environment(self) -> dict[str, str]:
        """The variables that rebuild these settings in a child process."""
        env: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                env[f.metadata["env"]] = str(value)
        return env

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables; bad values name the variable."""
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = source.get(name)
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(name, raw, f.default)
        return cls(**values)


def _parse(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.lower() in {"1", "true", "yes"}
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(name, "", f"must be a whole number, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(name, "", f"must be a number, got {raw!r}") from None
    if isinstance(default, Path):
        return Path(raw)
    return raw
