"""The demo's secrets are public (they ship in this repository): outside demo mode a
process refuses to start with any of them, naming the file and the key to change."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Final

from config.errors import ConfigError
from config.routing import load_routing
from config.settings import Settings
from config.sites import load_sites

# Every secret value the shipped configuration holds (a browser write key is public anyway).
DEMO_SECRETS: Final = frozenset(
    {
        "wk_demo_server",
        "demo-site-secret-change-me",
        "demo-admin-token",
        "demo-token-alex",
        "demo-token-sam",
        "demo-token-mia",
        "whsec_ZGVtby13ZWJob29rLXNlY3JldC1jaGFuZ2UtbWUtMzI=",
        "demo-slack-signing-secret",
    }
)


def refuse_demo_secrets(settings: Settings) -> None:
    """Raise a `ConfigError` for the first demo secret found, unless in demo mode.

    >>> refuse_demo_secrets(Settings(demo=True))
    >>> refuse_demo_secrets(Settings())
    Traceback (most recent call last):
    ...
    config.errors.ConfigError: .../sites.toml: sites.demo.secret is the shipped demo value ...
    """
    if settings.demo:
        return
    found = list(_secrets(settings))
    demo = [(source, key) for source, key, value in found if value in DEMO_SECRETS]
    if demo:
        source, key = demo[0]
        more = f" (and {len(demo) - 1} more)" if len(demo) > 1 else ""
        raise ConfigError(
            source,
            key,
            f"is the shipped demo value{more}: set your own secret (a value, "
            '{ file = "..." } or { env = "..." }), or run the demo with --demo (DBL_DEMO=1)',
        )


def _secrets(settings: Settings) -> Iterator[tuple[str, str, str]]:
    """(file, key, value) of every secret in the sites and routing files."""
    sites_path, routing_path = str(settings.sites_path), str(settings.routing_path)
    for site in load_sites(settings.sites_path).values():
        if site.trust == "server":
            yield sites_path, f"sites.{site.name}.write_key", site.write_key
        if site.secret is not None:
            yield sites_path, f"sites.{site.name}.secret", site.secret
    routing = load_routing(settings.routing_path)
    yield routing_path, "admin_token", routing.admin_token
    if routing.slack_signing_secret is not None:
        yield routing_path, "slack.signing_secret", routing.slack_signing_secret
    for rep in routing.reps.values():
        yield routing_path, f"reps.{rep.id}.token", rep.token
        for index, webhook in enumerate(rep.webhooks):
            yield routing_path, f"reps.{rep.id}.webhooks[{index}].secret", webhook.secret


def checked_settings() -> Settings:
    """A service's settings at start-up; with a demo secret outside demo mode (or a bad
    configuration) the process exits saying which file and key to fix."""
    try:
        settings = Settings.from_environment()
        refuse_demo_secrets(settings)
    except ConfigError as exc:
        sys.exit(f"dbl: {exc}")
    return settings
