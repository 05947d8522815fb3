"""Runs DBL's processes side by side: restarts one that dies (with backoff), and stops every
one of them on Ctrl-C, or when something it cannot restart (the embedded broker) died."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType

from dbl.embedded import die_with_parent

STOP_TIMEOUT_S = 8.0
# A child that died is started again after 1 s, then 2, 4... up to this; one that ran this
# long since its last start counts as healthy again.
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 60.0


@dataclass
class Child:
    """A started process, the name it is known by and how to start it again."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes]
    started: float
    restarts: int = 0
    restart_at: float | None = None


class Supervisor:
    """Starts children and keeps them running: a child that exits is started again with
    exponential backoff; a vital service that dies (`watch`) stops everything."""

    def __init__(self, env: Mapping[str, str], watch: Mapping[str, Callable[[], bool]]) -> None:
        self._env = dict(env)
        self._watch = dict(watch)
        self._children: list[Child] = []
        self._stopping = False

    def start(self, name: str, module: str, *args: str) -> Child:
        """Start `python -m module args...` with the shared environment."""
        argv = [sys.executable, "-m", module, *args]
        child = Child(name, argv, self._spawn(argv), time.monotonic())
        self._children.append(child)
        return child

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            env=self._env,
            preexec_fn=die_with_parent,
            # Own session: a terminal's Ctrl-C reaches only `dbl run`, which stops
            # everything in order (services last).
            start_new_session=True,
        )

    def wait(self) -> int:
        """Block until Ctrl-C/SIGTERM (0) or until a watched service died (1), restarting
        children that exit meanwhile."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self._stopping:
                for name, alive in self._watch.items():
                    if not alive():
                        print(f"dbl: the {name} died; stopping everything", flush=True)
                        return 1
                for child in self._children:
                    self._look_after(child, time.monotonic())
                time.sleep(0.2)
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _look_after(self, child: Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.process, child.started, child.restart_at = self._spawn(child.argv), now, None
                print(f"dbl: {child.name} started again", flush=True)
            return
        code = child.process.poll()
        if code is None:
            return
        if now - child.started >= HEALTHY_AFTER_S:
            child.restarts = 0
        delay = min(MAX_BACKOFF_S, 2.0**child.restarts)
        child.restarts += 1
        child.restart_at = now + delay
        print(f"dbl: {child.name} exited with code {code}; restarting in {delay:.0f} s", flush=True)

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
