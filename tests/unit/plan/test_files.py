"""plan/files.py: the streaming file planner on the embedded store: single and shared files, claims, and
the manifests a targeted plan leaves out (checked for conflicts, never planned)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.model import FileManifest
from reconciler.plan.files import FilePlan, plan_files
from reconciler.plan.model import KeyAction, KeyChange, Strategy
from reconciler.providers.sqlite import SqliteProvider
from reconciler.snapshot import write_snapshot
from tests.helpers.desired import manifest, sel
from tests.helpers.states import make_snapshot, uid


def plan(
    tmp_path: Path, folders: dict, manifests: list[FileManifest], others: list[FileManifest] | None = None
) -> tuple[FilePlan, int]:
    snap = make_snapshot(folders)
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    p = SqliteProvider(tmp_path / "live.db", seed=tmp_path / "seed.json")
    try:
        fp = plan_files(
            [*manifests, *(others or [])],
            p,
            root=tmp_path,
            spec_map={},
            planned=None if others is None else (lambda m: any(m is x for x in manifests)),
            on_progress=lambda *a: None,
        )
        return fp, p.stats.by_route.get("GET folder items", 0)
    finally:
        p.close()


def test_single_files_unchanged_and_changed(tmp_path):
    m = manifest("m.yaml", "f", sel("glob", "*.jpg", n=1), owns=("old*",))
    fp, _ = plan(tmp_path, {"f": [("a.jpg", {"n": 1}), ("b.jpg", {"n": 1, "old.x": 2, "theirs": 3})]}, [m])
    assert fp.errors == [] and fp.unchanged == 1
    assert [(f.name, f.strategy, f.manifest, f.changes) for f in fp.files] == [
        ("b.jpg", Strategy.MERGE, "m.yaml", (KeyChange("old.x", KeyAction.REMOVE, 2, None),))
    ]
    # The changed file's claim is kept; the unchanged one is only counted (what the limits need of it).
    assert [(u, [cl.manifest.path for cl in c]) for u, c in fp.claims.items()] == [
        (uid("item:f/b.jpg"), ["m.yaml"])
    ]
    assert fp.selected_unchanged == {"m.yaml": 1}


def test_shared_files_layer_in_manifest_order(tmp_path):
    a = manifest("a.yaml", "f", sel("glob", "*.jpg", "a.yaml", n=1))
    b = manifest("b.yaml", "f", sel("name", "a.jpg", "b.yaml", w="x"))
    fp, _ = plan(tmp_path, {"f": [("a.jpg", {}), ("b.jpg", {"n": 1})]}, [a, b])
    assert fp.errors == []
    assert [(f.name, f.manifest, f.changes) for f in fp.files] == [
        (
            "a.jpg",
            "a.yaml, b.yaml",
            (KeyChange("n", KeyAction.ADD, None, 1), KeyChange("w", KeyAction.ADD, None, "x")),
        )
    ]
    assert [cl.manifest.path for cl in fp.claims[uid("item:f/a.jpg")]] == ["a.yaml", "b.yaml"]


def test_owns_patterns_meet_the_keys_another_manifest_gives(tmp_path):
    a = manifest("a.yaml", "f", sel("name", "a.jpg", "a.yaml", k=1), owns=("*",))
    b = manifest("b.yaml", "f", sel("glob", "*", "b.yaml", team=2))
    fp, _ = plan(tmp_path, {"f": [("a.jpg", {"k": 1})]}, [a, b])
    assert [str(e) for e in fp.errors] == [
        "b.yaml:1:1: conflict: a.yaml and b.yaml both own key 'team' on f/a.jpg"
    ]


def test_left_out_manifests_are_checked_not_planned(tmp_path):
    a = manifest("a.yaml", "f", sel("glob", "*.jpg", "a.yaml", n=1))
    b = manifest("b.yaml", "f", sel("name", "b.jpg", "b.yaml", w="x"))
    sub = manifest("s.yaml", "f/s", sel("glob", "*", "s.yaml", n=5), mode="overwrite")
    far = manifest("o.yaml", "other", sel("glob", "*", "o.yaml", n=9), mode="overwrite")
    folders: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "f": [("a.jpg", {}), ("b.jpg", {})],
        "f/s": [("c.jpg", {})],
        "other": [("z.jpg", {})],
    }
    fp, _ = plan(tmp_path, folders, [a], [b])
    assert fp.errors == []
    assert [(f.name, f.manifest, f.changes) for f in fp.files] == [
        ("a.jpg", "a.yaml", (KeyChange("n", KeyAction.ADD, None, 1),)),
        ("b.jpg", "a.yaml", (KeyChange("n", KeyAction.ADD, None, 1),)),
    ]
    assert all(cl.manifest.path == "a.yaml" for cls in fp.claims.values() for cl in cls)
    # A conflicting left-out manifest is an error; one on a folder that cannot overlap is not even listed.
    recursive = manifest("r.yaml", "f", sel("glob", "**/*.jpg", "r.yaml", n=2), recursive=True)
    (tmp_path / "live.db").unlink()
    fp, listings = plan(tmp_path, folders, [a], [recursive])
    assert listings == 2  # f, and f recursively
    assert [str(e) for e in fp.errors] == [
        "r.yaml:1:1: conflict: a.yaml and r.yaml both own key 'n' on f/a.jpg and 1 more file(s)"
    ]
    (tmp_path / "live.db").unlink()
    fp, listings = plan(tmp_path, folders, [a], [far, sub])
    assert fp.errors == [] and listings == 2  # f and f/s; never 'other'
