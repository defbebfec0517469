"""Saved plans are untrusted input (SPEC §4 "Trust", "Stale plans"), through the real CLI on SQLite.

A plan file edited with its checksum recomputed is still refused where its changes need a flag or break a rule
(gates come from the changes, not from the file's flags); ``RECONCILER_PLAN_KEY`` signs and checks plans; a
plan for other manifests, one already applied, or one whose files moved or were renamed is stale.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reconciler.providers.sqlite import SqliteProvider
from tests.helpers.cli import run, write
from tests.helpers.states import make_snapshot, uid
from tests.helpers.workspace import seed_sqlite

WS = "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite, path: live.db}\n"
SCHEMA = (
    "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n"
    "  weather: {type: enum, values: [rain, sunny]}\n  legacy: {type: varchar}\n"
)
CAMS = (
    "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: cams\n"
    "files:\n  - glob: '*.jpg'\n    metadata: {weather: rain}\n"
)
A = uid("item:cams/a.jpg")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = write(tmp_path / "m", {"ws.yaml": WS, "schema.yaml": SCHEMA, "cams.yaml": CAMS})
    snap = make_snapshot(
        {
            "cams": [("a.jpg", {"weather": "sunny", "team.b": 1}), ("b.jpg", {"weather": "sunny"})],
            "other": [],
        },
        schema={"weather": {"ty": "enum", "values": ["rain", "sunny"]}, "legacy": {"ty": "varchar"}},
    )
    seed_sqlite(root / "live.db", snap)
    return root


def live(root: Path) -> dict[str, dict[str, Any]]:
    p = SqliteProvider(root / "live.db")
    try:
        f = p.resolve_folder("cams")
        return {
            li.rel_name: dict(li.item.metadata) for li in p.iter_items(f, recursive=False, children=False)
        }
    finally:
        p.close()


def save(root: Path, name: str = "plan.json", env: dict[str, str] | None = None) -> Path:
    r = run(["-C", str(root), "plan", "--out", str(root.parent / name)], env=env)
    assert r.code == 0, r.err
    return root.parent / name


def tamper(path: Path, edit: Any) -> None:
    """Edit the plan and recompute its checksum the way the tool does (what anyone can do without the key)."""
    data = json.loads(path.read_text())
    edit(data)
    body = {k: v for k, v in data.items() if k not in ("checksum", "signature")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    data["checksum"] = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    path.write_text(json.dumps(data))


def converge(root: Path) -> None:
    assert run(["-C", str(root), "apply", "--auto-approve", "--allow-destructive"]).code == 0
    final = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert final.code == 0 and "No changes." in final.out


def test_a_destructive_flag_flipped_in_the_file_does_not_bypass_allow_destructive(ws):
    (ws / "schema.yaml").write_text(
        SCHEMA.replace("  legacy: {type: varchar}\n", "  legacy: {type: varchar, deleted: soft}\n")
    )
    plan = save(ws)
    data = json.loads(plan.read_text())
    assert [c["destructive"] for c in data["schema"]["changes"]] == [True]

    def flip(d: dict[str, Any]) -> None:
        for c in d["schema"]["changes"]:
            c["destructive"] = False
        d["destructive_reasons"] = []

    tamper(plan, flip)
    before = live(ws)
    r = run(["-C", str(ws), "apply", str(plan)])
    assert r.code == 1
    assert r.err == (
        "Error: the plan has destructive changes and --allow-destructive was not given; nothing was written:\n"
        "  schema key 'legacy': soft delete\n"
    )
    assert live(ws) == before
    r = run(["-C", str(ws), "apply", str(plan), "--allow-destructive"])
    assert r.code == 0, r.err
    converge(ws)


def test_an_enum_value_removal_is_destructive_whatever_the_file_says(ws):
    (ws / "schema.yaml").write_text(SCHEMA.replace("[rain, sunny]", "[rain]"))
    (ws / "cams.yaml").write_text(CAMS)
    plan = save(ws)
    tamper(plan, lambda d: [c.update(destructive=False) for c in d["schema"]["changes"]])
    r = run(["-C", str(ws), "apply", str(plan)])
    assert r.code == 1
    assert "schema key 'weather': " in r.err and "nothing was written" in r.err


def test_a_value_the_schema_refuses_or_a_key_no_manifest_owns_is_refused(ws):
    plan = save(ws)

    def bad_value(d: dict[str, Any]) -> None:
        d["files"][0]["changes"][0]["after"] = "hail"

    tamper(plan, bad_value)
    before = live(ws)
    r = run(["-C", str(ws), "apply", str(plan)])
    assert r.code == 1
    assert r.err.startswith(
        "Error: the saved plan writes what the manifests and the schema do not allow; nothing was written:\n"
        "  cams/a.jpg: "
    ), r.err
    assert "hail" in r.err
    plan = save(ws, "plan2.json")

    def foreign_key(d: dict[str, Any]) -> None:
        d["files"][0]["changes"].append({"key": "team.b", "action": "remove", "before": 1, "after": None})

    tamper(plan, foreign_key)
    r = run(["-C", str(ws), "apply", str(plan)])
    assert r.code == 1
    assert r.err == (
        "Error: the saved plan writes what the manifests and the schema do not allow; nothing was written:\n"
        "  cams/a.jpg: key 'team.b' is not set or owned by any manifest in the directory\n"
    )
    assert live(ws) == before


def test_signed_plans(ws):
    key = {"RECONCILER_PLAN_KEY": "s3cret"}
    plan = save(ws, env=key)
    data = json.loads(plan.read_text())
    assert data["signature"].startswith("hmac-sha256:") and "s3cret" not in plan.read_text()
    unsigned = save(ws, "unsigned.json")
    r = run(["-C", str(ws), "apply", str(unsigned)], env=key)
    assert (r.code, r.err) == (
        1,
        f"Error: {unsigned}: the plan is not signed, and RECONCILER_PLAN_KEY is set: only plans saved by "
        "`reconciler plan --out` with the same RECONCILER_PLAN_KEY apply; refusing it\n",
    )
    r = run(["-C", str(ws), "apply", str(plan)], env={"RECONCILER_PLAN_KEY": "other"})
    assert (r.code, r.err) == (
        1,
        f"Error: {plan}: the plan's signature does not match RECONCILER_PLAN_KEY (altered, or signed with "
        "another key); refusing it\n",
    )
    tamper(plan, lambda d: d["files"][0]["changes"][0].update(after="sunny"))  # keeps the old signature
    r = run(["-C", str(ws), "apply", str(plan)], env=key)
    assert r.code == 1 and "signature does not match" in r.err
    good = save(ws, "good.json", env=key)
    r = run(["-C", str(ws), "apply", str(good)], env=key)
    assert r.code == 0, r.err
    converge(ws)


def test_a_plan_for_other_manifests_is_stale(ws):
    plan = save(ws)
    (ws / "cams.yaml").write_text(CAMS.replace("rain", "sunny"))
    before = live(ws)
    r = run(["-C", str(ws), "apply", str(plan)])
    assert r.code == 1
    assert r.err.startswith(
        f"Error: {plan}: the plan is stale: it was made for other manifests than those in {ws} (manifests_digest "
    )
    assert live(ws) == before


def test_an_old_plan_never_undoes_a_later_reviewed_apply(ws):
    old = save(ws, "old.json")  # weather: rain, reviewed but not applied
    first = save(ws, "first.json")
    assert run(["-C", str(ws), "apply", str(first)]).code == 0
    # A later reviewed change sets it back to sunny.
    (ws / "cams.yaml").write_text(CAMS.replace("rain", "sunny"))
    later = save(ws, "later.json")
    assert run(["-C", str(ws), "apply", str(later)]).code == 0
    after_later = live(ws)
    assert after_later["a.jpg"]["weather"] == "sunny"
    for replay in (old, first):  # other manifests; the second also already applied
        r = run(["-C", str(ws), "apply", str(replay)])
        assert r.code == 1 and "the plan is stale" in r.err, r.err
    (ws / "cams.yaml").write_text(CAMS)  # even back on the old manifests, an applied plan stays applied
    r = run(["-C", str(ws), "apply", str(first)])
    assert r.code == 1 and "it was already applied (journal " in r.err, r.err
    assert live(ws) == after_later


@pytest.mark.parametrize("how", ["moved", "renamed"])
def test_a_file_moved_or_renamed_since_the_plan_is_stale(ws, how):
    plan = save(ws)
    db = sqlite3.connect(ws / "live.db")
    if how == "moved":
        other = db.execute("SELECT uuid FROM folders WHERE path = 'other'").fetchone()[0]
        db.execute("UPDATE items SET folder = ? WHERE uuid = ?", (other, A))
    else:
        db.execute("UPDATE items SET name = 'a2.jpg' WHERE uuid = ?", (A,))
    db.commit()
    db.close()
    r = run(["-C", str(ws), "apply", str(plan)])
    assert r.code == 1
    why = "moved to another folder" if how == "moved" else "renamed to 'a2.jpg'"
    assert r.err == (
        "Error: the plan is stale: live state changed since it was made; nothing was written. "
        f"Run `reconciler plan` again.\n  cams/a.jpg: the file was {why} since the plan\n"
    )


REFUSED = (
    "Error: the saved plan writes what the manifests and the schema do not allow; nothing was written:\n"
)


def test_a_schema_change_or_a_key_move_the_manifests_do_not_make_is_refused(ws):
    """A forged rename would tombstone a declared key and drop its values from every file without
    --allow-destructive: schema changes are re-derived from the MetadataSchema manifest and the live schema,
    and the schema's own file changes may only move a renamed key's value."""
    plan = save(ws)

    def forge(d: dict[str, Any]) -> None:
        d["schema"]["changes"] = [
            {
                "key": "zz.gone",
                "action": "rename",
                "before": None,
                "after": {"type": "varchar"},
                "destructive": False,
                "reason": "",
                "renamed_from": "legacy",
            }
        ]
        b = next(f for f in d["files"] if f["name"] == "b.jpg")
        d["files"].append({**b, "manifest": "schema.yaml (renamed_from)", "name": "b.jpg"})
        d["files"][-1]["changes"] = [{"key": "weather", "action": "remove", "before": "sunny", "after": None}]
        d["files"] = [f for f in d["files"] if f is not b]

    tamper(plan, forge)
    before = live(ws)
    r = run(["-C", str(ws), "apply", str(plan)])
    assert r.code == 1
    assert r.err == (
        REFUSED + "  schema key 'zz.gone': the plan's change (rename) is not what the manifests make of the "
        "live schema\n"
        "  cams/b.jpg: key 'weather': not a move of a renamed key's value\n"
    )
    assert live(ws) == before
    converge(ws)


def test_each_file_change_is_judged_by_the_manifests_it_names(ws):
    """An overwrite manifest elsewhere does not let a merge manifest's file take any key; a file outside the
    named manifest's folder, or a manifest not in the directory, is refused."""
    (ws / "other.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: other\nmode: overwrite\n"
        "files:\n  - glob: '*'\n    metadata: {weather: rain}\n"
    )
    edits: dict[str, Any] = {
        "foreign key": lambda f: f["changes"].append(
            {"key": "team.b", "action": "remove", "before": 1, "after": None}
        ),
        "other folder": lambda f: f.update(folder="other"),
        "no such manifest": lambda f: f.update(manifest="nope.yaml"),
    }
    errors = {}
    before = live(ws)
    for n, (what, edit) in enumerate(edits.items()):
        plan = save(ws, f"plan{n}.json")

        def change(d: dict[str, Any], edit: Any = edit) -> None:
            edit(next(f for f in d["files"] if f["name"] == "a.jpg"))

        tamper(plan, change)
        r = run(["-C", str(ws), "apply", str(plan)])
        assert r.code == 1, what
        errors[what] = r.err
    assert errors == {
        "foreign key": REFUSED
        + "  cams/a.jpg: key 'team.b' is not set or owned by any manifest in the directory\n",
        "other folder": REFUSED + "  other/a.jpg: not in folder 'cams', the folder of cams.yaml\n",
        "no such manifest": REFUSED
        + "  cams/a.jpg: the plan names manifest 'nope.yaml', which is not in the directory\n",
    }
    assert live(ws) == before
    converge(ws)


def test_numbers_json_cannot_hold_and_bad_reserved_keys_are_refused(ws):
    (ws / "cams.yaml").write_text(CAMS.replace("folder: cams\n", "folder: cams\nmode: overwrite\n"))
    plan = save(ws)

    def add(d: dict[str, Any]) -> None:
        a = next(f for f in d["files"] if f["name"] == "a.jpg")
        a["changes"] += [
            {"key": "keyframes", "action": "add", "before": None, "after": [-1, "a"]},
            {"key": "zz.big", "action": "add", "before": None, "after": float("inf")},
            {"key": "zz.nan", "action": "add", "before": None, "after": [1.5, float("nan")]},
        ]

    tamper(plan, add)
    before = live(ws)
    r = run(["-C", str(ws), "apply", str(plan)])
    assert r.code == 1
    assert r.err == (
        REFUSED + "  cams/a.jpg: key 'zz.big': NaN or an infinity, which JSON cannot hold\n"
        "  cams/a.jpg: key 'zz.nan': NaN or an infinity, which JSON cannot hold\n"
        "  cams/a.jpg: keyframes: item 0 must be a non-negative number of seconds (keyframe_mode: seconds), "
        "got the number -1\n"
    )
    assert live(ws) == before
    converge(ws)


def test_a_journal_edited_to_restore_values_the_schema_refuses_is_refused(ws):
    """A journal is untrusted input too: each value a rollback would restore is checked as a saved plan's."""
    assert run(["-C", str(ws), "apply", "--auto-approve"]).code == 0
    (journal,) = (ws / ".reconciler" / "journal").glob("*.jsonl")
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    for rec in lines:
        if rec.get("record") == "file" and rec["uuid"] == A:
            rec["before"] = {"weather": "hail", "team.b": float("nan")}
    edited = ws.parent / "edited.jsonl"
    edited.write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    before = live(ws)
    r = run(["-C", str(ws), "rollback", str(edited), "--auto-approve"])
    assert r.code == 1
    assert r.err.startswith(
        "Error: the rollback writes what the manifests and the schema do not allow; nothing was written:\n"
    ), r.err
    assert "  cams/a.jpg: key 'team.b': NaN or an infinity, which JSON cannot hold\n" in r.err
    assert "hail" in r.err
    assert live(ws) == before
    r = run(["-C", str(ws), "rollback", str(journal), "--auto-approve"])
    assert r.code == 0, r.err
    assert live(ws) == {"a.jpg": {"weather": "sunny", "team.b": 1}, "b.jpg": {"weather": "sunny"}}
    converge(ws)
