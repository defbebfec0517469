"""Interrupted applies: Ctrl-C.

Ctrl-C (SIGINT) delivered to ``python -m reconciler apply`` stops after the batch in flight, reports what was
written and exits 130; ``apply`` again converges and ``plan`` is empty; ``rollback`` of the partial apply's journal
restores it. On 5,000 files in SQLite and 3,000 through the Encord emulator with latency. SIGKILL: test_kills.py.
"""

from __future__ import annotations

import re
import signal
import time

from reconciler.journal import EntryStatus, read_journal
from tests.helpers.cli import run
from tests.helpers.workspace import (
    EMULATOR_FILES,
    SQLITE_FILES,
    TOKEN,
    interrupt,
    start_cli,
    wait_for_a_written_batch,
    wait_for_journal,
)

WRITTEN = re.compile(r"Apply interrupted: ([\d,]+) file\(s\) written, ([\d,]+) not-attempted\.")


def test_ctrl_c_stops_after_the_batch_in_flight_and_exits_130(tmp_path, sqlite_case):
    case = sqlite_case("ws")
    proc = start_cli(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env, cwd=tmp_path)
    journal = wait_for_journal(case.journal_dir, proc)
    assert journal is not None
    assert wait_for_a_written_batch(journal, proc)  # the signal lands after the first batch, before the last
    code, out, err = interrupt(proc, signal.SIGINT)
    assert code == 130, (out, err)
    m = WRITTEN.search(out)
    assert m, out
    written, skipped = (int(g.replace(",", "")) for g in m.groups())
    assert written + skipped == SQLITE_FILES and written % 1000 == 0 and 0 < written < SQLITE_FILES
    assert f"Journal: {journal}" in out
    assert "Interrupted: stopping after the batch in flight (Ctrl-C again to stop at once)..." in err
    assert (
        "Interrupted: stopped after the batches in flight. Run `reconciler apply` again to finish, or "
        f"`reconciler rollback {journal}` to undo what was written." in err
    )
    j = read_journal(journal)
    assert not j.torn and len(j.entries) == written and j.count(EntryStatus.WRITTEN) == written
    assert "Apply complete: " in case.converge()


def test_ctrl_c_during_the_plan_exits_130_without_writing(tmp_path, emulator, emulator_case):
    case = emulator_case("ws")
    emulator.set_faults(latency_ms=400)  # reads are slow: the signal lands while planning
    proc = start_cli(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env, cwd=tmp_path)
    time.sleep(1.5)
    code, out, err = interrupt(proc, signal.SIGINT)
    assert (code, out, err) == (130, "", "\nAborted.\n")
    assert not case.journal_dir.exists()
    emulator.set_faults()
    case.converge()


def test_ctrl_c_on_the_emulator_then_rollback_of_the_partial_apply(tmp_path, emulator, emulator_case):
    case = emulator_case("ws")
    proc = start_cli(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env, cwd=tmp_path)
    journal = wait_for_journal(case.journal_dir, proc)
    assert journal is not None
    code, out, err = interrupt(proc, signal.SIGINT)
    assert code == 130, (out, err)
    written = int(WRITTEN.search(out).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert 0 < written < EMULATOR_FILES
    text = journal.read_text()
    assert TOKEN not in text and "Bearer" not in text  # metadata only, never credentials
    emulator.set_faults()
    rb = run(
        ["-C", str(case.dir), "rollback", str(journal), "--auto-approve", "--allow-destructive"], env=case.env
    )
    assert rb.code == 0, rb.err
    assert f"Rollback of {journal}: {written:,} to restore, 0 already as before, 0 conflict(s)." in rb.out
    assert f"Apply complete: {written:,} file(s) written." in rb.out
    live = {i.name: i.metadata for i in emulator.snapshot().items}
    assert all(md == {"n": md["n"], "capture.site": "old"} for md in live.values())
    case.converge()
