from __future__ import annotations

import sqlite3

import pytest

from reconciler.errors import ProviderConflictError, ProviderError
from reconciler.model import LiveItem
from reconciler.providers.sqlite import SqliteProvider
from reconciler.snapshot import write_snapshot
from tests.helpers.states import make_snapshot, uid


@pytest.fixture
def seeded(tmp_path):
    snap = make_snapshot(
        {"a": [("x.jpg", {"k": 1}), ("y.jpg", {})], "a/sub": [("z.jpg", {"k": 2})]},
        {"k": {"ty": "variant", "hint": "number"}},
    )
    group = LiveItem(uid("g"), snap.folders[0].uuid, "grp", "imageGroup", {"g": True})
    child = LiveItem(uid("c"), snap.folders[0].uuid, "c1.png", "image", {}, parent_item=group.uuid)
    snap.items += [group, child]
    seed = tmp_path / "seed.json"
    write_snapshot(seed, snap.schema, snap.folders, snap.items)
    p = SqliteProvider(tmp_path / "db" / "live.db", seed=seed)
    yield p
    p.close()


def names(p, folder, **kw):
    return [li.rel_name for li in p.iter_items(folder, **kw)]


def test_seeded_state_round_trips(seeded):
    assert seeded.read_schema() == {"k": {"ty": "variant", "hint": "number"}}
    assert [f.path for f in seeded.list_folders()] == ["a", "a/sub"]
    a = seeded.resolve_folder("a")
    assert seeded.resolve_folder(a.uuid) == a
    assert names(seeded, a, recursive=False, children=False) == ["grp", "x.jpg", "y.jpg"]
    assert names(seeded, a, recursive=True, children=True) == [
        "grp",
        "grp/c1.png",
        "sub/z.jpg",
        "x.jpg",
        "y.jpg",
    ]


def test_missing_folder(seeded):
    with pytest.raises(ProviderConflictError, match="folder 'nope' not found"):
        seeded.resolve_folder("nope")


def test_patch_and_get_items(seeded):
    x = uid("item:a/x.jpg")
    assert seeded.patch_items({x: {"k": 5, "new": "v"}, "missing": {}}) == {
        x: None,
        "missing": "file no longer exists",
    }
    got = seeded.get_items([x, "missing"])
    assert list(got) == [x]
    assert got[x].metadata == {"k": 5, "new": "v"}
    seeded.write_schema({"b": {"ty": "variant", "hint": "text"}, "a": {"ty": "variant", "hint": "text"}})
    assert list(seeded.read_schema()) == ["b", "a"]  # order kept


def test_not_a_database(tmp_path):
    bad = tmp_path / "live.db"
    bad.write_text("this is not sqlite at all, just text " * 100)
    with pytest.raises(
        ProviderError, match=r"live.db: not a reconciler SQLite database \(file is not a database\)"
    ):
        SqliteProvider(bad)


def test_unknown_layout_version(tmp_path):
    path = tmp_path / "live.db"
    SqliteProvider(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'layout_version'")
    db.commit()
    db.close()
    with pytest.raises(
        ProviderError, match=r"unknown database layout version '99' \(this reconciler knows '1'\)"
    ):
        SqliteProvider(path)


def test_foreign_sqlite_database(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(ProviderError, match="not a reconciler database"):
        SqliteProvider(path)


def test_locked_database(tmp_path):
    path = tmp_path / "live.db"
    SqliteProvider(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        p = None
        with pytest.raises(ProviderConflictError, match="the database is locked by another process"):
            p = SqliteProvider(path, timeout=0.1)
            p.write_schema({})
        if p is not None:
            p.close()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
