"""Named points where fault tests can kill a process on purpose (`DBL_FAILPOINT=name`).

Unset in production. A test sets the variable on a child process to kill -9 it at an exact
step (e.g. after a webhook was delivered but before the broker offset was committed).
"""

import os
import signal


def hit(active: str | None, name: str) -> None:
    """SIGKILL this process if `name` is the active failpoint."""
    if active == name:
        os.kill(os.getpid(), signal.SIGKILL)
