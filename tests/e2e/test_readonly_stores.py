"""Read-only commands create nothing: ``plan``, ``snapshot``, ``import``, ``show`` and ``apply PLANFILE`` never
make a database or a directory at a typo'd or vanished path. A failed seed leaves no database behind, and
``import`` as the first command on a fresh demo seeds the store like ``plan`` does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.providers.sqlite import SqliteProvider
from reconciler.snapshot import write_snapshot
from tests.helpers.cli import copy_demo, run
from tests.helpers.states import make_snapshot
from tests.helpers.workspace import file_manifest, seed_sqlite, sqlite_workspace, write_dir

CAMS = file_manifest("cams", "*.jpg", "{tag: t}")


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.fixture
def typo_ws(tmp_path: Path) -> Path:
    """A Workspace whose database path does not exist (a typo), with no seed."""
    return write_dir(tmp_path / "ws", {"workspace.yaml": sqlite_workspace("data/liev.db"), "cams.yaml": CAMS})


def test_read_only_commands_create_no_database_at_a_typod_path(typo_ws: Path, tmp_path: Path):
    before = files_under(tmp_path)
    db = typo_ws / "data" / "liev.db"
    expected = f"Error: no SQLite database at {db}\n"
    for args in (
        ["plan"],
        ["snapshot", "--out", str(tmp_path / "s.json")],
        ["import", "--out", str(tmp_path / "imported")],
    ):
        r = run(["-C", str(typo_ws), *args])
        assert (r.code, r.out, r.err) == (1, "", expected), args
    typo = tmp_path / "typo" / "live.db"
    for args in (
        ["plan", "-C", str(typo_ws)],
        ["snapshot", "--out", str(tmp_path / "s.json")],
        ["import", "--out", str(tmp_path / "imported")],
    ):
        r = run([*args, "--provider", f"sqlite:{typo}"], cwd=tmp_path)
        assert (r.code, r.out, r.err) == (1, "", f"Error: no SQLite database at {typo}\n"), args
    assert files_under(tmp_path) == before


def test_apply_planfile_and_show_create_no_database_where_one_vanished(tmp_path: Path):
    seed_sqlite(tmp_path / "live.db", make_snapshot({"cams": [("a.jpg", {})]}))
    ws = write_dir(tmp_path / "ws", {"workspace.yaml": sqlite_workspace("../live.db"), "cams.yaml": CAMS})
    planfile = tmp_path / "plan.json"
    assert run(["-C", str(ws), "plan", "--out", str(planfile)]).code == 0
    (tmp_path / "live.db").rename(tmp_path / "moved.db")
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"live.db{suffix}").unlink(missing_ok=True)
    before = files_under(tmp_path)
    r = run(["-C", str(ws), "apply", str(planfile), "--auto-approve"])
    assert (r.code, r.out) == (1, "")
    assert r.err == f"Error: no SQLite database at {ws / '..' / 'live.db'}\n"
    assert run(["show", str(planfile)], cwd=tmp_path).code == 0
    assert files_under(tmp_path) == before
    # Not re-seeded either: a plan (or a journal) needs the very store it recorded.
    write_snapshot(tmp_path / "seed.json", {}, [], [])
    (ws / "workspace.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite, path: ../live.db, seed: ../seed.json}\n"
    )
    before = files_under(tmp_path)
    r = run(["-C", str(ws), "apply", str(planfile), "--auto-approve"])
    assert (r.code, r.out, r.err) == (1, "", f"Error: no SQLite database at {ws / '..' / 'live.db'}\n")
    assert files_under(tmp_path) == before


def test_apply_may_start_an_empty_store(typo_ws: Path):
    """``apply`` writes, so it may create the database a Workspace names; ``plan`` then sees it."""
    r = run(["-C", str(typo_ws), "apply", "--auto-approve"])
    assert r.code == 1  # the folder the manifest names does not exist in an empty store
    assert (
        r.err == "Error: cams.yaml:3:9: folder 'cams' not found\n1 problem found; nothing was written.\n"
    ), r.err
    assert (typo_ws / "data" / "liev.db").is_file()
    (typo_ws / "cams.yaml").unlink()
    final = run(["-C", str(typo_ws), "plan", "--detailed-exitcode"])
    assert final.code == 0 and "No changes." in final.out


@pytest.mark.parametrize(
    "seed_text",
    ['{"schema": {}, "folders": [{"uuid": 1}]}', "{not json", ""],
    ids=["bad folder", "not json", "empty file"],
)
def test_a_failed_seed_leaves_no_database_behind(tmp_path: Path, seed_text: str):
    ws = write_dir(
        tmp_path / "ws",
        {
            "workspace.yaml": "apiVersion: reconciler/v1\nkind: Workspace\n"
            "provider: {type: sqlite, path: .reconciler/live.db, seed: seed.json}\n",
            "cams.yaml": CAMS,
            "seed.json": seed_text,
        },
    )
    before = files_under(tmp_path)
    first = run(["-C", str(ws), "plan"])
    assert first.code == 1 and first.err.startswith("Error: ") and "seed.json" in first.err
    assert files_under(tmp_path) == before  # no database, no .reconciler directory, no temporary file
    again = run(["-C", str(ws), "plan"])
    assert (again.code, again.err) == (1, first.err)  # the same error, not an empty store
    write_snapshot(ws / "seed.json", {}, [], [])
    fixed = run(["-C", str(ws), "plan"])
    assert fixed.code == 1 and "folder 'cams' not found" in fixed.err
    assert (ws / ".reconciler" / "live.db").is_file()


def test_import_first_on_a_fresh_demo_seeds_the_store_like_plan(tmp_path: Path):
    demo = copy_demo(tmp_path)
    r = run(["-C", str(demo), "import", "--out", str(tmp_path / "imported")])
    assert r.code == 0, r.err
    assert "with 50 file(s)" in r.out
    assert (demo / ".reconciler" / "live.db").is_file()
    fresh = copy_demo(tmp_path / "fresh")
    by_plan = run(["-C", str(fresh), "plan"])
    after_import = run(["-C", str(demo), "plan"])
    assert after_import.code == by_plan.code == 0
    assert after_import.out == by_plan.out  # the same seeded store as a first `plan` makes
    snapshot_first = copy_demo(tmp_path / "snap")
    r = run(["-C", str(snapshot_first), "snapshot", "--out", str(tmp_path / "snap.json")])
    assert r.code == 0, r.err
    assert r.out.endswith(f" and 50 file(s) to {tmp_path / 'snap.json'}.\n")
    assert (snapshot_first / ".reconciler" / "live.db").is_file()
    assert run(["-C", str(demo), "apply", "--auto-approve"]).code == 0
    final = run(["-C", str(demo), "plan", "--detailed-exitcode"])
    assert final.code == 0 and "No changes." in final.out


def test_a_seeded_database_is_built_beside_the_target_and_linked_into_place(tmp_path: Path):
    seed = tmp_path / "seed.json"
    write_snapshot(seed, {}, [], [])
    target = tmp_path / "db" / "live.db"
    SqliteProvider(target, seed=seed, create=False).close()
    assert sorted(p.name for p in target.parent.iterdir() if not p.name.startswith("live.db")) == []
    existing = target.read_bytes()
    seed.write_text("{not json")  # a later open never seeds again over an existing database
    SqliteProvider(target, seed=seed, create=False).close()
    assert target.read_bytes()[:100] == existing[:100]
    shutil.rmtree(target.parent)
