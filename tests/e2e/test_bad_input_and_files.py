"""Bad input and awkward outputs through the real command line: never exit 3, never a clobbered file.

JSON nested thousands of levels deep (in a source, a seed snapshot, a saved plan, a journal, a live value) is
one located line and exit 1; so are ``--out`` into a missing directory, a full standard output and ``--out``
at a device or FIFO (written in place, never replaced). Files are written through ``mkstemp`` beside the
target (a planted ``<out>.tmp`` link redirects nothing), ``fmt`` keeps links and modes, and symlinked
manifest directories are followed with a loop guard.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reconciler.snapshot import write_snapshot
from tests.helpers.cli import REPO, run
from tests.helpers.states import make_snapshot, uid
from tests.helpers.workspace import child_env, file_manifest, seed_sqlite, sqlite_workspace, write_dir

DEEP = "[" * 3000 + "]" * 3000
CAMS = file_manifest("cams", "*.jpg", "{tag: t}")


def _ws(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    snap = make_snapshot({"cams": [("a.jpg", {}), ("b.jpg", {})]}, {"tag": {"ty": "variant", "hint": "text"}})
    seed_sqlite(tmp_path / "live.db", snap)
    return write_dir(
        tmp_path / "m", {"workspace.yaml": sqlite_workspace("../live.db"), "cams.yaml": CAMS, **(files or {})}
    )


def _converges(ws: Path) -> None:
    r = run(["-C", str(ws), "apply", "--auto-approve"])
    assert r.code == 0, r.err
    final = run(["-C", str(ws), "plan", "--detailed-exitcode"])
    assert final.code == 0 and "No changes." in final.out, final.out + final.err


def _empty(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


def _too_deep_at(text: str) -> tuple[int, int]:
    """Line and column of the first bracket 501 levels deep (brackets in strings do not occur here)."""
    depth = 0
    for n, line in enumerate(text.splitlines(), 1):
        for col, ch in enumerate(line, 1):
            depth += ch in "[{"
            depth -= ch in "]}"
            if depth > 500:
                return n, col
    raise AssertionError("not nested 501 deep")


def _no_internal_error(r: object) -> None:
    assert "internal error" not in getattr(r, "err", "")


# --------------------------------------------------------------------------------------------- too deep JSON


def test_a_source_row_nested_too_deeply_is_one_located_line(tmp_path: Path):
    rows = (
        '{"name": "a.jpg", "metadata": {"tag": "x"}}\n{"name": "b.jpg", "metadata": {"tag": ' + DEEP + "}}\n"
    )
    manifest = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: cams\nsource: rows.jsonl\n"
    ws = _ws(tmp_path, {"cams.yaml": manifest, "rows.jsonl": rows})
    r = run(["-C", str(ws), "plan"], cwd=ws)
    assert r.code == 1
    assert r.err == (
        "Error: rows.jsonl:2: invalid JSON: nested more than 500 levels deep (column 537)\n"
        "1 problem found; nothing was written.\n"
    )
    (ws / "rows.jsonl").write_text(rows.splitlines()[0] + "\n")
    _converges(ws)


def test_a_seed_snapshot_nested_too_deeply_is_one_located_line(tmp_path: Path):
    snap = make_snapshot({"cams": [("a.jpg", {"tag": "DEEP"})]})
    seed = tmp_path / "m" / "seed.json"
    seed.parent.mkdir()
    write_snapshot(seed, snap.schema, snap.folders, snap.items)
    seed.write_text(seed.read_text().replace('"DEEP"', DEEP))
    workspace = sqlite_workspace("live.db").replace(
        "  path: live.db\n", "  path: live.db\n  seed: seed.json\n"
    )
    ws = write_dir(tmp_path / "m", {"workspace.yaml": workspace, "cams.yaml": CAMS})
    r = run(["-C", str(ws), "plan"], cwd=ws)
    assert r.code == 1, r.err
    line, column = _too_deep_at(seed.read_text())
    assert r.err == f"Error: {seed}:{line}:{column}: invalid JSON: nested more than 500 levels deep\n"
    _no_internal_error(r)


def test_a_saved_plan_or_journal_nested_too_deeply_is_one_located_line(tmp_path: Path):
    ws = _ws(tmp_path)
    planfile = tmp_path / "plan.json"
    assert run(["-C", str(ws), "plan", "--out", str(planfile)]).code == 0
    lines = planfile.read_text().splitlines()
    lines.insert(3, f' "deep": {DEEP},')
    planfile.write_text("\n".join(lines) + "\n")
    for args in (["apply", str(planfile), "--auto-approve"], ["show", str(planfile)]):
        r = run(["-C", str(ws), *args], cwd=ws)
        assert r.code == 1
        assert (
            r.err
            == f"Error: {planfile}:4:509: not a plan file: invalid JSON (nested more than 500 levels deep)\n"
        )
    r = run(["-C", str(ws), "apply", "--auto-approve"])
    assert r.code == 0, r.err
    (journal,) = (ws / ".reconciler" / "journal").glob("*.jsonl")
    lines = journal.read_text().splitlines()
    lines.insert(1, '{"record": "file", "uuid": "u", "before": ' + DEEP + "}")
    journal.write_text("\n".join(lines) + "\n")
    r = run(["-C", str(ws), "rollback", str(journal), "--auto-approve"])
    assert r.code == 1
    assert (
        r.err
        == f"Error: {journal}:2: corrupt journal line (invalid JSON: nested more than 500 levels deep)\n"
    )
    final = run(["-C", str(ws), "plan", "--detailed-exitcode"])
    assert final.code == 0 and "No changes." in final.out


def _set_live(tmp_path: Path, name: str, text: str) -> None:
    with sqlite3.connect(tmp_path / "live.db") as db:
        db.execute("UPDATE items SET metadata = ? WHERE uuid = ?", (text, uid(f"item:cams/{name}")))


def test_a_live_value_nested_too_deeply_is_reported_for_that_file_only(tmp_path: Path):
    ws = _ws(tmp_path)
    _set_live(tmp_path, "b.jpg", '{"junk": ' + DEEP + "}")
    r = run(["-C", str(ws), "plan"], cwd=ws)
    assert r.code == 1
    assert r.err == (
        f"Error: cams.yaml:1:1: cams/b.jpg (file {uid('item:cams/b.jpg')}): its live metadata is nested too "
        "deeply to compare; nothing is planned for it\n"
        "1 problem found; nothing was written.\n"
    )
    # snapshot and import read every value: they name the file and write nothing.
    for args in (["snapshot", "--out", str(tmp_path / "s.json")], ["import", "--out", str(tmp_path / "imp")]):
        r = run(["-C", str(ws), *args], cwd=ws)
        assert r.code == 1
        assert r.err == (
            f"Error: file {uid('item:cams/b.jpg')}: its stored metadata is not usable JSON "
            "(nested more than 500 levels deep: line 1 column 509 (char 508))\n"
        )
    assert not (tmp_path / "s.json").exists() and _empty(tmp_path / "imp")
    _set_live(tmp_path, "b.jpg", "{}")
    _converges(ws)


def test_a_live_value_too_deep_to_write_as_yaml_is_named_by_import(tmp_path: Path):
    ws = _ws(tmp_path)
    shallow_enough_for_json = "[" * 400 + "]" * 400
    _set_live(tmp_path, "b.jpg", '{"junk": ' + shallow_enough_for_json + "}")
    r = run(["-C", str(ws), "import", "--out", str(tmp_path / "imp")])
    assert r.code == 1
    assert r.err == (
        f"Error: cams/b.jpg (file {uid('item:cams/b.jpg')}): its live metadata is nested 401 levels deep, "
        "too deeply to write as a manifest; nothing was written\n"
    )
    assert _empty(tmp_path / "imp")
    _set_live(tmp_path, "b.jpg", "{}")
    _converges(ws)


# --------------------------------------------------------------------------------------------- outputs


def test_out_into_a_missing_directory_is_one_line_and_creates_nothing(tmp_path: Path):
    ws = _ws(tmp_path)
    for command, what in (("plan", "plan"), ("snapshot", "snapshot")):
        r = run(["-C", str(ws), command, "--out", str(tmp_path / "nodir" / "x.json")])
        assert r.code == 1
        assert r.err == (
            f"Error: {tmp_path}/nodir/x.json: cannot write the {what}: the directory {tmp_path}/nodir does not "
            "exist\n"
        )
    assert not (tmp_path / "nodir").exists()
    _converges(ws)


def test_a_full_standard_output_is_one_line_on_stderr(tmp_path: Path):
    ws = _ws(tmp_path)
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            [sys.executable, "-m", "reconciler", "-C", str(ws), "plan"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            timeout=120,
        )
    assert r.returncode == 1
    assert r.stderr == "Error: cannot write the output: No space left on device\n"
    _converges(ws)


def test_a_fifo_out_target_is_written_in_place(tmp_path: Path):
    ws = _ws(tmp_path)
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    r = run(["-C", str(ws), "plan", "--out", str(fifo), "--format", "json"])
    reader.join(timeout=60)
    assert r.code == 0, r.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO, not a regular file
    assert json.loads(got[0])["files"][0]["changes"][0]["after"] == "t"
    _converges(ws)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_out_target_is_never_replaced_by_a_regular_file(tmp_path: Path):
    # A private copy of /dev/full (character device 1:7): a regression cannot damage the real one.
    ws = _ws(tmp_path)
    full = tmp_path / "full"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    for command in ("plan", "snapshot"):
        r = run(["-C", str(ws), command, "--out", str(full)])
        assert r.code == 1
        assert r.err == f"Error: {full}: cannot write the {command}: No space left on device\n"
        assert stat.S_ISCHR(os.lstat(full).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "live.db", "m"]  # no temporary files left
    _converges(ws)


def test_a_planted_tmp_link_redirects_nothing(tmp_path: Path):
    ws = _ws(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "plan.json"
    for planted in (tmp_path / "plan.json.tmp", tmp_path / ".plan.json.tmp"):
        planted.symlink_to(victim)
    r = run(["-C", str(ws), "plan", "--out", str(out)])
    assert r.code == 0, r.err
    assert victim.read_text() == "precious\n"
    assert json.loads(out.read_text())["format_version"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".plan.json.tmp", "live.db", "m", "plan.json", "plan.json.tmp", "victim.txt",
    ]  # fmt: skip
    r = run(["-C", str(ws), "apply", str(out), "--auto-approve"])
    assert r.code == 0, r.err
    final = run(["-C", str(ws), "plan", "--detailed-exitcode"])
    assert final.code == 0 and "No changes." in final.out


def test_a_symlinked_out_is_followed_and_keeps_the_link(tmp_path: Path):
    ws = _ws(tmp_path)
    real = tmp_path / "real.json"
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    r = run(["-C", str(ws), "snapshot", "--out", str(link)])
    assert r.code == 0, r.err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text())["format_version"] == "1"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    _converges(ws)


# --------------------------------------------------------------------------------------------- fmt and links

MESSY = "apiVersion: reconciler/v1\nkind: FileMetadata\nfiles:\n- glob: '*.jpg'\n  metadata: {tag: t}\nfolder: cams\n"
CANONICAL = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: cams\nfiles:\n  - glob: '*.jpg'\n    metadata: {tag: t}\n"


def test_fmt_rewrites_a_symlinked_manifest_through_the_link_and_keeps_modes(tmp_path: Path):
    ws = _ws(tmp_path)
    (
        tmp_path / ".git"
    ).mkdir()  # the repository holding the manifest directory: links may lead anywhere in it
    (ws / "cams.yaml").unlink()
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "cams.yaml"
    target.write_text(MESSY)
    target.chmod(0o600)
    (ws / "cams.yaml").symlink_to(target)
    (ws / "workspace.yaml").chmod(0o640)
    r = run(["-C", str(ws), "fmt"], cwd=REPO)
    assert r.code == 0, r.err
    assert r.out == f"{ws}/cams.yaml\n"
    assert (ws / "cams.yaml").is_symlink() and os.readlink(ws / "cams.yaml") == str(target)
    assert target.read_text() == CANONICAL
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE((ws / "workspace.yaml").stat().st_mode) == 0o640
    assert sorted(p.name for p in shared.iterdir()) == ["cams.yaml"]
    assert run(["-C", str(ws), "fmt", "--check"]).code == 0
    _converges(ws)


def test_symlinked_manifest_directories_are_followed_once(tmp_path: Path):
    ws = _ws(tmp_path)
    (
        tmp_path / ".git"
    ).mkdir()  # the repository holding the manifest directory: links may lead anywhere in it
    (ws / "cams.yaml").unlink()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "cams.yaml").write_text(CANONICAL)
    (ws / "linked").symlink_to(shared, target_is_directory=True)
    (shared / "loop").symlink_to(shared, target_is_directory=True)  # a link back up: searched once
    r = run(["-C", str(ws), "validate"], cwd=ws)
    assert r.code == 0, r.err
    assert r.err == (
        f"Warning: linked/loop: symbolic link to a directory already searched ({shared}); skipped\n"
    )
    assert "1 FileMetadata" in r.out
    _converges(ws)


@pytest.mark.parametrize("command", ["apply", "rollback"])
def test_a_closed_standard_input_at_the_prompt_is_no_answer(tmp_path: Path, command: str):
    """``reconciler apply <&-``: no standard input at all is read as no answer: cancelled, nothing written."""
    ws = _ws(tmp_path)
    args = ["-C", str(ws), "apply"]
    if command == "rollback":
        assert run(["-C", str(ws), "apply", "--auto-approve"]).code == 0
        (journal,) = (ws / ".reconciler" / "journal").glob("*.jsonl")
        args = ["-C", str(ws), "rollback", str(journal)]
    r = subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.close(0),
    )
    noun = "Apply" if command == "apply" else "Rollback"
    assert (r.returncode, r.stderr) == (1, f"{noun} cancelled. Nothing was written.\n")
    if command == "apply":
        assert run(["-C", str(ws), "plan", "--detailed-exitcode"]).code == 2  # still to do: nothing written
    _converges(ws)


def test_a_live_value_of_nan_is_planned_kept_and_converges(tmp_path: Path):
    """Python's json.dumps writes NaN, so an SDK script can store it: such a live dict is planned (it used to be
    an internal error), the key no manifest owns is kept through the merge write, and the next plan is clean."""
    snap = make_snapshot(
        {"cams": [("a.jpg", {"zz.n": float("nan")}), ("b.jpg", {})]},
        {"tag": {"ty": "variant", "hint": "text"}},
    )
    seed_sqlite(tmp_path / "live.db", snap)
    ws = write_dir(tmp_path / "m", {"workspace.yaml": sqlite_workspace("../live.db"), "cams.yaml": CAMS})
    r = run(["-C", str(ws), "plan"])
    assert r.code == 0, r.err
    _converges(ws)
    db = sqlite3.connect(tmp_path / "live.db")
    try:
        (text,) = db.execute("SELECT metadata FROM items WHERE name = 'a.jpg'").fetchone()
    finally:
        db.close()
    kept = json.loads(text)
    assert kept["zz.n"] != kept["zz.n"] and set(kept) == {"zz.n", "tag"}


def test_a_broken_pipe_or_a_closed_standard_output_is_one_line_on_stderr(tmp_path: Path):
    ws = _ws(tmp_path)
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line
    try:
        r = subprocess.run(
            [sys.executable, "-m", "reconciler", "-C", str(ws), "plan"],
            env=child_env(),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert (r.returncode, r.stderr) == (
        1,
        "Error: cannot write the output: the reader of standard output has gone (broken pipe)\n",
    )
    r = subprocess.run(
        [sys.executable, "-m", "reconciler", "-C", str(ws), "apply", "--auto-approve"],
        env=child_env(),
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.close(1),
    )
    assert (r.returncode, r.stderr) == (
        1,
        "Error: cannot write the output: standard output is closed; nothing was done\n",
    )
    assert run(["-C", str(ws), "plan", "--detailed-exitcode"]).code == 2  # nothing was written
    _converges(ws)


def test_snapshot_without_out_writes_snapshot_json_in_the_current_directory(tmp_path: Path):
    ws = _ws(tmp_path)
    here = tmp_path / "here"
    here.mkdir()
    r = run(["-C", str(ws), "snapshot"], cwd=here)
    assert (r.code, r.out, r.err) == (0, "Wrote 1 folder(s) and 2 file(s) to snapshot.json.\n", "")
    assert json.loads((here / "snapshot.json").read_text())["format_version"] == "1"
