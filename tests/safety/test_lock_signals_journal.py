"""The store lock, SIGTERM, and a journal that cannot be written, with real ``python -m reconciler`` processes.

SQLite (5,000 files) and the Encord emulator (3,000 files, 25 ms per request), as in test_interrupts.py.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from reconciler.journal import read_journal
from tests.helpers.cli import run
from tests.helpers.workspace import EMULATOR_FILES, SQLITE_FILES, interrupt, start_cli, wait_for_journal

WRITTEN = re.compile(r"Apply (?:interrupted|finished with errors): ([\d,]+) file\(s\) written")


def wait_for_first_result(journal: Path, proc: subprocess.Popen[str]) -> None:
    """Until the first batch's answer is journaled (so the next journal write is a later batch's)."""
    deadline = time.monotonic() + 60
    while '"record":"result"' not in journal.read_text() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def written(out: str) -> int:
    m = WRITTEN.search(out)
    assert m, out
    return int(m.group(1).replace(",", ""))


# --------------------------------------------------------------------------------------------- lock
def test_a_second_apply_is_refused_naming_the_holder_then_waits_with_lock_timeout(
    tmp_path, emulator, emulator_case
):
    case = emulator_case("ws")
    emulator.set_faults(latency_ms=300)  # the first apply holds the lock for a few seconds
    first = start_cli(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env, cwd=tmp_path)
    assert wait_for_journal(case.journal_dir, first) is not None
    r = run(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env)
    lock_file = next(case.journal_dir.parent.glob("journal.encord-127.0.0.1_*.lock"))
    holder = json.loads(lock_file.read_text())
    assert (holder["host"], holder["pid"], holder["command"]) == (socket.gethostname(), first.pid, "apply")
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"Error: encord:{case.emu.url} is locked by another run: apply by pid {first.pid} on host "
        f"{socket.gethostname()} since {holder['since']} (lock file {lock_file}). Nothing was written. Wait for "
        "it to end, or pass --lock-timeout (e.g. 5m) to wait.\n"
    )
    rb = run(["-C", str(case.dir), "rollback", str(next(case.journal_dir.glob("*.jsonl"))), "--auto-approve"],
             env=case.env)  # fmt: skip
    assert rb.code == 1 and "is locked by another run: apply by pid" in rb.err
    second = start_cli(
        ["-C", str(case.dir), "apply", "--auto-approve", "--lock-timeout", "2m"], env=case.env, cwd=tmp_path
    )
    code, _out, err = interrupt(first, signal.SIGCONT)  # just wait for it
    assert code == 0, err
    _o2, e2 = second.communicate(timeout=120)
    assert second.returncode == 0, e2
    assert "Waiting up to 120s for the lock of encord:" in e2
    assert lock_file.read_text() == ""  # released: no holder recorded
    case.converge()


def test_a_lock_left_by_a_killed_apply_is_taken_over(tmp_path, sqlite_case):
    case = sqlite_case("ws")
    proc = start_cli(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env, cwd=tmp_path)
    assert wait_for_journal(case.journal_dir, proc) is not None
    code, _, _ = interrupt(proc, signal.SIGKILL)
    assert code == -signal.SIGKILL
    r = run(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env)
    assert r.code == 0, r.err
    assert re.search(
        rf"Warning: took over the lock of sqlite:\S+live.db left by apply by pid {proc.pid} on host "
        rf"{re.escape(socket.gethostname())} since \S+, which no longer holds it.\n",
        r.err,
    ), r.err
    case.converge()


def test_lock_timeout_takes_durations():
    for bad in ("soon", "-5", "5x"):
        r = run(["apply", "--lock-timeout", bad])
        assert r.code == 1
        assert "Invalid value for '--lock-timeout'" in r.err and "is not a duration" in r.err


# --------------------------------------------------------------------------------------------- signals
def test_sigterm_finishes_the_batch_in_flight_and_exits_143(tmp_path, sqlite_case):
    case = sqlite_case("ws")
    proc = start_cli(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env, cwd=tmp_path)
    journal = wait_for_journal(case.journal_dir, proc)
    assert journal is not None
    code, out, err = interrupt(proc, signal.SIGTERM)
    assert code == 143, (out, err)
    n = written(out)
    assert 0 < n < SQLITE_FILES and n % 1000 == 0
    assert f"Journal: {journal}" in out
    assert "Terminated (SIGTERM): stopping after the batch in flight (Ctrl-C again to stop at once)..." in err
    assert f"`reconciler rollback {journal}` to undo what was written." in err
    assert len(read_journal(journal).entries) == n
    case.converge()


def test_sigterm_on_the_emulator_and_a_second_signal_stops_at_once(tmp_path, emulator_case):
    case = emulator_case("ws")
    proc = start_cli(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env, cwd=tmp_path)
    journal = wait_for_journal(case.journal_dir, proc)
    assert journal is not None
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    code, out, err = interrupt(proc, signal.SIGTERM)
    assert code == 143, (out, err)
    assert "Apply complete" not in out
    assert f"Stopped at once: the batch in flight may or may not have landed. Journal: {journal}" in err
    j = read_journal(journal)  # intact: reads back (a torn last line at most)
    assert 0 < len(j.entries) < EMULATOR_FILES
    case.converge()


def test_a_second_signal_does_not_wait_for_a_hung_batch(tmp_path, emulator, emulator_case):
    """Batches in flight on a server that stopped answering: the second signal ends the process at once, not
    when their answers come (here 20 s later, on a silent server up to the request deadline)."""
    case = emulator_case("ws")
    proc = start_cli(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env, cwd=tmp_path)
    journal = wait_for_journal(case.journal_dir, proc)
    assert journal is not None
    emulator.set_faults(latency_ms=20_000)  # every request from now on hangs for 20 s
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)  # (the batches now in flight are hung)
    second = time.monotonic()
    code, out, err = interrupt(proc, signal.SIGTERM)
    assert time.monotonic() - second < 5, err
    assert code == 143, (out, err)
    assert f"Stopped at once: the batch in flight may or may not have landed. Journal: {journal}" in err
    emulator.set_faults()
    read_journal(journal)  # intact: reads back (a torn last line at most)
    case.converge()


def test_sigterm_while_planning_exits_143_without_writing(tmp_path, emulator, emulator_case):
    case = emulator_case("ws")
    emulator.set_faults(latency_ms=400)
    proc = start_cli(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env, cwd=tmp_path)
    time.sleep(1.5)
    code, out, err = interrupt(proc, signal.SIGTERM)
    assert (code, out, err) == (143, "", "\nTerminated.\n")
    assert not list(case.journal_dir.glob("*.jsonl")) if case.journal_dir.exists() else True
    case.converge()


# --------------------------------------------------------------------------------------------- journal
def test_a_journal_directory_that_cannot_be_written_stops_the_apply_before_any_write(tmp_path, sqlite_case):
    case = sqlite_case("ws")
    (case.dir / "blocker").write_text("a file, not a directory")
    ws = case.dir / "workspace.yaml"
    ws.write_text(ws.read_text() + "  journal_dir: blocker/journal\n")
    before = (case.dir / "live.db").read_bytes()
    r = run(["-C", str(case.dir), "apply", "--auto-approve"], env=case.env)
    assert r.code == 1
    assert r.err == (
        f"Error: {case.dir / 'blocker' / 'journal'}: cannot create the journal directory: Not a directory; "
        "nothing was written\n"
    )
    assert (case.dir / "live.db").read_bytes() == before


def test_a_full_disk_after_a_batch_landed_still_reports_what_was_written(tmp_path, emulator_case):
    """RLIMIT_FSIZE makes the kernel refuse the journal's growth past 400 kB (EFBIG, the same failed write as
    ENOSPC): the first batch is journaled, a later one is not."""
    case = emulator_case("ws")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "-C", str(case.dir), "apply", "--auto-approve"],
        cwd=tmp_path, env=case.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=limit,
    )  # fmt: skip
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    n = written(out)
    journal = next(case.journal_dir.glob("*.jsonl"))
    assert 0 < n < EMULATOR_FILES
    assert f"Journal: {journal}" in out
    assert "Error: the journal could not be written (" in err and "File too large" in err
    assert f"{n:,} file(s) written before that; they are recorded in {journal}. Undo them with " in err
    assert f"`reconciler rollback {journal}`" in err
    live = {i.name: i.metadata for i in case.emu.snapshot().items}
    landed = sum(1 for md in live.values() if md.get("tag") == "t")
    assert landed == n  # no batch was sent after the journal failed
    j = read_journal(journal)
    assert {e.uuid for e in j.entries} >= {i.uuid for i in case.emu.snapshot().items if i.metadata.get("tag")}
    case.converge()


def test_a_journal_deleted_mid_apply_is_detected_before_the_next_batch(tmp_path, emulator, emulator_case):
    case = emulator_case("ws")
    emulator.set_faults(latency_ms=300)
    # One batch at a time, so there is a next batch to refuse.
    proc = start_cli(
        ["-C", str(case.dir), "apply", "--auto-approve", "--parallelism", "1"], env=case.env, cwd=tmp_path
    )
    journal = wait_for_journal(case.journal_dir, proc)
    assert journal is not None
    wait_for_first_result(journal, proc)
    os.unlink(journal)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert f"({journal}: the journal was deleted during the apply); no further batch was sent." in err
    n = written(out)
    assert 0 < n < EMULATOR_FILES
    live = {i.name: i.metadata for i in case.emu.snapshot().items}
    assert sum(1 for md in live.values() if md.get("tag") == "t") == n
    case.converge()


def test_a_journal_replaced_mid_apply_is_detected(tmp_path, emulator, emulator_case):
    case = emulator_case("ws")
    emulator.set_faults(latency_ms=300)
    # One batch at a time, so there is a next batch to refuse.
    proc = start_cli(
        ["-C", str(case.dir), "apply", "--auto-approve", "--parallelism", "1"], env=case.env, cwd=tmp_path
    )
    journal = wait_for_journal(case.journal_dir, proc)
    assert journal is not None
    wait_for_first_result(journal, proc)
    fake = journal.with_name("fake")
    fake.write_text(journal.read_text())
    os.replace(fake, journal)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert f"({journal}: the journal was replaced by another file during the apply)" in err
    case.converge()
