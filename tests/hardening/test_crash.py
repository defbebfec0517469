"""Crash safety: ``reconciler apply`` killed with SIGKILL at seeded random points, then run again.

Each run copies a prepared manifest directory (2,000 files, 1,334 to change, two write batches), starts
``python -m reconciler apply --auto-approve`` in a child process and kills it (SIGKILL: no cleanup, no
``finally``) at a point chosen by the run's seed: during start-up and planning, or right after the apply's
n-th journal write (header, a batch's before-images, a batch's results) plus a random few milliseconds, so
kills land while a batch is in flight. Then:

* every journal left behind reads back (``read_journal``; a torn last line is tolerated);
* some runs first ``rollback`` the killed apply's journal, which must restore the original state exactly;
* another ``apply`` converges: every file exactly as desired, no foreign key lost.

Runs go to SQLite (a batch is one transaction) and to the emulator with latency (a killed client may leave
a write in flight at the server).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.errors import JournalError
from reconciler.journal import EntryStatus, read_journal
from reconciler.providers.sqlite import SqliteProvider
from reconciler.snapshot import Snapshot
from reconciler.testing.emulator import Emulator
from tests.hardening.conftest import TOKEN
from tests.hardening.data import Scenario
from tests.hardening.figures import record
from tests.helpers.cli import run

SCENARIO = Scenario(2000, n_folders=4, seed=5)
SQLITE_RUNS = 14
EMULATOR_RUNS = 6
#: Kill points: "plan" (a random moment before the apply starts writing) or the n-th journal write.
STAGES: tuple[str | int, ...] = ("plan", 1, 2, 2, 3, 4)


@dataclass
class Kill:
    stage: str | int
    at_s: float  # seconds after start
    exited_first: bool  # the apply finished before the kill landed


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest directory on SQLite whose database is already seeded (copied for every run)."""
    root = tmp_path_factory.mktemp("crash") / "m"
    SCENARIO.write_manifests(root, {"type": "sqlite", "path": ".reconciler/live.db"})
    seed = SCENARIO.write_seed(root.parent / "seed.json")
    (root / ".reconciler").mkdir()
    SqliteProvider(root / ".reconciler" / "live.db", seed=seed).close()
    return root


def _journal_writes(journal_dir: Path) -> int:
    """How many writes the apply's journal has seen (each write ends with a newline and an fsync)."""
    files = list(journal_dir.glob("*.jsonl")) if journal_dir.is_dir() else []
    if not files:
        return 0
    data = files[0].read_bytes()
    # Header, then per batch: its file lines (one write), then its result lines (one write).
    lines = data.count(b"\n")
    if lines == 0:
        return 0
    return 1 + _batch_writes(data)


def _batch_writes(data: bytes) -> int:
    writes = 0
    previous = None
    for line in data.split(b"\n")[1:]:
        kind = (
            b"file" if b'"record": "file"' in line else b"result" if b'"record": "result"' in line else None
        )
        if kind is not None and kind != previous:
            writes += 1
            previous = kind
    return writes


def _apply_and_kill(root: Path, seed: int, env: dict[str, str]) -> Kill:
    rng = random.Random(seed)
    stage = STAGES[seed % len(STAGES)]
    jitter = rng.uniform(0.0, 0.04)
    cmd = [sys.executable, "-m", "reconciler", "apply", "--auto-approve", "-C", str(root)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=root)
    journal_dir = root / ".reconciler" / "journal"
    try:
        if stage == "plan":
            deadline = start + rng.uniform(0.3, 1.5)
            while time.monotonic() < deadline and proc.poll() is None and _journal_writes(journal_dir) == 0:
                time.sleep(0.002)
        else:
            assert isinstance(stage, int)
            while proc.poll() is None and _journal_writes(journal_dir) < stage:
                time.sleep(0.001)
            time.sleep(jitter)
        exited_first = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    return Kill(stage, round(time.monotonic() - start, 3), exited_first)


def _check_journals(root: Path) -> dict[str, int]:
    """Every journal reads back; returns counts of its entries by status (and torn/empty journals)."""
    counts = {"journals": 0, "torn": 0, "empty": 0, "pending": 0, "written": 0, "failed": 0}
    journal_dir = root / ".reconciler" / "journal"
    for path in sorted(journal_dir.glob("*.jsonl")) if journal_dir.is_dir() else []:
        counts["journals"] += 1
        try:
            j = read_journal(path)
        except JournalError as exc:
            # Killed between creating the file and writing its header: nothing was sent yet.
            assert "not a usable journal" in str(exc) and path.stat().st_size < 1024, str(exc)
            counts["empty"] += 1
            continue
        counts["torn"] += int(j.torn)
        for status in (EntryStatus.PENDING, EntryStatus.WRITTEN, EntryStatus.FAILED):
            counts[status.value] += j.count(status)
    return counts


def _state(root: Path) -> Snapshot:
    p = SqliteProvider(root / ".reconciler" / "live.db")
    try:
        uuids = [it.uuid for it in SCENARIO.snapshot().items]
        items = p.get_items(uuids)
        return Snapshot(items=list(items.values()))
    finally:
        p.close()


def _rollback_then_check_original(root: Path, env: dict[str, str], state_of: object) -> int:
    """Roll back the killed apply's journal; the state must be exactly the original one again."""
    journals = sorted((root / ".reconciler" / "journal").glob("*.jsonl"))
    if not journals:
        return 0
    try:
        read_journal(journals[0])
    except JournalError:
        return 0
    r = run(["rollback", str(journals[0]), "--auto-approve", "--allow-destructive", "-C", str(root)], env=env)
    assert r.code == 0, r.out + r.err
    state = state_of()  # type: ignore[operator]
    original = {it.uuid: it.metadata for it in SCENARIO.snapshot().items}
    assert {it.uuid: it.metadata for it in state.items} == original
    return 1


def _converge(root: Path, env: dict[str, str], state: Snapshot) -> None:
    assert SCENARIO.wrong_files(state) == []
    assert SCENARIO.lost_foreign_keys(state) == 0


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENCORD_", "HARDENING_"))}
    env.update(extra)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SQLITE_RUNS))
def test_sqlite_apply_killed_at_random_points_converges_on_rerun(
    seed: int, pristine: Path, tmp_path: Path
) -> None:
    root = tmp_path / "m"
    shutil.copytree(pristine, root)
    env = _env()
    kill = _apply_and_kill(root, seed, env)
    counts = _check_journals(root)
    rolled_back = _rollback_then_check_original(root, env, lambda: _state(root)) if seed % 5 == 4 else 0
    r = run(["apply", "--auto-approve", "-C", str(root)], env=env)
    assert r.code == 0, r.out + r.err
    _converge(root, env, _state(root))
    if seed % 4 == 0:
        r = run(["plan", "--detailed-exitcode", "-C", str(root)], env=env)
        assert r.code == 0, r.out + r.err
    record(
        f"crash-sqlite-{seed:02d}",
        {"stage": str(kill.stage), "killed_at_s": kill.at_s, "exited_before_kill": kill.exited_first,
         "rolled_back": rolled_back, "converged": True, **counts},
    )  # fmt: skip


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(SCENARIO.snapshot(), tokens=[TOKEN], latency_ms=5) as emu:
        yield emu


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 100 + EMULATOR_RUNS))
def test_encord_apply_killed_at_random_points_converges_on_rerun(
    seed: int, emulator: Emulator, tmp_path: Path
) -> None:
    root = SCENARIO.write_manifests(tmp_path / "m", {"type": "encord", "domain": emulator.url})
    env = _env(ENCORD_API_TOKEN=TOKEN)
    kill = _apply_and_kill(root, seed, env)
    counts = _check_journals(root)
    rolled_back = _rollback_then_check_original(root, env, emulator.snapshot) if seed % 3 == 2 else 0
    r = run(["apply", "--auto-approve", "-C", str(root)], env=env)
    assert r.code == 0, r.out + r.err
    _converge(root, env, emulator.snapshot())
    record(
        f"crash-encord-{seed:03d}",
        {"stage": str(kill.stage), "killed_at_s": kill.at_s, "exited_before_kill": kill.exited_first,
         "rolled_back": rolled_back, "converged": True, **counts},
    )  # fmt: skip
