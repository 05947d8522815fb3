"""Headless Chromium (Debian's, driven by Playwright) for the browser tests."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import Browser, sync_playwright

from config.settings import Settings
from contracts.read_model import RedisKeys, decode_profile

# Without the background-networking flags Chromium keeps dialling out of a closed network.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS
        )
        yield chromium
        chromium.close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Not on the test's output."""


@contextmanager
def serving(directory: Path) -> Iterator[str]:
    """A tiny website: `directory` served on its own loopback port (its base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def profile(settings: Settings, client: redis.Redis, person: str) -> dict[str, Any] | None:
    """A person's profile in the read model, or None."""
    fields = client.hgetall(RedisKeys(settings.redis_prefix).profile(person))
    return decode_profile(fields) if fields else None  # type: ignore[arg-type]
