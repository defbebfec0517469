"""``bench.rss_tree`` adds up the peak RSS of a command and of the processes it forks."""

from __future__ import annotations

import sys

from bench.rss_tree import measure

# A parent that forks a child; each holds 60 MB for a while (longer than the 20 ms between readings).
FORKS = (
    "import os, time\n"
    "block = bytearray(60 << 20)\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    mine = bytearray(60 << 20); time.sleep(0.5); os._exit(0)\n"
    "time.sleep(0.5); os.waitpid(pid, 0)\n"
)


def test_the_peaks_of_a_forked_child_are_added() -> None:
    got = measure([sys.executable, "-c", FORKS])
    peaks = got["peak_rss_mb"]
    assert len(peaks) == 2 and got["exit"] == 0
    assert all(mb >= 60 for mb in peaks.values())
    assert abs(got["sum_mb"] - sum(peaks.values())) <= 1  # (each rounded to the MB)
