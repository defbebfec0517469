"""Progress on a terminal: every long phase is shown on stderr, and nothing extra is printed without one.

The CLI runs as a subprocess with stderr on a pseudo-terminal (stdout a pipe, as when a plan is redirected to
a file); what the terminal was sent is read back and each redraw of the progress line parsed. The phase
labels come from ``reconciler.progress`` (the one owner of the phase vocabulary).
"""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from reconciler import progress
from reconciler.snapshot import write_snapshot
from reconciler.testing.emulator import Emulator
from tests.helpers.cli import run
from tests.helpers.states import make_snapshot
from tests.helpers.tty import TtyResult, run_on_tty
from tests.helpers.workspace import child_env, encord_workspace, file_manifest, write_dir

HEADER = "apiVersion: reconciler/v1\n"
SCHEMA = (
    HEADER
    + "kind: MetadataSchema\nkeys:\n  site: varchar\n  weather.now: {type: varchar, renamed_from: weather}\n"
)
CAMS = file_manifest("cams", "*.jpg", "{site: london}")
TOKEN = "progress-token"

#: One redraw of the progress line: label, bar, done/total, elapsed.
FRAME = re.compile(r"^(?P<label>.+?) [━╸╺ ]+ (?P<count>\d+/(?:\d+|\?)) (?P<elapsed>\d+:\d\d:\d\d)$")


def frames(r: TtyResult) -> list[tuple[str, str, str]]:
    """``(label, done/total, elapsed)`` of every redraw of the progress line, in order."""
    return [(m["label"], m["count"], m["elapsed"]) for m in map(FRAME.match, r.lines) if m]


def labels(r: TtyResult) -> list[str]:
    """The phase labels drawn, each once, in order."""
    return list(dict.fromkeys(label for label, _, _ in frames(r)))


def sqlite_workspace(root: Path) -> Path:
    """A Workspace whose SQLite database does not exist yet (seeded from seed.json on first use), a schema
    with a rename (the scan of every folder), and a manifest on ``cams``."""
    snap = make_snapshot(
        {
            "cams": [("a.jpg", {"weather": "sunny"}), ("b.jpg", {"weather": "rain"}), ("c.jpg", {})],
            "other": [("d.jpg", {"weather": "fog"})],
        },
        schema={"weather": {"ty": "variant", "hint": "varchar"}},
    )
    ws = root / "ws"
    write_dir(
        ws,
        {
            "workspace.yaml": HEADER
            + "kind: Workspace\nprovider:\n  type: sqlite\n  path: live.db\n  seed: seed.json\n",
            "schema.yaml": SCHEMA,
            "cams.yaml": CAMS,
        },
    )
    write_snapshot(ws / "seed.json", snap.schema, snap.folders, snap.items)
    return ws


def no_tty(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m reconciler ARGS`` with stdout and stderr pipes (no terminal anywhere)."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_long_phase_is_shown_on_a_terminal(tmp_path: Path) -> None:
    on_tty, piped = tmp_path / "tty", tmp_path / "piped"
    ws = sqlite_workspace(on_tty)
    sqlite_workspace(piped)
    assert not (ws / "live.db").exists()

    plan = run_on_tty(["-C", "ws", "plan", "--out", "p.json"], env=child_env(), cwd=on_tty)
    assert plan.code == 0, plan.tty
    assert labels(plan) == [
        progress.seeding(ws / "live.db", ws / "seed.json"),
        progress.RESOLVING_FOLDERS,
        progress.reading("cams"),
        progress.planning("cams.yaml"),
        progress.RENAMES,
    ]
    assert labels(plan)[0] == "seeding live.db from seed.json"
    # stdout is the same as without a terminal, and the warning lines are the same.
    quiet = no_tty(["-C", "ws", "plan", "--out", "p.json"], cwd=piped)
    assert quiet.returncode == 0, quiet.stderr
    assert plan.out == quiet.stdout
    assert "Plan: schema 1 to add, 1 to change, 0 to delete; files 4 to update (4 merge" in plan.out
    warnings = quiet.stderr.splitlines()
    assert (
        len(warnings) == 1 and warnings[0].startswith("Warning: ") and "renamed_from 'weather'" in warnings[0]
    )
    assert warnings[0] in plan.lines

    applied = run_on_tty(["-C", "ws", "apply", "p.json"], env=child_env(), cwd=on_tty)
    assert applied.code == 0, applied.tty
    assert labels(applied) == [progress.PRECHECK, progress.APPLYING]
    quiet_apply = no_tty(["-C", "ws", "apply", "p.json"], cwd=piped)
    assert (quiet_apply.returncode, quiet_apply.stderr) == (0, "")
    journal = re.compile(r"^Journal: .*$", re.M)  # the journal's name has the time in it
    assert journal.sub("Journal: J", applied.out) == journal.sub("Journal: J", quiet_apply.stdout)
    assert "Apply complete: schema written; 4 file(s) written." in applied.out

    for d in (on_tty, piped):
        again = run(["-C", "ws", "plan", "--detailed-exitcode"], cwd=d)
        assert again.code == 0, again.out
        assert "No changes." in again.out


#: A colour in an SGR sequence: 30-37/90-97 and 40-47/100-107, or a 256-colour or true-colour one.
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_color_reaches_the_progress_line(tmp_path: Path, how: str) -> None:
    sqlite_workspace(tmp_path / "coloured")
    coloured = run_on_tty(["-C", "ws", "plan"], env=child_env(), cwd=tmp_path / "coloured")
    assert coloured.code == 0, coloured.tty
    assert COLOUR.search(coloured.tty)  # the bar is drawn in colour by default
    sqlite_workspace(tmp_path / "plain")
    flag = ["--no-color"] if how == "flag" else []
    env = child_env() if how == "flag" else {**child_env(), "NO_COLOR": "1"}
    plain = run_on_tty(["-C", "ws", "plan", *flag], env=env, cwd=tmp_path / "plain")
    assert plain.code == 0, plain.tty
    assert labels(plain) == labels(coloured)
    assert not COLOUR.search(plain.tty), plain.tty
    assert plain.out == coloured.out
    applied = run_on_tty(["-C", "ws", "apply", "--auto-approve", *flag], env=env, cwd=tmp_path / "plain")
    assert applied.code == 0, applied.tty
    assert progress.APPLYING in labels(applied)
    assert not COLOUR.search(applied.tty), applied.tty
    again = run(["-C", "ws", "plan", "--detailed-exitcode"], cwd=tmp_path / "plain")
    assert (again.code, "No changes." in again.out) == (0, True), again.out


def test_without_a_terminal_nothing_extra_is_printed(tmp_path: Path) -> None:
    sqlite_workspace(tmp_path)
    plan = run(["-C", "ws", "plan", "--out", "p.json"], cwd=tmp_path)
    assert plan.code == 0, plan.err
    lines = plan.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Warning: ") and "renamed_from 'weather'" in lines[0]
    applied = run(["-C", "ws", "apply", "p.json"], cwd=tmp_path)
    assert (applied.code, applied.err) == (0, "")
    assert "━" not in plan.out + applied.out and "\x1b" not in plan.err + applied.err
    again = run(["-C", "ws", "plan", "--detailed-exitcode"], cwd=tmp_path)
    assert again.code == 0, again.out


def test_the_elapsed_column_ticks_during_a_slow_request(tmp_path: Path) -> None:
    snap = make_snapshot({"cams": [(f"c{i}.jpg", {}) for i in range(3)]})
    emu = Emulator(snap, tokens=[TOKEN]).start()
    try:
        ws = write_dir(tmp_path / "ws", {"workspace.yaml": encord_workspace(emu.url), "cams.yaml": CAMS})
        env = child_env({"ENCORD_API_TOKEN": TOKEN})
        r = httpx.put(emu.url + "/_emulator/faults", json={"latency_ms": 1600})
        assert r.status_code == 200, r.text
        plan = run_on_tty(["-C", str(ws), "plan"], env=env, cwd=tmp_path)
        httpx.put(emu.url + "/_emulator/faults", json={})
        assert plan.code == 0, plan.tty
        assert labels(plan) == [
            progress.RESOLVING_FOLDERS,
            progress.reading("cams"),
            progress.planning("cams.yaml"),
        ]
        # Each phase counts its own time from 0:00:00; while the listing request is awaited the count stays
        # at 0/? and the elapsed column still advances (after an earlier phase has finished).
        shown = frames(plan)
        assert next(e for lb, _, e in shown if lb == progress.RESOLVING_FOLDERS) == "0:00:00"
        reading = [(c, e) for lb, c, e in shown if lb == progress.reading("cams")]
        assert reading[0] == ("0/?", "0:00:00")
        assert {e for c, e in reading if c == "0/?"} >= {"0:00:00", "0:00:01"}
        assert "Plan: schema 0 to add, 0 to change, 0 to delete; files 3 to update" in plan.out
        apply = run(["-C", str(ws), "apply", "--auto-approve"], env=env)
        assert apply.code == 0, apply.err
        again = run(["-C", str(ws), "plan", "--detailed-exitcode"], env=env)
        assert again.code == 0, again.out
    finally:
        emu.stop()


def _threads() -> set[str]:
    return {type(t).__name__ for t in threading.enumerate()}


def test_the_progress_line_redraws_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.cli import _ProgressHooks

    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)  # not a terminal: nothing drawn, no thread
    with _ProgressHooks() as hooks:
        hooks.on_progress(progress.RESOLVING_FOLDERS, 0, 1)
        assert "_RefreshThread" not in _threads()
    assert captured.getvalue() == ""

    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        with _ProgressHooks() as hooks:
            hooks.on_progress(progress.RESOLVING_FOLDERS, 0, 1)
            assert "_RefreshThread" in _threads()  # redraws the line (and its elapsed column) on its own
        deadline = time.monotonic() + 5  # the refresh thread ends within one redraw of the stop
        while "_RefreshThread" in _threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "_RefreshThread" not in _threads()
    os.close(master)
