"""Conflicts are found before anything is written, whatever the flags (SQLite, through the real CLI).

``owns`` patterns against keys another manifest gives, ``--target`` plans against the manifests they leave
out, names that two live files share, and a targeted plan whose values need the schema change it leaves out.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.helpers.cli import run, write

WS = "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite, path: live.db, seed: live.json}\n"
SCH = (
    "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  weather: {type: enum, values: [rain, sunny]}\n"
    "  team.a: varchar\n  team.b: varchar\n  n: number\n"
)
FM = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: f\n"
F = "f0000000-0000-4000-8000-000000000001"
X = "f0000000-0000-4000-8000-000000000002"
A = "a0000000-0000-4000-8000-000000000001"
B = "a0000000-0000-4000-8000-000000000002"
C = "a0000000-0000-4000-8000-000000000003"
WIRE = {
    "weather": {"ty": "enum", "values": ["rain", "sunny"]},
    "team.a": {"ty": "variant", "hint": "varchar"},
    "team.b": {"ty": "variant", "hint": "varchar"},
    "n": {"ty": "variant", "hint": "number"},
}


def item(uuid: str, name: str, md: dict[str, object], folder: str = F, **extra: str) -> dict[str, object]:
    return {
        "uuid": uuid,
        "folder": folder,
        "name": name,
        "item_type": "image",
        "client_metadata": md,
        **extra,
    }


def workspace(tmp_path: Path, items: list[dict[str, object]], **files: str) -> Path:
    live = {
        "format_version": "1",
        "schema": WIRE,
        "folders": [{"uuid": F, "parent": None, "name": "f"}, {"uuid": X, "parent": F, "name": "x"}],
        "items": items,
    }
    base = {"ws.yaml": WS, "s.yaml": SCH, "live.json": json.dumps(live)}
    base.update({k.replace("__", "."): v for k, v in files.items()})
    return write(tmp_path / "m", base)


def live_metadata(root: Path) -> dict[str, object]:
    db = sqlite3.connect(root / "live.db")
    try:
        return {u: json.loads(md) for u, md in db.execute("SELECT uuid, metadata FROM items ORDER BY uuid")}
    finally:
        db.close()


def settle(root: Path) -> None:
    """Apply, then a second plan shows no changes."""
    res = run(["-C", str(root), "apply", "--auto-approve"])
    assert res.code == 0, res.err
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.err) == (0, ""), again.out


ONE = "1 problem found; nothing was written.\n"
IMPORTED = FM + 'owns: ["*"]\nfiles:\n  - name: a.jpg\n    metadata: {team.a: x}\n'


def test_owns_star_and_another_manifests_key_fail_validate_and_plan(tmp_path):
    # What `import` writes (owns every key) next to team B's glob: B's key would be pruned by the next plan.
    root = workspace(
        tmp_path,
        [item(A, "a.jpg", {"team.a": "x"})],
        imported__yaml=IMPORTED,
        team_b__yaml=FM + "files:\n  - glob: '*.jpg'\n    metadata: {team.b: y}\n",
    )
    res = run(["-C", str(root), "validate"])
    assert (res.code, res.out, res.err) == (
        1,
        "",
        "Error: team_b.yaml:5:11: conflict: manifests imported.yaml and team_b.yaml both own 'team.b' on name "
        "'a.jpg' in folder 'f' (other selector at imported.yaml:6:11)\n" + ONE,
    )
    for command in (["plan"], ["apply", "--auto-approve"]):
        res = run(["-C", str(root), *command])
        assert (res.code, res.out, res.err) == (
            1,
            "",
            "Error: team_b.yaml:1:1: conflict: imported.yaml and team_b.yaml both own key 'team.b' on f/a.jpg\n"
            + ONE,
        )
    assert live_metadata(root) == {A: {"team.a": "x"}}
    # Narrowing owns resolves it; B's key is written and stays.
    write(root, {"imported.yaml": IMPORTED.replace('["*"]', '["team.a"]')})
    assert run(["-C", str(root), "validate"]).code == 0
    settle(root)
    assert live_metadata(root) == {A: {"team.a": "x", "team.b": "y"}}


def test_owns_pattern_against_a_key_given_by_uuid_fails_the_plan(tmp_path):
    # Offline, a uuid selector and a name selector cannot be matched: the plan finds it on the live file.
    root = workspace(
        tmp_path,
        [item(A, "a.jpg", {"team.a": "x"})],
        imported__yaml=IMPORTED,
        team_b__yaml=FM + f"files:\n  - uuid: {A}\n    metadata: {{team.b: y}}\n",
    )
    assert run(["-C", str(root), "validate"]).code == 0
    res = run(["-C", str(root), "plan"])
    assert (res.code, res.err) == (
        1,
        "Error: team_b.yaml:1:1: conflict: imported.yaml and team_b.yaml both own key 'team.b' on f/a.jpg\n"
        + ONE,
    )


def test_a_targeted_plan_checks_the_manifests_it_leaves_out(tmp_path):
    root = workspace(
        tmp_path,
        [item(A, "a.jpg", {}), item(B, "b.jpg", {})],
        a__yaml=FM + "files:\n  - glob: '*.jpg'\n    metadata: {n: 1}\n",
        b__yaml=FM + "files:\n  - glob: 'a.*'\n    metadata: {n: 2}\n",
        o__yaml="apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: f\nmode: overwrite\n"
        "files:\n  - glob: 'b.*'\n    metadata: {team.a: z}\n",
    )
    res = run(["-C", str(root), "plan", "--target", "a.yaml"])
    assert (res.code, res.out, res.err) == (
        1,
        "",
        "Error: b.yaml:1:1: conflict: a.yaml and b.yaml both own key 'n' on f/a.jpg\n"
        "Error: o.yaml:1:1: conflict: a.yaml and o.yaml select the same file f/b.jpg; an overwrite manifest must "
        "be the only manifest on its files\n2 problems found; nothing was written.\n",
    )
    # The same for a folder target and for apply; nothing is written.
    res = run(["-C", str(root), "apply", "--auto-approve", "--target", "folder:f"])
    assert res.code == 1 and "conflict: a.yaml and b.yaml both own key 'n' on f/a.jpg" in res.err
    assert live_metadata(root) == {A: {}, B: {}}
    write(root, {"b.yaml": FM + "files:\n  - glob: 'a.*'\n    metadata: {team.b: q}\n"})
    (root / "o.yaml").unlink()
    res = run(["-C", str(root), "plan", "--target", "a.yaml"])
    assert res.code == 0, res.err
    assert "team.b" not in res.out  # b.yaml is not planned, only checked
    settle(root)
    assert live_metadata(root) == {A: {"n": 1, "team.b": "q"}, B: {"n": 1}}


def test_a_name_two_live_files_share_is_an_error_naming_both(tmp_path):
    root = workspace(
        tmp_path,
        [item(A, "a.jpg", {}), item(B, "a.jpg", {}), item(C, "c.jpg", {})],
        a__yaml=FM + "files:\n  - name: a.jpg\n    metadata: {n: 1}\n",
    )
    res = run(["-C", str(root), "plan"])
    assert (res.code, res.err) == (
        1,
        f"Error: a.yaml:5:11: name 'a.jpg' matches 2 files in folder 'f' ({A} and {B}); "
        "select each by uuid instead\n" + ONE,
    )
    # A source row naming it is the same error.
    write(
        root,
        {
            "rows.jsonl": '{"name": "c.jpg", "metadata": {"n": 3}}\n{"name": "a.jpg", "metadata": {"n": 1}}\n',
            "a.yaml": FM + "source: rows.jsonl\n",
        },
    )
    res = run(["-C", str(root), "plan"])
    assert (res.code, res.err) == (
        1,
        f"Error: rows.jsonl:2: name 'a.jpg' matches 2 files in folder 'f' ({A} and {B}); "
        "select each by uuid instead\n" + ONE,
    )
    assert live_metadata(root) == {A: {}, B: {}, C: {}}
    write(root, {"rows.jsonl": f'{{"uuid": "{A}", "metadata": {{"n": 1}}}}\n'})
    settle(root)
    assert live_metadata(root) == {A: {"n": 1}, B: {}, C: {}}


def test_a_subfolder_path_and_an_item_of_that_name_are_two_files(tmp_path):
    # 'x/y.jpg' is both the file y.jpg of subfolder x and an item named 'x/y.jpg' directly in f.
    root = workspace(
        tmp_path,
        [item(A, "x/y.jpg", {}), item(B, "y.jpg", {}, folder=X)],
        a__yaml=FM + "recursive: true\nfiles:\n  - name: x/y.jpg\n    metadata: {n: 1}\n",
    )
    res = run(["-C", str(root), "plan"])
    assert (res.code, res.err) == (
        1,
        f"Error: a.yaml:6:11: name 'x/y.jpg' matches 2 files in folder 'f' ({A} and {B}); "
        "select each by uuid instead\n" + ONE,
    )
    write(root, {"a.yaml": FM + f"recursive: true\nfiles:\n  - uuid: {B}\n    metadata: {{n: 1}}\n"})
    settle(root)
    assert live_metadata(root) == {A: {}, B: {"n": 1}}


def test_a_top_level_name_and_a_group_child_of_that_path_are_two_files(tmp_path):
    g = "a0000000-0000-4000-8000-00000000000a"
    root = workspace(
        tmp_path,
        [item(g, "grp", {}), item(A, "grp/c1.png", {}), item(B, "c1.png", {}, parent_item=g)],
        a__yaml=FM + "children: true\nfiles:\n  - name: grp/c1.png\n    metadata: {n: 1}\n",
    )
    res = run(["-C", str(root), "plan"])
    assert (res.code, res.err) == (
        1,
        f"Error: a.yaml:6:11: name 'grp/c1.png' matches 2 files in folder 'f' ({A} and {B}); "
        "select each by uuid instead\n" + ONE,
    )
    write(root, {"a.yaml": FM + f"children: true\nfiles:\n  - uuid: {A}\n    metadata: {{n: 1}}\n"})
    settle(root)
    assert live_metadata(root) == {g: {}, A: {"n": 1}, B: {}}


def test_a_targeted_plan_that_needs_the_left_out_schema_change_says_so(tmp_path):
    schema = SCH.replace("values: [rain, sunny]", "values: [rain, sunny, snow]")
    root = workspace(
        tmp_path,
        [item(A, "a.jpg", {}), item(B, "b.jpg", {})],
        s__yaml=schema,
        a__yaml=FM + "files:\n  - name: a.jpg\n    metadata: {weather: snow}\n",
        b__yaml=FM + "source: rows.jsonl\n",
        rows__jsonl='{"name": "b.jpg", "metadata": {"weather": "snow"}}\n',
    )
    hint = (
        "weather: the string 'snow' is valid only with the change to 'weather' that the MetadataSchema manifest "
        "declares, and this plan leaves the schema out: add --target schema (or plan without --target)"
    )
    res = run(["-C", str(root), "plan", "--target", "a.yaml"])
    assert (res.code, res.out, res.err) == (1, "", f"Error: a.yaml:6:25: {hint}\n" + ONE)
    res = run(["-C", str(root), "plan", "--target", "b.yaml"])
    assert (res.code, res.out, res.err) == (
        1,
        "",
        f"Error: b.yaml:1:1: {hint} (1 file(s), e.g. f/b.jpg)\n" + ONE,
    )
    assert "is not one of the enum values" not in res.err
    # With the schema in the plan, both go through.
    res = run(["-C", str(root), "apply", "--auto-approve", "--target", "schema", "--target", "a.yaml"])
    assert res.code == 0, res.err
    settle(root)
    assert live_metadata(root) == {A: {"weather": "snow"}, B: {"weather": "snow"}}
