"""Peak RSS of a command and of every process it forks, added up (``os.wait4`` gives only the largest).

    .venv/bin/python -m bench.rss_tree -- .venv/bin/python -m reconciler -C DIR plan

Runs the command (its output discarded), reads ``VmHWM`` (the peak resident set) from ``/proc/PID/status`` of
it and of each of its descendants every 20 ms until it exits, and prints one JSON line: each process's last
peak in MB, their sum, and the command's wall time. Linux only (``/proc``). A process that lives less than
20 ms may be missed; ``VmHWM`` only grows, so a longer one's peak is its last reading.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return out


def _peak_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def measure(cmd: list[str], every: float = 0.02) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        todo = [proc.pid]
        while todo:
            pid = todo.pop()
            kb = _peak_kb(pid)
            if kb is not None:
                peaks[pid] = max(peaks.get(pid, 0), kb)
            todo += _children(pid)
        time.sleep(every)
    wall = time.perf_counter() - start
    mb = {str(pid): round(kb / 1024) for pid, kb in peaks.items()}
    return {
        "exit": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_rss_mb": mb,
        "sum_mb": round(sum(peaks.values()) / 1024),
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(measure(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
