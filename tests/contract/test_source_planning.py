"""The streaming planner (plan/files.py) with ``source:`` rows, on every provider: layering, row errors,
unchanged rows recognised by their text, several manifests on one folder, progress."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reconciler.errors import ManifestValidationError, SourceLocation
from reconciler.model import FileManifest, SourceSpec, UndeclaredKeys, WorkspaceSettings
from reconciler.plan import listing, selection
from reconciler.plan.model import KeyAction, KeyChange, Strategy
from reconciler.plan.planner import make_plan
from reconciler.schema import FieldSpec, KeyType
from tests.helpers.desired import desired, manifest, schema, sel
from tests.helpers.states import make_snapshot, uid

SCHEMA_WIRE = {"n": {"ty": "variant", "hint": "number"}, "w": {"ty": "variant", "hint": "varchar"}}


def with_source(m: FileManifest, path: str, fmt: str = "jsonl") -> FileManifest:
    return dataclasses.replace(m, source=SourceSpec(path, fmt, SourceLocation(m.path, 7, 9)))


def write(root: Path, rel: str, lines: list[str]) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def files_of(plan) -> dict[str, tuple[KeyChange, ...]]:
    return {f.name: f.changes for f in plan.files}


def test_source_rows_layer_between_globs_and_exact_entries(make_provider, tmp_path):
    p = make_provider(make_snapshot({"f": [("a.jpg", {"n": 1}), ("b.jpg", {"n": 2}), ("c.jpg", {"n": 3})]}))
    write(
        tmp_path,
        "rows.jsonl",
        [
            json.dumps({"name": "a.jpg", "metadata": {"w": "row", "n": 1}}),
            '{"name": "b.jpg", "metadata": {"n": 2}}',
        ],
    )
    m = manifest(
        "m.yaml",
        "f",
        sel("glob", "*.jpg", w="glob"),
        sel("name", "c.jpg", w="exact"),
        defaults={"w": "default", "n": 0},
    )
    d = desired(with_source(m, "rows.jsonl"), root=str(tmp_path))
    plan = make_plan(d, p)
    assert files_of(plan) == {
        "a.jpg": (KeyChange("w", KeyAction.ADD, None, "row"),),
        "b.jpg": (KeyChange("w", KeyAction.ADD, None, "glob"),),
        "c.jpg": (KeyChange("n", KeyAction.UPDATE, 3, 0), KeyChange("w", KeyAction.ADD, None, "exact")),
    }


def test_row_errors_are_reported_together_with_their_lines(make_provider, tmp_path):
    p = make_provider(make_snapshot({"f": [("a.jpg", {}), ("b.jpg", {})]}, SCHEMA_WIRE))
    write(
        tmp_path,
        "rows.jsonl",
        [
            '{"name": "a.jpg", "metadata": {"n": "five"}}',
            '{"name": "b.jpg", "metadata": {"n": 5}}',
            '{"name": "b.jpg", "metadata": {"n": 6}}',
            '{"name": "zzz.jpg", "metadata": {"n": 7}}',
            "{not json",
        ],
    )
    m = manifest("m.yaml", "f", sel("name", "a.jpg", w="x"))
    d = desired(
        with_source(m, "rows.jsonl"),
        schema_manifest=schema(n=FieldSpec(KeyType.NUMBER), w=FieldSpec(KeyType.VARCHAR)),
        root=str(tmp_path),
    )
    with pytest.raises(ManifestValidationError) as err:
        make_plan(d, p)
    assert sorted(str(i) for i in err.value.issues) == [
        "rows.jsonl:1: n: expected a number, got the string 'five'",
        "rows.jsonl:3: 'b.jpg' is already selected exactly at rows.jsonl:2 in this manifest",
        "rows.jsonl:4: name 'zzz.jpg' matches no file in folder 'f' (set on_missing: warn or ignore to allow)",
        "rows.jsonl:5: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
    ]


def test_missing_rows_are_capped(make_provider, tmp_path, monkeypatch):
    monkeypatch.setattr(selection, "MAX_MISSING_REPORTED", 3)
    p = make_provider(make_snapshot({"f": [("a.jpg", {})]}))
    write(tmp_path, "rows.jsonl", [json.dumps({"name": f"x{i}.jpg", "metadata": {}}) for i in range(10)])
    d = desired(with_source(manifest("m.yaml", "f", on_missing="warn"), "rows.jsonl"), root=str(tmp_path))
    plan = make_plan(d, p)
    shown = [str(w) for w in plan.warnings]
    assert len([w for w in shown if "matches no file" in w]) == 3
    assert (
        "m.yaml:1:1: 7 more selector(s) or source row(s) match no file in folder 'f' (first 3 above)" in shown
    )


@pytest.mark.parametrize("policy", [UndeclaredKeys.ERROR, UndeclaredKeys.WARN])
def test_keys_only_a_source_sets_follow_the_undeclared_keys_policy(make_provider, tmp_path, policy):
    p = make_provider(make_snapshot({"f": [("a.jpg", {}), ("b.jpg", {})]}, SCHEMA_WIRE))
    write(
        tmp_path,
        "rows.jsonl",
        ['{"name": "a.jpg", "metadata": {"extra": 1}}', '{"name": "b.jpg", "metadata": {"extra": 2}}'],
    )
    d = desired(with_source(manifest("m.yaml", "f"), "rows.jsonl"), root=str(tmp_path))
    d = dataclasses.replace(
        d, workspace=dataclasses.replace(d.workspace, settings=WorkspaceSettings(undeclared_keys=policy))
    )
    message = "rows.jsonl:1: key 'extra' is not declared in the metadata schema"
    if policy is UndeclaredKeys.ERROR:
        with pytest.raises(ManifestValidationError) as err:
            make_plan(d, p)
        assert [str(i) for i in err.value.issues] == [message + " (settings.undeclared_keys: error)"]
    else:
        assert [str(w) for w in make_plan(d, p).warnings] == [message]


def test_a_row_equal_to_the_live_json_is_unchanged_and_a_null_still_removes(make_provider, tmp_path):
    live = {"n": 1, "w": "x", "gone": None}
    p = make_provider(make_snapshot({"f": [("a.jpg", {"n": 1, "w": "x"}), ("b.jpg", live)]}))
    write(
        tmp_path,
        "rows.jsonl",
        [
            json.dumps({"name": "a.jpg", "metadata": {"n": 1, "w": "x"}}),
            json.dumps({"name": "b.jpg", "metadata": live}),
        ],
    )
    plan = make_plan(desired(with_source(manifest("m.yaml", "f"), "rows.jsonl"), root=str(tmp_path)), p)
    assert files_of(plan) == {"b.jpg": (KeyChange("gone", KeyAction.REMOVE, None, None),)}
    assert plan.unchanged == 1


def test_two_manifests_on_one_folder(make_provider, tmp_path):
    p = make_provider(make_snapshot({"f": [("a.jpg", {"team.a": 1, "team.b": 1}), ("b.jpg", {})]}))
    write(tmp_path, "rows.jsonl", ['{"name": "a.jpg", "metadata": {"team.a": 2}}'])
    a = with_source(manifest("a.yaml", "f", owns=("team.a",)), "rows.jsonl")
    b = manifest("b.yaml", "f", sel("glob", "*.jpg", team__b=3))
    plan = make_plan(desired(a, b, root=str(tmp_path)), p)
    assert {(f.name, f.manifest): f.changes for f in plan.files} == {
        ("a.jpg", "a.yaml, b.yaml"): (
            KeyChange("team.a", KeyAction.UPDATE, 1, 2),
            KeyChange("team.b", KeyAction.UPDATE, 1, 3),
        ),
        ("b.jpg", "b.yaml"): (KeyChange("team.b", KeyAction.ADD, None, 3),),
    }
    # The same key owned twice, and an overwrite manifest next to another, are conflicts.
    c = manifest("c.yaml", "f", sel("name", "a.jpg", team__a=5))
    o = manifest("o.yaml", "f", sel("glob", "b*", x=1), mode="overwrite")
    with pytest.raises(ManifestValidationError) as err:
        make_plan(desired(a, b, c, o, root=str(tmp_path)), p)
    assert sorted(str(i) for i in err.value.issues) == [
        "c.yaml:1:1: conflict: a.yaml and c.yaml both own key 'team.a' on f/a.jpg",
        "o.yaml:1:1: conflict: b.yaml and o.yaml select the same file f/b.jpg; an overwrite manifest must be "
        "the only manifest on its files",
    ]


def test_overwrite_from_a_source(make_provider, tmp_path):
    p = make_provider(make_snapshot({"f": [("a.jpg", {"n": 1, "old": 1}), ("b.jpg", {"n": 2})]}))
    write(
        tmp_path,
        "rows.jsonl",
        ['{"name": "a.jpg", "metadata": {"n": 1}}', '{"name": "b.jpg", "metadata": {"n": 2}}'],
    )
    plan = make_plan(
        desired(with_source(manifest("m.yaml", "f", mode="overwrite"), "rows.jsonl"), root=str(tmp_path)), p
    )
    assert [(f.name, f.strategy, f.changes) for f in plan.files] == [
        ("a.jpg", Strategy.OVERWRITE, (KeyChange("old", KeyAction.REMOVE, 1, None),))
    ]
    assert plan.unchanged == 1


def test_progress_is_reported_while_reading_and_planning(make_provider, tmp_path, monkeypatch):
    monkeypatch.setattr(listing, "PROGRESS_EVERY", 10)
    p = make_provider(make_snapshot({"f": [(f"{i:03d}.jpg", {"n": i}) for i in range(35)]}))
    write(
        tmp_path,
        "rows.jsonl",
        [json.dumps({"name": f"{i:03d}.jpg", "metadata": {"n": i + 1}}) for i in range(35)],
    )
    seen: list[tuple[str, int, int | None]] = []

    class Hooks:
        def on_progress(self, stage: str, done: int, total: int | None) -> None:
            seen.append((stage, done, total))

    plan = make_plan(
        desired(with_source(manifest("m.yaml", "f"), "rows.jsonl"), root=str(tmp_path)), p, hooks=Hooks()
    )
    assert len(plan.files) == 35
    assert ("reading f", 35, 35) in seen
    planning = [done for stage, done, total in seen if stage == "planning m.yaml" and total == 35]
    assert planning == [0, 10, 20, 30, 35]


def test_raw_sqlite_listing_is_the_listing(tmp_path):
    from reconciler.model import LiveItem
    from reconciler.providers.sqlite import SqliteProvider
    from reconciler.snapshot import write_snapshot

    snap = make_snapshot(
        {"top": [("b.jpg", {"n": 2}), ("a.jpg", {"w": "é"})], "top/sub/deep": [("c.jpg", {})]}
    )
    top = snap.folders[0]
    group = LiveItem(uid("g"), top.uuid, "scan-07", "imageGroup", {"k": 1})
    snap.items += [group] + [
        LiveItem(uid(f"k{i}"), top.uuid, f"s{i}.png", "image", {"i": i}, parent_item=group.uuid)
        for i in (2, 1)
    ]
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    p = SqliteProvider(tmp_path / "live.db", seed=tmp_path / "seed.json")
    folder = p.resolve_folder("top")
    for recursive in (False, True):
        for children in (False, True):
            want = sorted(
                (li.rel_name, li.item.uuid, li.item.metadata)
                for li in p.iter_items(folder, recursive=recursive, children=children)
            )
            got = sorted(
                (rel, u, json.loads(raw) if isinstance(raw, str) else raw)
                for rel, u, _, raw in p.iter_raw_items(folder, recursive=recursive, children=children)
            )
            assert got == want, (recursive, children)
    p.close()
