"""Plan -> apply -> plan on every provider: the same scenarios must give the same plans and end states."""

from __future__ import annotations

import pytest

from reconciler.apply import FileStatus, apply_plan
from reconciler.errors import ManifestValidationError, PlanError
from reconciler.model import LiveItem
from reconciler.plan.model import KeyAction, KeyChange, SchemaAction
from reconciler.plan.planner import make_plan
from reconciler.schema import Deletion, FieldSpec, KeyType
from tests.helpers.desired import desired, manifest, schema, sel
from tests.helpers.states import make_snapshot, uid


def converge(p, d, **kw):
    plan = make_plan(d, p)
    result = apply_plan(plan, p, **kw)
    assert result.ok, [(r.change.name, r.status, r.reason) for r in result.files]
    again = make_plan(d, p)
    assert not again.has_changes, again
    return plan


def test_merge_keeps_foreign_keys_and_overwrite_removes_them(make_provider):
    p = make_provider(
        make_snapshot(
            {"m": [("a.jpg", {"mine": 1, "theirs": "keep"})], "o": [("b.jpg", {"mine": 1, "theirs": "x"})]}
        )
    )
    d = desired(
        manifest("merge.yaml", "m", sel("name", "a.jpg", mine=2)),
        manifest("over.yaml", "o", sel("name", "b.jpg", mine=2), mode="overwrite"),
    )
    plan = converge(p, d)
    assert [(f.name, f.strategy.value, f.changes) for f in plan.files] == [
        ("a.jpg", "merge", (KeyChange("mine", KeyAction.UPDATE, 1, 2),)),
        (
            "b.jpg",
            "overwrite",
            (KeyChange("mine", KeyAction.UPDATE, 1, 2), KeyChange("theirs", KeyAction.REMOVE, "x", None)),
        ),
    ]
    got = p.get_items([uid("item:m/a.jpg"), uid("item:o/b.jpg")])
    assert got[uid("item:m/a.jpg")].metadata == {"mine": 2, "theirs": "keep"}
    assert got[uid("item:o/b.jpg")].metadata == {"mine": 2}


def test_owns_prunes_and_null_removes(make_provider):
    p = make_provider(
        make_snapshot({"f": [("a.jpg", {"cap.x": 1, "cap.old": 2, "caption": "c", "other": 3})]})
    )
    d = desired(manifest("m.yaml", "f", sel("name", "a.jpg", cap__x=1, caption=None), owns=("cap.*",)))
    plan = converge(p, d)
    assert plan.files[0].changes == (
        KeyChange("cap.old", KeyAction.REMOVE, 2, None),
        KeyChange("caption", KeyAction.REMOVE, "c", None),
    )
    assert p.get_items([uid("item:f/a.jpg")])[uid("item:f/a.jpg")].metadata == {"cap.x": 1, "other": 3}


def test_precedence_defaults_glob_exact(make_provider):
    p = make_provider(make_snapshot({"f": [("cam01.mp4", {}), ("cam02.mp4", {}), ("x.txt", {})]}))
    d = desired(
        manifest(
            "m.yaml",
            "f",
            sel("name", "cam01.mp4", w="exact"),
            sel("glob", "cam*.mp4", w="glob", site="g"),
            defaults={"site": "default", "w": "default"},
        )
    )
    converge(p, d)
    got = {
        i.name: i.metadata
        for i in p.get_items([uid(f"item:f/{n}") for n in ("cam01.mp4", "cam02.mp4", "x.txt")]).values()
    }
    assert got == {
        "cam01.mp4": {"w": "exact", "site": "g"},
        "cam02.mp4": {"w": "glob", "site": "g"},
        "x.txt": {},
    }


def test_more_than_1000_files_in_a_folder(make_provider):
    p = make_provider(make_snapshot({"big": [(f"f{i:04d}.jpg", {"n": i}) for i in range(2500)]}))
    d = desired(manifest("m.yaml", "big", sel("glob", "*.jpg", split="train")))
    plan = converge(p, d, parallelism=4)
    assert len(plan.files) == 2500 and plan.unchanged == 0
    assert p.get_items([uid("item:big/f2499.jpg")])[uid("item:big/f2499.jpg")].metadata == {
        "n": 2499,
        "split": "train",
    }


def test_child_items(make_provider):
    snap = make_snapshot({"scans": []})
    g = LiveItem(uid("g"), snap.folders[0].uuid, "scan-07", "imageGroup", {})
    kids = [LiveItem(uid(f"k{i}"), g.folder, f"s{i}.png", "image", {}, parent_item=g.uuid) for i in range(3)]
    snap.items += [g, *kids]
    p = make_provider(snap)
    d = desired(manifest("m.yaml", "scans", sel("glob", "scan-07/*", reviewed=True), children=True))
    plan = converge(p, d)
    assert [f.name for f in plan.files] == ["scan-07/s0.png", "scan-07/s1.png", "scan-07/s2.png"]


def test_schema_changes_of_every_kind(make_provider):
    live = {
        "weather": {"ty": "enum", "values": ["rain"]},
        "note": {"ty": "variant", "hint": "varchar"},
        "old": {"ty": "tombstone", "deleted_ty": {"ty": "variant", "hint": "text"}},
        "clip": {"ty": "embedding", "size": 4, "api": None},
        "t": {"ty": "variant", "hint": "varchar"},
    }
    p = make_provider(make_snapshot({"f": []}, live))
    s = schema(
        weather=FieldSpec(KeyType.ENUM, values=("rain", "snow")),
        note=FieldSpec(KeyType.VARCHAR, deleted=Deletion.SOFT),
        old=FieldSpec(KeyType.TEXT),
        clip=FieldSpec(KeyType.EMBEDDING, size=8),
        t=FieldSpec(KeyType.TEXT),
        new__geo=FieldSpec(KeyType.GEOSPATIAL),
    )
    d = desired(schema_manifest=s)
    plan = make_plan(d, p)
    assert [(c.key, c.action, c.destructive) for c in plan.schema_changes] == [
        ("clip", SchemaAction.UPDATE, True),
        ("new.geo", SchemaAction.CREATE, False),
        ("note", SchemaAction.DELETE, True),
        ("old", SchemaAction.RESTORE, False),
        ("t", SchemaAction.UPDATE, False),
        ("weather", SchemaAction.UPDATE, False),
    ]
    with pytest.raises(PlanError, match="destructive changes and --allow-destructive was not given"):
        apply_plan(plan, p)
    assert p.read_schema() == live  # nothing written
    converge(p, d, allow_destructive=True)
    assert p.read_schema() == {
        "weather": {"ty": "enum", "values": ["rain", "snow"]},
        "note": {"ty": "tombstone", "deleted_ty": {"ty": "variant", "hint": "varchar"}},
        "old": {"ty": "variant", "hint": "text"},
        "clip": {"ty": "embedding", "size": 8, "api": None},
        "t": {"ty": "variant", "hint": "text"},
        "new.geo": {"ty": "geospatial"},
    }


def test_conflicts_name_both_manifests(make_provider):
    p = make_provider(make_snapshot({"f": [("a.jpg", {})]}))
    d = desired(
        manifest("one.yaml", "f", sel("name", "a.jpg", "one.yaml", k=1)),
        manifest("two.yaml", "f", sel("glob", "*.jpg", "two.yaml", k=2)),
        manifest("three.yaml", "f", sel("glob", "a.*", "three.yaml", z=2), mode="overwrite"),
    )
    with pytest.raises(ManifestValidationError) as exc:
        make_plan(d, p)
    assert [str(i) for i in exc.value.issues] == [
        "three.yaml:1:1: conflict: one.yaml and three.yaml select the same file f/a.jpg; "
        "an overwrite manifest must be the only manifest on its files",
        "three.yaml:1:1: conflict: two.yaml and three.yaml select the same file f/a.jpg; "
        "an overwrite manifest must be the only manifest on its files",
        "two.yaml:1:1: conflict: one.yaml and two.yaml both own key 'k' on f/a.jpg",
    ]


def test_stale_file_is_not_written_and_others_go_on(make_provider):
    p = make_provider(make_snapshot({"f": [("a.jpg", {"k": 1}), ("b.jpg", {"k": 1})]}))
    d = desired(manifest("m.yaml", "f", sel("glob", "*.jpg", k=2)))
    plan = make_plan(d, p)
    a = uid("item:f/a.jpg")
    p.patch_items({a: {"k": 5, "foreign": True}})
    result = apply_plan(plan, p, precheck=False)
    assert [(r.change.name, r.status, r.reason) for r in result.files] == [
        ("a.jpg", FileStatus.STALE, "changed since the plan: k"),
        ("b.jpg", FileStatus.WRITTEN, ""),
    ]
    assert p.get_items([a])[a].metadata == {"k": 5, "foreign": True}


def test_foreign_key_written_between_plan_and_apply_survives(make_provider):
    p = make_provider(make_snapshot({"f": [("a.jpg", {"k": 1})]}))
    d = desired(manifest("m.yaml", "f", sel("name", "a.jpg", k=2)))
    plan = make_plan(d, p)
    a = uid("item:f/a.jpg")
    p.patch_items({a: {"k": 1, "late": "arrival"}})
    result = apply_plan(plan, p)
    assert result.ok
    assert p.get_items([a])[a].metadata == {"k": 2, "late": "arrival"}
