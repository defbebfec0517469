"""Run ``python -m reconciler`` with stderr on a pseudo-terminal (stdout a pipe), as a user at a terminal
who redirects the plan to a file; and read back what the terminal showed."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: ANSI control sequences (cursor moves, erase line, colours) and the other non-printing bytes rich sends.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass
class TtyResult:
    code: int
    out: str
    tty: str  # everything written to the terminal, control sequences included

    @property
    def lines(self) -> list[str]:
        """Every line the terminal was shown, in order (each redraw of the progress line is one)."""
        return [line.strip() for line in re.split(r"[\r\n]", self.tty_text) if line.strip()]

    @property
    def tty_text(self) -> str:
        return _CONTROL.sub("", self.tty)


def run_on_tty(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    columns: int = 160,
    timeout: float = 120.0,
) -> TtyResult:
    """``python -m reconciler ARGS`` with stdin empty, stdout a pipe and stderr a ``columns``-wide terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    child_env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    child_env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while reader.is_alive() and time.monotonic() < deadline:
        reader.join(0.1)
    os.close(master)
    return TtyResult(proc.returncode, out.decode(), b"".join(chunks).decode(errors="replace"))
