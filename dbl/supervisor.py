"""Runs DBL's processes side by side and stops every one of them on Ctrl-C or a failure."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

from dbl.embedded import die_with_parent

STOP_TIMEOUT_S = 8.0


@dataclass
class Child:
    """A started process and the name it is known by."""

    name: str
    process: subprocess.Popen[bytes]


class Supervisor:
    """Starts children, waits for a signal or a death, then stops them all (newest first)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self._children: list[Child] = []
        self._stopping = False

    def start(self, name: str, module: str, *args: str) -> Child:
        """Start `python -m module args...` with the shared environment."""
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=self._env,
            preexec_fn=die_with_parent,
            # Own session: a terminal's Ctrl-C reaches only `dbl run`, which stops
            # everything in order (services last).
            start_new_session=True,
        )
        child = Child(name, process)
        self._children.append(child)
        return child

    def wait(self) -> int:
        """Block until Ctrl-C/SIGTERM or until a child exits; returns the exit code to use."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self._stopping:
                for child in self._children:
                    code = child.process.poll()
                    if code is not None:
                        print(f"dbl: {child.name} exited with code {code}; stopping everything")
                        return code or 1
                time.sleep(0.2)
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop_all(self) -> None:
        """SIGTERM every child still running, newest first; SIGKILL what lingers."""
        for child in reversed(self._children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in reversed(self._children):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
