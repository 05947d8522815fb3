"""A loop in a background thread that stops when asked (dispatcher, webhook sender)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

STOP_TIMEOUT_S = 10.0


class BackgroundWorker(ABC):
    """Runs `_run` in a daemon thread; `_run` must return soon after `_stop` is set."""

    name = "worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        """Start the loop."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to stop and wait for it (bounded)."""
        self._stop.set()
        self._thread.join(timeout=STOP_TIMEOUT_S)

    @abstractmethod
    def _run(self) -> None: ...
