"""Copies of this process made with ``os.fork`` to use the second core (a large source read ahead, a large file
hashed): the one way to stop one."""

from __future__ import annotations

import contextlib
import os
import signal

__all__ = ["stop"]


def stop(pid: int) -> None:
    """Kill the copy ``pid`` (a child of this process) and reap it; nothing where it is gone and reaped already."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(pid, 0)
