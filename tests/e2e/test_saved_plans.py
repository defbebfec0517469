"""Saved plans end to end: ``plan --out`` files shown with ``show`` and applied with ``apply PLANFILE``.

Each refusal (altered, unknown version, foreign provider, stale) is asserted with its exact message, and
with nothing written. Plans are made in code against a SQLite store, so no manifests are needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import PlanFormatError
from reconciler.plan.planfile import read_planfile, write_planfile
from reconciler.plan.planner import make_plan
from reconciler.providers.sqlite import SqliteProvider
from reconciler.render.json import render_plan_json
from reconciler.render.markdown import render_plan_markdown
from reconciler.render.text import render_plan_text
from reconciler.schema import FieldSpec, KeyType
from reconciler.snapshot import write_snapshot
from tests.helpers.cli import run
from tests.helpers.desired import desired, manifest, schema, sel
from tests.helpers.states import make_snapshot, uid

A = uid("item:cams/a.mp4")
B = uid("item:cams/b.mp4")
C = uid("item:cams/c.mp4")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """A SQLite live state: three files in ``cams`` and one schema key."""
    snap = make_snapshot(
        {
            "cams": [
                ("a.mp4", {"weather": "sunny", "other": 1}),
                ("b.mp4", {"weather": "rain"}),
                ("c.mp4", {"weather": "snow"}),
            ]
        },
        schema={"weather": {"ty": "variant", "hint": "varchar"}},
        item_type="video",
    )
    seed = tmp_path / "seed.json"
    write_snapshot(seed, snap.schema, snap.folders, snap.items)
    db = tmp_path / "live.db"
    SqliteProvider(db, seed=seed).close()
    yield db


def live(db: Path) -> dict[str, dict[str, Any]]:
    p = SqliteProvider(db)
    try:
        return {u: dict(i.metadata) for u, i in p.get_items([A, B, C]).items()}
    finally:
        p.close()


def live_schema(db: Path) -> dict[str, Any]:
    p = SqliteProvider(db)
    try:
        return p.read_schema()
    finally:
        p.close()


@pytest.fixture
def planfile(store: Path, tmp_path: Path) -> Path:
    """A saved plan: a.mp4 (merge) and b.mp4 change ``weather``; c.mp4 is overwritten; a key is added."""
    d = desired(
        manifest(
            "cams.yaml", "cams", sel("name", "a.mp4", weather="fog"), sel("name", "b.mp4", weather="fog")
        ),
        manifest("over.yaml", "cams", sel("name", "c.mp4", weather="snow", extra=True), mode="overwrite"),
        schema_manifest=schema(weather=FieldSpec(KeyType.VARCHAR), extra=FieldSpec(KeyType.BOOLEAN)),
        root=str(tmp_path),
    )
    p = SqliteProvider(store)
    try:
        plan = make_plan(d, p)
    finally:
        p.close()
    out = tmp_path / "plan.json"
    write_planfile(out, plan)
    return out


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


# --------------------------------------------------------------------------------------------- show


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_show_renders_a_saved_plan_without_manifests(planfile: Path, empty_dir: Path, fmt: str):
    plan = read_planfile(planfile)
    expected = {
        "text": render_plan_text(plan),
        "json": render_plan_json(plan),
        "markdown": render_plan_markdown(plan),
    }[fmt]
    r = run(["show", str(planfile), "--format", fmt, "-C", str(empty_dir / "nowhere")], cwd=empty_dir)
    assert (r.code, r.err) == (0, "")
    assert r.out == expected


def test_show_text_is_the_plan(planfile: Path, empty_dir: Path):
    r = run(["show", str(planfile)], cwd=empty_dir)
    assert r.code == 0
    assert "Schema:\n  + extra                 boolean\n" in r.out
    assert '  ~ a.mp4                 merge\n      ~ weather           "sunny" -> "fog"\n' in r.out
    assert r.out.endswith(
        "Plan: schema 1 to add, 0 to change, 0 to delete; files 3 to update (2 merge, 1 overwrite), 0 unchanged.\n"
    )


def test_show_json_is_only_json(planfile: Path, empty_dir: Path):
    r = run(["show", str(planfile), "--format", "json"], cwd=empty_dir)
    data = json.loads(r.out)
    assert data["summary"]["files"] == {"update": 3, "merge": 2, "overwrite": 1, "unchanged": 0}
    assert "checksum" not in data


def test_show_refuses_a_missing_file(empty_dir: Path):
    r = run(["show", "nope.json"], cwd=empty_dir)
    assert r.code == 1
    assert r.err == "Error: nope.json: cannot read the plan file: No such file or directory\n"


# --------------------------------------------------------------------------------------------- altered


def _edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=1))


ALTERATIONS = {
    "value inside a change": lambda d: d["files"][0]["changes"][0].__setitem__("after", "snow"),
    "before value": lambda d: d["files"][0]["changes"][0].__setitem__("before", "rain"),
    "key name": lambda d: d["files"][1]["changes"][0].__setitem__("key", "weathr"),
    "file uuid": lambda d: d["files"][0].__setitem__("uuid", C),
    "strategy": lambda d: d["files"][0].__setitem__("strategy", "overwrite"),
    "live fingerprint": lambda d: d["files"][0].__setitem__("live_fingerprint", "sha256:0"),
    "dropped file": lambda d: d["files"].pop(),
    "schema change": lambda d: d["schema"]["changes"][0].__setitem__("destructive", True),
    "schema fingerprint": lambda d: d["schema"].__setitem__("fingerprint", "sha256:0"),
    "provider": lambda d: d["provider"].__setitem__("path", "/elsewhere/live.db"),
    "created_at": lambda d: d.__setitem__("created_at", "2000-01-01T00:00:00Z"),
    "tool_version": lambda d: d.__setitem__("tool_version", "9.9.9"),
    "summary": lambda d: d["summary"]["files"].__setitem__("unchanged", 7),
    "added field": lambda d: d.__setitem__("note", "hi"),
    "warnings": lambda d: d["warnings"].append({"location": "x", "message": "y"}),
}


@pytest.mark.parametrize("what", sorted(ALTERATIONS))
def test_an_altered_plan_is_refused_by_show_and_apply(
    planfile: Path, store: Path, empty_dir: Path, what: str
):
    before = live(store)
    _edit(planfile, ALTERATIONS[what])
    message = (
        f"Error: {planfile}: the plan file was altered after it was saved (checksum mismatch); refusing it\n"
    )
    r = run(["show", str(planfile)], cwd=empty_dir)
    assert (r.code, r.out, r.err) == (1, "", message)
    r = run(["apply", str(planfile), "-C", str(empty_dir / "nowhere")], cwd=empty_dir)
    assert (r.code, r.out, r.err) == (1, "", message)
    assert live(store) == before


def test_a_plan_without_checksum_is_refused(planfile: Path, empty_dir: Path):
    _edit(planfile, lambda d: d.pop("checksum"))
    r = run(["apply", str(planfile)], cwd=empty_dir)
    assert r.code == 1
    assert (
        r.err
        == f"Error: {planfile}: the plan has no checksum; only plans saved by `reconciler plan --out` apply\n"
    )


def _leaves(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, i))
    else:
        yield path


def _mutated(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if value is None:
        return "x"
    return str(value) + "x"


def test_the_checksum_covers_every_field(planfile: Path):
    """Changing any single leaf of the file (except the checksum itself) makes it refused."""
    original = json.loads(planfile.read_text())
    paths = [p for p in _leaves(original) if p != ("checksum",)]
    assert len(paths) > 40
    for path in paths:
        data = json.loads(json.dumps(original))
        target = data
        for step in path[:-1]:
            target = target[step]
        if path[:1] == ("format_version",):
            continue  # checked before the checksum (its own message, below)
        target[path[-1]] = _mutated(target[path[-1]])
        planfile.write_text(json.dumps(data))
        with pytest.raises(PlanFormatError, match=r"checksum mismatch"):
            read_planfile(planfile)
    planfile.write_text(json.dumps(original))
    read_planfile(planfile)  # the untouched file still reads


def test_unknown_format_version_is_refused(planfile: Path, empty_dir: Path):
    _edit(planfile, lambda d: d.__setitem__("format_version", "2"))
    r = run(["apply", str(planfile)], cwd=empty_dir)
    assert r.code == 1
    assert r.err == (
        f"Error: {planfile}: plan format_version '2' is not one this reconciler reads ('1'); "
        "make the plan again with this version\n"
    )
    r = run(["show", str(planfile)], cwd=empty_dir)
    assert r.code == 1
    assert "plan format_version '2' is not one this reconciler reads" in r.err


def test_not_json_is_refused(tmp_path: Path, empty_dir: Path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = run(["show", str(bad)], cwd=empty_dir)
    assert r.code == 1
    assert r.err == (
        f"Error: {bad}:1:2: not a plan file: invalid JSON "
        "(Expecting property name enclosed in double quotes)\n"
    )


# --------------------------------------------------------------------------------------------- provider


def test_a_plan_for_another_provider_is_refused(planfile: Path, store: Path, tmp_path: Path, empty_dir: Path):
    other = tmp_path / "other.db"
    before = live(store)
    r = run(["apply", str(planfile), "--provider", f"sqlite:{other}", "--auto-approve"], cwd=empty_dir)
    assert r.code == 1
    assert r.err == (
        f"Error: {planfile}: the plan was made against sqlite:{store} but --provider names sqlite:{other}; "
        "a plan applies only to the provider it was made against\n"
    )
    assert r.out == ""
    assert live(store) == before
    assert not other.exists()


def test_a_plan_for_another_provider_type_is_refused(planfile: Path, empty_dir: Path):
    r = run(["apply", str(planfile), "--provider", "encord:https://api.example.com"], cwd=empty_dir)
    assert r.code == 1
    assert r.err.endswith("but --provider names encord:https://api.example.com; "
                          "a plan applies only to the provider it was made against\n")  # fmt: skip


def test_the_same_provider_named_explicitly_is_accepted(planfile: Path, store: Path, empty_dir: Path):
    r = run(["apply", str(planfile), "--provider", f"sqlite:{store}"], cwd=empty_dir)
    assert r.code == 0, r.err
    assert live(store)[A]["weather"] == "fog"


# --------------------------------------------------------------------------------------------- apply


def test_apply_planfile_needs_the_operator_to_name_the_store(planfile: Path, store: Path, empty_dir: Path):
    """The plan records a store but never chooses it: without -C or --provider nothing is opened."""
    before = live(store)
    r = run(["apply", str(planfile), "-C", str(empty_dir / "nowhere")], cwd=empty_dir)
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"Error: manifest directory {str(empty_dir / 'nowhere')!r} does not exist: a saved plan or a journal "
        "writes only to the store its Workspace names (use -C/--dir to point at it, or name the store with "
        "--provider URL)\n"
    )
    assert live(store) == before
    assert not (empty_dir / ".reconciler").exists()


def test_apply_planfile_needs_no_manifests_with_provider(planfile: Path, store: Path, empty_dir: Path):
    r = run(
        ["apply", str(planfile), "--provider", f"sqlite:{store}", "-C", str(empty_dir / "nowhere")],
        cwd=empty_dir,
    )
    assert r.code == 0, r.err
    assert r.out.startswith(render_plan_text(read_planfile(planfile)))
    assert "Apply complete: schema written; 3 file(s) written.\n" in r.out
    assert live(store) == {
        A: {"weather": "fog", "other": 1},
        B: {"weather": "fog"},
        C: {"weather": "snow", "extra": True},
    }
    assert "extra" in live_schema(store)
    # The journal goes to the default place under the current directory.
    assert list((empty_dir / ".reconciler" / "journal").glob("*.jsonl"))
    # Applying the same plan again: the journal records that this plan was applied, so it is stale (a replay).
    journal = next((empty_dir / ".reconciler" / "journal").glob("*.jsonl"))
    r = run(["apply", str(planfile), "--provider", f"sqlite:{store}"], cwd=empty_dir)
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"Error: {planfile}: the plan is stale: it was already applied (journal {journal.absolute()}); nothing "
        "was written. A saved plan applies once: run `reconciler plan` again.\n"
    )
    # Elsewhere (no journal of it), the schema check still refuses it: the schema moved since the plan.
    other = empty_dir / "elsewhere"
    other.mkdir()
    r = run(["apply", str(planfile), "--provider", f"sqlite:{store}"], cwd=other)
    assert r.code == 1
    assert "schema: the metadata schema changed since the plan" in r.err


def test_a_stale_schema_refuses_the_whole_plan(planfile: Path, store: Path, empty_dir: Path):
    p = SqliteProvider(store)
    p.write_schema({**p.read_schema(), "added.meanwhile": {"ty": "variant", "hint": "number"}})
    p.close()
    before = live(store)
    r = run(["apply", str(planfile), "--provider", f"sqlite:{store}"], cwd=empty_dir)
    assert r.code == 1
    assert r.err == (
        "Error: the plan is stale: live state changed since it was made; nothing was written. "
        "Run `reconciler plan` again.\n"
        "  schema: the metadata schema changed since the plan\n"
    )
    assert live(store) == before
    assert "extra" not in live_schema(store)
    assert not (empty_dir / ".reconciler").exists()


def test_a_touched_key_changed_since_the_plan_makes_it_stale(planfile: Path, store: Path, empty_dir: Path):
    p = SqliteProvider(store)
    p.patch_items({B: {"weather": "hail"}, C: {"weather": "snow", "new": 1}})
    p.close()
    before = live(store)
    r = run(["apply", str(planfile), "--provider", f"sqlite:{store}"], cwd=empty_dir)
    assert r.code == 1
    assert r.err == (
        "Error: the plan is stale: live state changed since it was made; nothing was written. "
        "Run `reconciler plan` again.\n"
        "  cams/b.mp4: changed since the plan: weather\n"
        "  cams/c.mp4: the file's metadata changed since the plan (overwrite plans need the exact dict)\n"
    )
    assert live(store) == before
    assert "extra" not in live_schema(store)


def test_an_untouched_key_changed_since_the_plan_is_kept(planfile: Path, store: Path, empty_dir: Path):
    """Merge plans only check the keys they touch; a key set meanwhile by someone else survives."""
    p = SqliteProvider(store)
    p.patch_items({A: {"weather": "sunny", "other": 2, "theirs": "x"}})
    p.close()
    r = run(["apply", str(planfile), "--provider", f"sqlite:{store}"], cwd=empty_dir)
    assert r.code == 0, r.err
    assert live(store)[A] == {"weather": "fog", "other": 2, "theirs": "x"}
