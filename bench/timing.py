"""Run one command as its own process and measure it: wall time, CPU time and peak RSS of that process."""

from __future__ import annotations

import compileall
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Timed", "bench_env", "compile_tree", "run_timed"]


@dataclass(frozen=True)
class Timed:
    """One finished process: wall seconds, user+system CPU seconds, peak RSS in MiB, and its output."""

    wall_s: float
    cpu_s: float
    max_rss_mb: float
    output: str


def bench_env(**extra: str) -> dict[str, str]:
    """The environment for measured commands: this repository importable, no Encord credentials inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCORD_")}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    env.update(extra)
    return env


def tree_env(root: Path | None, /, **extra: str) -> dict[str, str]:
    """:func:`bench_env`, with source tree ``root`` (if given) first on the import path, so a child process
    imports ``reconciler`` from it (``python -m`` also puts the working directory first: run it from ``root``)."""
    env = bench_env(**extra)
    if root is not None:
        env["PYTHONPATH"] = str(root) + os.pathsep + env["PYTHONPATH"]
    return env


def compile_tree(root: Path | None = None) -> None:
    """Byte-compile the project's packages under ``root`` (default: this repository) into their
    ``__pycache__`` folders, as ``pip install`` does for an installed package. Measured commands then import
    bytecode, even where ``PYTHONDONTWRITEBYTECODE`` would have each of them compile every module again."""
    root = root or Path(__file__).resolve().parent.parent
    for package in ("reconciler", "bench"):
        if (root / package).is_dir():
            compileall.compile_dir(root / package, quiet=1, workers=1)


def run_timed(cmd: list[str], *, env: dict[str, str], cwd: Path) -> Timed:
    """Run ``cmd`` (stdout and stderr captured) and measure only that process (``os.wait4``'s rusage).

    Raises RuntimeError, with the end of the output, when it exits non-zero.
    """
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {proc.returncode}:\n{text[-3000:]}")
    # ru_maxrss is in KiB on Linux.
    return Timed(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text)
