"""End to end through the real CLI on the embedded store: bad input, plan, apply, re-plan."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.helpers.cli import copy_demo, run, write

WS = "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite, path: live.db, seed: live.json}\n"
SCH = (
    "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  weather: {type: enum, values: [rain, sunny]}\n"
    "  clip: {type: embedding, size: 3}\n  when: datetime\n  owner: uuid\n  ok: boolean\n  n: number\n"
)
FM = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: f\n"
F_UUID = "f0000000-0000-4000-8000-000000000001"
A_UUID = "a0000000-0000-4000-8000-000000000001"
LIVE = {
    "format_version": "1",
    "schema": {},
    "folders": [{"uuid": F_UUID, "parent": None, "name": "f"}],
    "items": [
        {"uuid": A_UUID, "folder": F_UUID, "name": "a.jpg", "item_type": "image",
         "client_metadata": {"n": 1, "theirs": "keep"}},
    ],
}  # fmt: skip


def workspace(tmp_path, **files):
    base = {"ws.yaml": WS, "s.yaml": SCH, "live.json": json.dumps(LIVE)}
    for name, text in files.items():
        name = name.replace("__", ".")
        if text is None:
            base.pop(name)
        else:
            base[name] = text
    return write(tmp_path / "m", base)


def live_metadata(root):
    db = sqlite3.connect(root / "live.db")
    try:
        return dict(
            (u, json.loads(md)) for u, md in db.execute("SELECT uuid, metadata FROM items ORDER BY uuid")
        )
    finally:
        db.close()


BAD = {
    "malformed YAML": (
        {"a__yaml": "apiVersion: reconciler/v1\nkind: [unclosed\n"},
        "a.yaml:3:1: invalid YAML: expected ',' or ']', but got the end of the file "
        "(while parsing a flow sequence started at line 2)",
    ),
    "tab indentation": (
        {"a__yaml": "apiVersion: reconciler/v1\nkind: Workspace\nprovider:\n\ttype: sqlite\n"},
        "a.yaml:4:1: tab characters are not allowed for indentation (indent with spaces)",
    ),
    "unknown field": (
        {"a__yaml": FM + "files: []\nlable: x\n"},
        "a.yaml:5:1: unknown field 'lable' (allowed fields: apiVersion, kind, folder, dataset, recursive, children, mode, "
        "owns, on_missing, defaults, files, source)",
    ),
    "wrong apiVersion": (
        {"a__yaml": "apiVersion: reconciler/v2\nkind: FileMetadata\nfolder: f\n"},
        "a.yaml:1:13: unsupported apiVersion 'reconciler/v2' (expected 'reconciler/v1')",
    ),
    "wrong kind": (
        {"a__yaml": "apiVersion: reconciler/v1\nkind: Dataset\n"},
        "a.yaml:2:7: unknown kind 'Dataset' (expected one of FileMetadata, MetadataSchema, Workspace)",
    ),
    "two Workspaces": (
        {"b__yaml": WS},
        "ws.yaml:1:1: a second Workspace: there must be exactly one (the other is at b.yaml:1:1)",
    ),
    "two MetadataSchemas": (
        {"s2__yaml": SCH},
        "s2.yaml:1:1: a second MetadataSchema: there may be at most one (the other is at s.yaml:1:1)",
    ),
    "invalid key name": (
        {"s__yaml": "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  bad/key: text\n"},
        "s.yaml:4:3: invalid metadata key 'bad/key': only letters, digits, '-', '_', '.' and spaces are allowed",
    ),
    "reserved key in the schema": (
        {"s__yaml": "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  keyframes: text\n"},
        "s.yaml:4:3: invalid metadata key 'keyframes': 'keyframes' is reserved",
    ),
    "enum value not in the enum": (
        {"a__yaml": FM + "files:\n  - name: a.jpg\n    metadata: {weather: hail}\n"},
        "a.yaml:6:25: weather: 'hail' is not one of the enum values [rain, sunny]",
    ),
    "embedding of the wrong length": (
        {"a__yaml": FM + "files:\n  - name: a.jpg\n    metadata: {clip: [1, 2]}\n"},
        "a.yaml:6:22: clip: embedding needs 3 numbers, got 2",
    ),
    "non-ISO datetime": (
        {"a__yaml": FM + "files:\n  - name: a.jpg\n    metadata: {when: yesterday}\n"},
        "a.yaml:6:22: when: 'yesterday' is not an ISO 8601 datetime",
    ),
    "bad UUID": (
        {"a__yaml": FM + "files:\n  - name: a.jpg\n    metadata: {owner: not-a-uuid}\n"},
        "a.yaml:6:23: owner: 'not-a-uuid' is not a UUID",
    ),
    "yes where a boolean is expected": (
        {"a__yaml": FM + "files:\n  - name: a.jpg\n    metadata: {ok: yes}\n"},
        "a.yaml:6:20: ok: expected a boolean, got the string 'yes' (YAML 1.2: write true or false)",
    ),
    "a number given as a string": (
        {"a__yaml": FM + 'files:\n  - name: a.jpg\n    metadata: {n: "5"}\n'},
        "a.yaml:6:19: n: expected a number, got the string '5'",
    ),
    "duplicate exact selectors": (
        {
            "a__yaml": FM
            + "files:\n  - name: a.jpg\n    metadata: {n: 1}\n  - name: a.jpg\n    metadata: {n: 2}\n"
        },
        "a.yaml:7:11: duplicate selector name 'a.jpg' (first at line 5); give each file one entry",
    ),
    "a selector with no glob/name/uuid": (
        {"a__yaml": FM + "files:\n  - metadata: {n: 1}\n"},
        "a.yaml:5:5: a files entry needs one of glob, name or uuid",
    ),
    "a name that matches no file": (
        {"a__yaml": FM + "files:\n  - name: zzz.jpg\n    metadata: {n: 1}\n"},
        "a.yaml:5:11: name 'zzz.jpg' matches no file in folder 'f' (set on_missing: warn or ignore to allow)",
    ),
    "an overwrite manifest and another manifest on the same file": (
        {
            "a__yaml": FM + "mode: overwrite\nfiles:\n  - name: a.jpg\n    metadata: {n: 1}\n",
            "b__yaml": FM + "files:\n  - glob: '*.jpg'\n    metadata: {ok: true}\n",
        },
        "b.yaml:1:1: conflict: a.yaml and b.yaml select the same file f/a.jpg; "
        "an overwrite manifest must be the only manifest on its files",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_bad_input_is_one_located_error_and_nothing_is_written(tmp_path, case, command):
    files, message = BAD[case]
    root = workspace(tmp_path, **files)
    # From the manifest directory's parent, every location is shown relative to it (m/a.yaml:5:11).
    args = ["-C", "m", command] + (["--auto-approve"] if command == "apply" else [])
    res = run(args, cwd=tmp_path)
    assert (res.code, res.out, res.err) == (
        1,
        "",
        f"Error: m/{message}\n1 problem found; nothing was written.\n",
    )
    if (root / "live.db").exists():
        assert live_metadata(root) == {A_UUID: {"n": 1, "theirs": "keep"}}


def test_no_workspace(tmp_path):
    workspace(tmp_path, ws__yaml=None)
    res = run(["-C", "m", "validate"], cwd=tmp_path)
    assert (res.code, res.err) == (
        1,
        "Error: m/: no Workspace manifest found (add one document with kind: Workspace)\n"
        "1 problem found; nothing was written.\n",
    )


def test_every_problem_is_reported_in_one_pass(tmp_path):
    bad = (
        FM
        + "lable: x\nfiles:\n  - name: a.jpg\n    metadata:\n      ok: yes\n      n: '5'\n  - metadata: {}\n"
    )
    root = workspace(tmp_path, a__yaml=bad, b__yaml="kind: [\n")
    res = run(["-C", str(root), "validate"], cwd=root)
    assert res.code == 1
    assert res.err.splitlines() == [
        "Error: a.yaml:4:1: unknown field 'lable' (allowed fields: apiVersion, kind, folder, dataset, recursive, children, "
        "mode, owns, on_missing, defaults, files, source)",
        "Error: a.yaml:8:11: ok: expected a boolean, got the string 'yes' (YAML 1.2: write true or false)",
        "Error: a.yaml:9:10: n: expected a number, got the string '5'",
        "Error: a.yaml:10:5: a files entry needs one of glob, name or uuid",
        "Error: b.yaml:2:1: invalid YAML: expected the node content, but found the end of the file "
        "(while parsing a flow node)",
        "5 problems found; nothing was written.",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a database " * 200, "not a reconciler SQLite database (file is not a database)"),
    ],
)
def test_sqlite_file_that_is_not_a_database(tmp_path, content, message):
    root = workspace(tmp_path)
    (root / "live.db").write_bytes(content)
    res = run(["-C", str(root), "plan"])
    assert (res.code, res.out) == (1, "")
    assert res.err == f"Error: {root / 'live.db'}: {message}\n"


def test_sqlite_unknown_layout_version(tmp_path):
    root = workspace(tmp_path)
    assert run(["-C", str(root), "plan"]).code == 0
    db = sqlite3.connect(root / "live.db")
    db.execute("UPDATE meta SET value = '7' WHERE key = 'layout_version'")
    db.commit()
    db.close()
    res = run(["-C", str(root), "plan"])
    assert (res.code, res.err) == (
        1,
        f"Error: {root / 'live.db'}: unknown database layout version '7' (this reconciler knows '1'); "
        "upgrade reconciler or recreate the database\n",
    )


def test_sqlite_locked_database(tmp_path):
    root = workspace(tmp_path, a__yaml=FM + "files:\n  - name: a.jpg\n    metadata: {n: 2}\n")
    assert run(["-C", str(root), "plan"]).code == 0
    blocker = sqlite3.connect(root / "live.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        res = run(["-C", str(root), "apply", "--auto-approve"])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert res.code == 1
    assert res.err.endswith(
        f"Error: {root / 'live.db'}: the database is locked by another process (another apply running?); "
        "try again when it ends\n"
    )
    assert live_metadata(root) == {A_UUID: {"n": 1, "theirs": "keep"}}


def test_bad_flag_is_exit_1_one_line(tmp_path):
    res = run(["plan", "--format", "yaml"])
    assert (res.code, res.out) == (1, "")
    assert res.err == (
        "Error: Invalid value for '--format': 'yaml' is not one of 'text', 'json', 'markdown'. "
        "(see 'reconciler plan --help')\n"
    )
    res = run(["-C", str(tmp_path / "nope"), "plan"])
    assert res.err == (
        f"Error: manifest directory {str(tmp_path / 'nope')!r} does not exist (use -C/--dir to point at it)\n"
    )


def test_merge_keeps_foreign_keys_and_plan_after_apply_is_empty(tmp_path):
    root = workspace(tmp_path, a__yaml=FM + "files:\n  - name: a.jpg\n    metadata: {n: 2, ok: true}\n")
    assert run(["-C", str(root), "validate"]).out == (
        "Success: the manifests are valid (1 Workspace, 1 MetadataSchema, 1 FileMetadata).\n"
    )
    plan = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (plan.code, plan.out) == (
        2,
        "Schema:\n"
        "  + clip                  embedding(3)\n"
        "  + n                     number\n"
        "  + ok                    boolean\n"
        "  + owner                 uuid\n"
        "  + weather               enum[rain, sunny]\n"
        "  + when                  datetime\n"
        "\n"
        "Folder f:\n"
        "  ~ a.jpg                 merge\n"
        "      ~ n                 1 -> 2\n"
        "      + ok                true\n"
        "\n"
        "Plan: schema 6 to add, 0 to change, 0 to delete; files 1 to update (1 merge, 0 overwrite), 0 unchanged.\n",
    )
    applied = run(["-C", str(root), "apply"], input="yes\n")
    assert applied.code == 0, applied.err
    assert "Apply complete: schema written; 1 file(s) written.\n" in applied.out
    assert live_metadata(root) == {A_UUID: {"n": 2, "ok": True, "theirs": "keep"}}
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.out) == (
        0,
        "No changes. Live state matches the manifests.\n\n"
        "Plan: schema 0 to add, 0 to change, 0 to delete; files 0 to update (0 merge, 0 overwrite), 1 unchanged.\n",
    )


def test_overwrite_removes_foreign_keys(tmp_path):
    root = workspace(
        tmp_path, a__yaml=FM + "mode: overwrite\nfiles:\n  - name: a.jpg\n    metadata: {n: 1}\n"
    )
    res = run(["-C", str(root), "apply", "--auto-approve"])
    assert res.code == 0, res.err
    assert '  ~ a.jpg                 overwrite\n      - theirs            "keep"\n' in res.out
    assert live_metadata(root) == {A_UUID: {"n": 1}}
    assert run(["-C", str(root), "plan", "--detailed-exitcode"]).code == 0


def test_approval_other_than_yes_cancels(tmp_path):
    root = workspace(tmp_path, a__yaml=FM + "files:\n  - name: a.jpg\n    metadata: {n: 2}\n")
    res = run(["-C", str(root), "apply"], input="y\n")
    assert res.code == 1
    assert res.err == "Apply cancelled. Nothing was written.\n"
    assert live_metadata(root) == {A_UUID: {"n": 1, "theirs": "keep"}}
    res = run(["-C", str(root), "apply"], input="")  # no terminal, no answer
    assert (res.code, res.err) == (1, "Apply cancelled. Nothing was written.\n")


def test_destructive_guard(tmp_path):
    root = workspace(tmp_path)
    assert run(["-C", str(root), "apply", "--auto-approve"]).code == 0
    smaller = SCH.replace("values: [rain, sunny]", "values: [rain]")
    write(root, {"s.yaml": smaller})
    res = run(["-C", str(root), "apply", "--auto-approve"])
    assert res.code == 1
    assert "  ~ weather               enum: - sunny   [destructive]\n" in res.out
    assert res.err == (
        "Error: the plan has destructive changes (marked above); re-run with --allow-destructive to apply them. "
        "Nothing was written.\n"
    )
    res = run(["-C", str(root), "apply", "--auto-approve", "--allow-destructive"])
    assert res.code == 0, res.err
    assert run(["-C", str(root), "plan", "--detailed-exitcode"]).code == 0


def test_target_limits_the_plan(tmp_path):
    root = workspace(
        tmp_path,
        a__yaml=FM + "files:\n  - name: a.jpg\n    metadata: {n: 2}\n",
    )
    res = run(["-C", str(root), "plan", "--target", "schema"])
    assert "Folder f:" not in res.out and "Plan: schema 6 to add" in res.out
    # Without the schema in the plan, 'n' is written before the live schema has it: said, not hidden.
    res = run(["-C", str(root), "plan", "--target", "folder:f"], cwd=root)
    assert (res.code, res.err) == (
        0,
        "Warning: a.yaml:6:19: key 'n' is declared in the manifests but not in the live schema, and this plan "
        "does not change the schema (add --target schema)\n",
    )
    assert res.out == (
        "Folder f:\n  ~ a.jpg                 merge\n      ~ n                 1 -> 2\n\n"
        "Plan: schema 0 to add, 0 to change, 0 to delete; files 1 to update (1 merge, 0 overwrite), 0 unchanged.\n"
    )
    res = run(["-C", str(root), "plan", "--target", "nope.yaml"])
    assert (res.code, res.err) == (
        1,
        "Error: --target nope.yaml: not a FileMetadata manifest (known: a.yaml)\n",
    )


def test_demo_workspace_plan_apply_plan(tmp_path):
    root = copy_demo(tmp_path)
    first = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert first.code == 2, first.err
    assert first.out.endswith(
        "Plan: schema 6 to add, 1 to change, 0 to delete; files 40 to update (34 merge, 6 overwrite), 6 unchanged.\n"
    )
    assert run(["-C", str(root), "apply", "--auto-approve"]).code == 0
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.out.splitlines()[0]) == (0, "No changes. Live state matches the manifests.")


def test_validate_reads_source_rows(tmp_path):
    root = workspace(
        tmp_path,
        a__yaml=FM + "source: rows.csv\n",
        rows__csv="name,n,ok\na.jpg,1,true\nb.jpg,many,true\n",
    )
    res = run(["-C", str(root), "validate"], cwd=root)
    assert (res.code, res.out, res.err) == (
        1,
        "",
        "Error: rows.csv:3: n: 'many' is not a number\n1 problem found; nothing was written.\n",
    )
