"""The safety features through the real command line: limits and their flags, renames, rollback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.journal import read_journal
from reconciler.providers.sqlite import SqliteProvider
from tests.helpers.cli import run
from tests.helpers.states import make_snapshot, uid
from tests.helpers.workspace import file_manifest, seed_sqlite, sqlite_workspace, write_dir

DT = {"ty": "variant", "hint": "datetime"}
SCHEMA = (
    "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n"
    "  capture.when: {type: datetime, renamed_from: capture.time}\n  tag: text\n"
)
CAMS = file_manifest("cams", "*.jpg", "{tag: t}", extra='owns: ["capture.*"]\n')


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """12 cams with a key the manifest prunes, one file elsewhere holding a key being renamed."""
    snap = make_snapshot(
        {
            "cams": [(f"c{i:02d}.jpg", {"capture.site": "old", "keep": i}) for i in range(12)],
            "other": [("o.jpg", {"capture.time": "2024-01-01T00:00:00Z"})],
        },
        {"capture.time": DT},
    )
    seed_sqlite(tmp_path / "live.db", snap)
    limits = "  limits:\n    max_files: 10\n"
    return write_dir(
        tmp_path / "m",
        {
            "workspace.yaml": sqlite_workspace("../live.db", limits=limits),
            "cams.yaml": CAMS,
            "schema.yaml": SCHEMA,
        },
    )


def live(ws: Path, name: str) -> dict:
    p = SqliteProvider(ws.parent / "live.db")
    try:
        u = uid(f"item:{name}")
        return p.get_items([u])[u].metadata
    finally:
        p.close()


LIMIT_ERROR = (
    "Error: blast-radius limit exceeded: the plan updates 13 files, more than settings.limits.max_files = 10. "
    "Nothing was written. Check the manifests, or re-run with --override-limits if this is intended.\n"
)
SHARE = (
    "cams.yaml removes owned keys from more than settings.limits.max_removed_share = 0.5 of the 12 files it "
    "selects: capture.site from 12 (an emptied manifest or source, or a glob that selects too much?)"
)


def converges(ws: Path) -> None:
    """``apply`` brings live state to the manifests and a final ``plan`` shows no changes."""
    r = run(["-C", str(ws), "apply", "--auto-approve", "--override-limits", "--allow-destructive"], cwd=ws)
    assert r.code == 0, r.err
    final = run(["-C", str(ws), "plan", "--detailed-exitcode"], cwd=ws)
    assert final.code == 0 and "No changes." in final.out


def apply_all(ws: Path) -> Path:
    r = run(["-C", str(ws), "apply", "--auto-approve", "--override-limits", "--allow-destructive"], cwd=ws)
    assert r.code == 0, r.err
    (journal,) = (ws / ".reconciler" / "journal").glob("*.jsonl")
    assert f"Journal: {journal}" in r.out
    return journal


def test_limits_refuse_plan_and_apply_until_overridden(ws):
    for cmd in (["plan"], ["plan", "--out", str(ws / "p.json")], ["apply", "--auto-approve"]):
        r = run(["-C", str(ws), *cmd], cwd=ws)
        assert (r.code, r.out) == (1, "")
        assert r.err.startswith(LIMIT_ERROR)
    assert not (ws / "p.json").exists()
    r = run(["-C", str(ws), "plan", "--override-limits", "--out", str(ws / "p.json")], cwd=ws)
    assert r.code == 0
    assert f"Destructive: {SHARE}\n" in r.out
    assert (
        "Warning: workspace.yaml:1:1: the plan updates 13 files, more than settings.limits.max_files = 10 "
        "(allowed by --override-limits)\n"
    ) in r.err
    saved = json.loads((ws / "p.json").read_text())
    assert saved["destructive_reasons"] == [SHARE]
    assert any("allowed by --override-limits" in w["message"] for w in saved["warnings"])
    r = run(["-C", str(ws), "apply", str(ws / "p.json")], cwd=ws)
    assert r.code == 1
    assert r.err == (
        "Error: the plan has destructive changes and --allow-destructive was not given; nothing was written:\n"
        f"  {SHARE}\n"
    )
    r = run(["-C", str(ws), "apply", "--auto-approve", "--override-limits"], cwd=ws)
    assert r.code == 1
    assert "re-run with --allow-destructive" in r.err
    # The limits are re-derived from the saved plan's changes at apply time (the plan's warnings are not
    # trusted): applying it needs --override-limits again.
    r = run(["-C", str(ws), "apply", str(ws / "p.json"), "--allow-destructive"])
    assert r.code == 1
    assert r.err == (
        "Error: blast-radius limit exceeded: the plan updates 13 files, more than settings.limits.max_files = 10. "
        "Nothing was written. Check the manifests, or re-run with --override-limits if this is intended.\n"
    )
    r = run(["-C", str(ws), "apply", str(ws / "p.json"), "--allow-destructive", "--override-limits"])
    assert r.code == 0, r.err
    assert "Apply complete: schema written; 13 file(s) written." in r.out
    assert live(ws, "cams/c00.jpg") == {"keep": 0, "tag": "t"}
    final = run(["-C", str(ws), "plan", "--detailed-exitcode"], cwd=ws)
    assert final.code == 0 and "No changes." in final.out


def test_rename_through_the_cli(ws):
    r = run(["-C", str(ws), "plan", "--override-limits"], cwd=ws)
    assert (
        "  ~ capture.when          datetime, renamed from capture.time; values move to it on 1 file(s)\n"
        in r.out
    )
    assert (
        'Folder other:\n  ~ o.jpg                 merge\n      - capture.time      "2024-01-01T00:00:00Z"\n'
        '      + capture.when      "2024-01-01T00:00:00Z"\n'
    ) in r.out
    assert (
        "Warning: schema.yaml:4:3: renamed_from 'capture.time': read every folder (2 folders, 13 files, "
        in r.err
    )
    apply_all(ws)
    assert live(ws, "other/o.jpg") == {"capture.when": "2024-01-01T00:00:00Z"}
    final = run(["-C", str(ws), "plan", "--detailed-exitcode"], cwd=ws)
    assert final.code == 0 and "No changes." in final.out
    assert "; 0 to move. Remove renamed_from once no file holds the old key." in final.err
    # A manifest that still sets the old key is an error at its line.
    (ws / "old.yaml").write_text(file_manifest("other", "o.jpg", "{capture.time: 2024-05-05T00:00:00Z}"))
    r = run(["-C", str(ws), "plan"], cwd=ws)
    assert r.code == 1
    assert (
        "Error: old.yaml:6:30: key 'capture.time' is renamed to 'capture.when' (renamed_from at schema.yaml:4:3); "
        "set 'capture.when' instead\n"
    ) in r.err


def test_rollback_restores_leaves_conflicts_and_is_itself_journaled(ws):
    journal = apply_all(ws)
    p = SqliteProvider(ws.parent / "live.db")
    p.patch_items({uid("item:cams/c03.jpg"): {"keep": 3, "tag": "hand"}})
    p.close()
    args = ["-C", str(ws), "rollback", str(journal), "--override-limits"]

    r = run(args, input="no\n")
    assert r.code == 1
    assert r.err.startswith(
        "Error: the rollback is destructive (marked above); re-run with --allow-destructive"
    )
    r = run([*args, "--allow-destructive"], input="no\n")
    assert r.code == 1 and r.err.endswith("Rollback cancelled. Nothing was written.\n")
    assert "\nDo you want to perform this rollback?\n" in r.out
    assert (
        f"\nConflicts: 1 file(s) changed since the apply; left alone:\n"
        f"  ! cams/c03.jpg: changed since the apply (tag); left alone ({journal}:5)\n"
    ) in r.out
    assert f"\nRollback of {journal}: 12 to restore, 0 already as before, 1 conflict(s).\n" in r.out
    assert live(ws, "cams/c00.jpg") == {"keep": 0, "tag": "t"}

    r = run([*args, "--allow-destructive"], input="yes\n")
    assert r.code == 1  # conflicts were left alone
    assert "Apply complete: 12 file(s) written." in r.out
    assert r.err == (
        "Error: 1 file(s) changed since the apply were left alone (conflicts); their before-images are in the "
        "journal.\n"
    )
    assert live(ws, "cams/c00.jpg") == {"capture.site": "old", "keep": 0}
    assert live(ws, "cams/c03.jpg") == {"keep": 3, "tag": "hand"}
    assert live(ws, "other/o.jpg") == {"capture.time": "2024-01-01T00:00:00Z"}
    (rb_journal,) = [j for j in journal.parent.glob("*.jsonl") if j != journal]
    header = read_journal(rb_journal).header
    assert (header.kind, header.rolls_back) == ("rollback", str(journal))

    again = run([*args, "--auto-approve", "--allow-destructive"])
    assert f"Rollback of {journal}: 0 to restore, 12 already as before, 1 conflict(s)." in again.out
    # Rolling back the rollback brings the apply's values back.
    r = run(
        [
            "-C",
            str(ws),
            "rollback",
            str(rb_journal),
            "--auto-approve",
            "--override-limits",
            "--allow-destructive",
        ]
    )
    assert r.code == 0, r.err
    assert live(ws, "cams/c00.jpg") == {"keep": 0, "tag": "t"}
    final = run(["-C", str(ws), "plan", "--override-limits"], cwd=ws)
    assert final.code == 0
    assert "files 1 to update" in final.out  # only the hand-edited conflict differs from the manifests
    converges(ws)


def test_rollback_json_needs_auto_approve_and_prints_only_json(ws):
    journal = apply_all(ws)
    r = run(["-C", str(ws), "rollback", str(journal), "--format", "json"], cwd=ws)
    assert (r.code, r.out) == (1, "")
    assert r.err == "Error: --format json needs --auto-approve (the prompt cannot be part of json output)\n"
    flags = ["--format", "json", "--auto-approve", "--override-limits", "--allow-destructive"]
    r = run(["-C", str(ws), "rollback", str(journal), *flags], cwd=ws)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["summary"]["files"] == {"update": 13, "merge": 0, "overwrite": 13, "unchanged": 0}
    assert "Apply complete: 13 file(s) written." in r.err
    converges(ws)


def test_rollback_refuses_other_providers_and_corrupt_journals(ws, tmp_path):
    journal = apply_all(ws)
    r = run(
        ["-C", str(ws), "rollback", str(journal), "--provider", f"sqlite:{tmp_path / 'other.db'}"], cwd=ws
    )
    assert r.code == 1
    assert r.err.startswith(f"Error: {journal}: the journal was written against sqlite:")
    assert r.err.endswith(
        f"but --provider names sqlite:{tmp_path / 'other.db'}; a journal rolls back only on the provider it was "
        "written against\n"
    )
    lines = journal.read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([lines[0], lines[1][:30], *lines[2:]]) + "\n")
    r = run(["-C", str(ws), "rollback", str(broken)], cwd=ws)
    assert r.code == 1 and r.err.startswith(f"Error: {broken}:2: corrupt journal line (invalid JSON: ")
    torn = tmp_path / "torn.jsonl"
    torn.write_text("\n".join(lines) + "\n" + lines[1][:30])
    r = run(
        ["-C", str(ws), "rollback", str(torn), "--auto-approve", "--override-limits", "--allow-destructive"]
    )
    assert r.code == 0, r.err
    assert r.err.startswith(
        f"Warning: {torn}: its last line was incomplete (the apply was killed) and is left out.\n"
    )
    converges(ws)
