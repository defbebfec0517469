"""SIGKILL at seeded random points of ``python -m reconciler apply``, on SQLite and on the emulator.

After every kill the journal (if any) reads back, torn last line or not, and ``apply`` again converges to a plan
with no changes. Ten runs: six on 5,000 files in SQLite, four on 3,000 files through the emulator with 25 ms of
latency per request, so most kills land mid-apply.
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from reconciler.journal import EntryStatus, read_journal
from tests.helpers.workspace import interrupt, start_cli, wait_for_journal

pytestmark = pytest.mark.slow


def kill_runs(case_for, runs: int, seed: int) -> list[str]:
    """Kill ``apply`` at seeded random points; after each, the journal reads back and apply converges.

    Returns one outcome per run: ``finished`` (the kill came too late), ``before-apply`` (no journal yet) or
    ``mid-apply N/M`` (N of the M journaled files written, by the journal).
    """
    rng = random.Random(seed)
    outcomes = []
    for i in range(runs):
        case = case_for(f"run{i}")
        proc = start_cli(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env, cwd=case.dir)
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.05, 2.0))  # anywhere: start-up, plan or apply
        else:
            wait_for_journal(case.journal_dir, proc)
            time.sleep(rng.uniform(0.0, case.kill_within))
        code, _, _ = interrupt(proc, signal.SIGKILL)
        assert code in (0, -signal.SIGKILL)
        journals = sorted(case.journal_dir.glob("*.jsonl")) if case.journal_dir.is_dir() else []
        read_back = [read_journal(path) for path in journals]  # must parse, torn last line or not
        out = case.converge()
        assert "Apply complete: " in out or "No changes." in out
        if code == 0:
            outcomes.append("finished")
        elif not read_back:
            outcomes.append("before-apply")
        else:
            j = read_back[0]
            outcomes.append(
                f"mid-apply {j.count(EntryStatus.WRITTEN)}/{len(j.entries)}{' torn' if j.torn else ''}"
            )
    return outcomes


def test_sigkill_at_random_points_sqlite(sqlite_case):
    outcomes = kill_runs(sqlite_case, runs=6, seed=20240501)
    print(f"\nsqlite kills: {outcomes}")
    assert sum(o.startswith("mid-apply") for o in outcomes) >= 2  # timing-dependent; usually 6


def test_sigkill_at_random_points_emulator(emulator_case):
    outcomes = kill_runs(emulator_case, runs=4, seed=7)
    print(f"\nemulator kills: {outcomes}")
    assert sum(o.startswith("mid-apply") for o in outcomes) >= 2  # 25 ms per request: usually 3 of 4
