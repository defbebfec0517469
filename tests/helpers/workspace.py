"""Manifest directories for safety tests: a Workspace (sqlite or encord) plus FileMetadata documents."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.providers.sqlite import SqliteProvider
from reconciler.snapshot import Snapshot
from reconciler.testing.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]

#: The interrupt and kill tests' workspaces: every ``cams/*.jpg`` gets two keys.
TOKEN = "interrupt-token"
SQLITE_FILES = 5_000
EMULATOR_FILES = 3_000

HEADER = "apiVersion: reconciler/v1\n"


def workspace_yaml(provider: str, *, parallelism: int = 1, limits: str = "") -> str:
    """A Workspace document; ``provider`` is the indented body of ``provider:``."""
    return (
        HEADER
        + "kind: Workspace\nprovider:\n"
        + provider
        + f"settings:\n  parallelism: {parallelism}\n"
        + limits
    )


def sqlite_workspace(path: str = "live.db", *, parallelism: int = 1, limits: str = "") -> str:
    return workspace_yaml(f"  type: sqlite\n  path: {path}\n", parallelism=parallelism, limits=limits)


def encord_workspace(url: str, *, parallelism: int = 1, limits: str = "") -> str:
    return workspace_yaml(f"  type: encord\n  domain: {url}\n", parallelism=parallelism, limits=limits)


def file_manifest(folder: str, glob: str, metadata: str, *, extra: str = "") -> str:
    """A FileMetadata document setting ``metadata`` (a YAML flow mapping) on every file matching ``glob``."""
    return (
        HEADER + f"kind: FileMetadata\nfolder: {folder}\n{extra}files:\n"
        f'  - glob: "{glob}"\n    metadata: {metadata}\n'
    )


def write_dir(root: Path, files: Mapping[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (root / rel).write_text(text)
    return root


def seed_sqlite(path: Path, snapshot: Snapshot) -> Path:
    """Create a SQLite live-state database holding ``snapshot``."""
    SqliteProvider(path).close()
    p = SqliteProvider(path)
    try:
        p.replace_state(snapshot)
    finally:
        p.close()
    return path


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCORD_", "NO_COLOR"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def start_cli(args: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
    """``python -m reconciler ARGS`` in a subprocess (its own process, so signals reach only it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_journal(journal_dir: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> Path | None:
    """The first journal file under ``journal_dir`` once it exists (``None`` if the process ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(journal_dir.glob("*.jsonl")) if journal_dir.is_dir() else []
        if found:
            return found[0]
        if proc.poll() is not None:
            return None
        time.sleep(0.002)
    raise TimeoutError(f"no journal appeared in {journal_dir} within {timeout}s")


def wait_for_a_written_batch(journal: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> bool:
    """Whether a result line (a batch written) reached ``journal`` before the process ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if '"record":"result"' in journal.read_text(encoding="utf-8"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    raise TimeoutError(f"no batch was journaled in {journal} within {timeout}s")


def interrupt(
    proc: subprocess.Popen[str], sig: signal.Signals, timeout: float = 60.0
) -> tuple[int, str, str]:
    """Send ``sig`` (if still running) and collect exit code, stdout and stderr."""
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@dataclass
class Case:
    """One manifest directory whose ``apply`` a test interrupts, and how to check it converges afterwards."""

    dir: Path
    env: dict[str, str]
    total: int
    kill_within: float = 0.3  # seconds after the journal appears (the apply's first batch)
    emu: Emulator | None = None

    @property
    def journal_dir(self) -> Path:
        return self.dir / ".reconciler" / "journal"

    def converge(self) -> str:
        """``apply`` again (in-process, no injected latency), then check that ``plan`` shows no changes."""
        from tests.helpers.cli import run

        if self.emu is not None:
            self.emu.set_faults()
        again = run(["-C", str(self.dir), "apply", "--auto-approve"], env=self.env)
        assert again.code == 0, again.err
        final = run(["-C", str(self.dir), "plan", "--detailed-exitcode"], env=self.env)
        assert (final.code, final.err) == (0, ""), final.out
        assert "No changes." in final.out
        return again.out


MANIFEST = file_manifest("cams", "*.jpg", "{capture.site: london, tag: t}")


def cams_snapshot(n: int) -> Snapshot:
    """``cams/c00000.jpg`` ... with ``{"n": i, "capture.site": "old"}``."""
    from tests.helpers.states import make_snapshot

    return make_snapshot({"cams": [(f"c{i:05d}.jpg", {"n": i, "capture.site": "old"}) for i in range(n)]})
