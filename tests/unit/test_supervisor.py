"""`dbl run`'s supervisor: a child that dies is started again with backoff; a vital service
that dies stops everything."""

from __future__ import annotations

import os
import time

from dbl.supervisor import Supervisor


def test_a_child_that_exits_is_started_again_with_backoff_until_a_vital_service_dies(capsys):
    deadline = time.monotonic() + 4.5
    supervisor = Supervisor(os.environ, {"test clock": lambda: time.monotonic() < deadline})
    child = supervisor.start("calendar", "calendar")
    try:
        assert supervisor.wait() == 1
    finally:
        supervisor.stop_all()
    printed = capsys.readouterr().out
    # Exits at once; started again after 1 s, then after 2 s (then 4 s).
    assert child.restarts >= 2
    assert printed.count("calendar started again") >= 1
    assert "calendar exited with code 0; restarting in 1 s" in printed
    assert "calendar exited with code 0; restarting in 2 s" in printed
    assert "the test clock died; stopping everything" in printed
