"""Saved plans and journals never choose where credentials go (SPEC §4 Trust), and the commands that need only
the store read only the Workspace document.

``apply PLANFILE`` and ``rollback JOURNAL`` write only to the store the Workspace in ``-C`` (or ``--provider``)
names. A file recording another host or database (an edited CI artifact, its checksum recomputed) is refused
with one line before any request is sent: a recording server standing in for the attacker's host must see
nothing, and neither must the real store.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.providers.sqlite import SqliteProvider
from reconciler.testing.emulator import Emulator
from tests.helpers.cli import run
from tests.helpers.servers import recording_server
from tests.helpers.states import make_snapshot, uid
from tests.helpers.workspace import encord_workspace, file_manifest, seed_sqlite, sqlite_workspace, write_dir

TOKEN = "trust-token"
ENV = {"ENCORD_API_TOKEN": TOKEN}
CAMS = file_manifest("cams", "*.jpg", "{tag: t}")
OTHER = file_manifest("other", "*.jpg", "{tag: o}")
BROKEN = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: [not, a, folder\n"


def snapshot() -> Any:
    return make_snapshot(
        {"cams": [(f"c{i}.jpg", {"keep": i}) for i in range(3)], "other": [("o.jpg", {"keep": 9})]}
    )


def recompute_checksum(data: dict[str, Any]) -> None:
    """What an attacker who edits an unsigned plan does: fix the checksum so the file still reads."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    data["checksum"] = "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def edit_plan(path: Path, provider: dict[str, str]) -> None:
    data = json.loads(path.read_text())
    data["provider"] = provider
    recompute_checksum(data)
    path.write_text(json.dumps(data))


def edit_journal(path: Path, provider: dict[str, str]) -> None:
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    header["provider"] = provider
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")


def live(db: Path) -> dict[str, Any]:
    p = SqliteProvider(db, create=False)
    try:
        return {
            u: dict(i.metadata)
            for u, i in p.get_items([uid(f"item:cams/c{i}.jpg") for i in range(3)]).items()
        }
    finally:
        p.close()


def no_changes(ws: Path, env: dict[str, str] | None = None) -> None:
    final = run(["-C", str(ws), "plan", "--detailed-exitcode"], env=env)
    assert final.code == 0, final.err
    assert "No changes." in final.out


# --------------------------------------------------------------------------------------------- encord


@pytest.fixture
def emu() -> Iterator[Emulator]:
    e = Emulator(snapshot(), tokens=[TOKEN]).start()
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture
def encord_ws(tmp_path: Path, emu: Emulator) -> Path:
    return write_dir(tmp_path / "ws", {"workspace.yaml": encord_workspace(emu.url), "cams.yaml": CAMS})


def test_a_plan_naming_another_host_is_refused_before_any_request(
    encord_ws: Path, emu: Emulator, tmp_path: Path
):
    planfile = tmp_path / "plan.json"
    r = run(["-C", str(encord_ws), "plan", "--out", str(planfile)], env=ENV)
    assert r.code == 0, r.err
    with recording_server() as attacker:
        edit_plan(planfile, {"type": "encord", "domain": attacker.url})
        emu.reset_counts()
        for extra in ([], ["--provider", f"encord:{emu.url}"]):
            r = run(["-C", str(encord_ws), "apply", str(planfile), "--auto-approve", *extra], env=ENV)
            assert (r.code, r.out) == (1, "")
            who = "--provider" if extra else f"the Workspace in {encord_ws / 'workspace.yaml'}"
            assert r.err == (
                f"Error: {planfile}: the plan was made against encord:{attacker.url} but {who} names "
                f"encord:{emu.url}; a plan applies only to the provider it was made against\n"
            )
        assert attacker.seen == [] and attacker.connections == 0
    assert emu.request_counts()["total"] == 0
    no_changes_after_apply(encord_ws)


def no_changes_after_apply(ws: Path) -> None:
    r = run(["-C", str(ws), "apply", "--auto-approve"], env=ENV)
    assert r.code == 0, r.err
    no_changes(ws, ENV)


def test_a_journal_naming_another_host_is_refused_before_any_request(
    encord_ws: Path, emu: Emulator, tmp_path: Path
):
    r = run(["-C", str(encord_ws), "apply", "--auto-approve"], env=ENV)
    assert r.code == 0, r.err
    (journal,) = (encord_ws / ".reconciler" / "journal").glob("*.jsonl")
    with recording_server() as attacker:
        edit_journal(journal, {"type": "encord", "domain": attacker.url})
        emu.reset_counts()
        r = run(["-C", str(encord_ws), "rollback", str(journal), "--auto-approve"], env=ENV)
        assert (r.code, r.out) == (1, "")
        assert r.err == (
            f"Error: {journal}: the journal was written against encord:{attacker.url} but the Workspace in "
            f"{encord_ws / 'workspace.yaml'} names encord:{emu.url}; a journal rolls back only on the provider "
            "it was written against\n"
        )
        assert attacker.seen == []
    assert emu.request_counts()["total"] == 0
    no_changes(encord_ws, ENV)


def test_a_rollback_from_elsewhere_waits_for_the_lock_of_the_journals_directory(
    encord_ws: Path, emu: Emulator, tmp_path: Path
):
    """``rollback JOURNAL --provider`` run from another directory takes the lock the apply that wrote JOURNAL
    took (beside its journal directory), not one of its own: while an apply holds it, the rollback is refused
    having written nothing, and it makes no .reconciler directory where it runs."""
    from reconciler.lock import StoreLock, lock_path
    from reconciler.providers.base import ProviderIdentity

    r = run(["-C", str(encord_ws), "apply", "--auto-approve"], env=ENV)
    assert r.code == 0, r.err
    journals = encord_ws / ".reconciler" / "journal"
    (journal,) = journals.glob("*.jsonl")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    held = StoreLock(
        lock_path(ProviderIdentity("encord", emu.url), journals, beside_store=False), "emu", "apply"
    )
    held.acquire()
    try:
        emu.reset_counts()
        r = run(
            ["rollback", str(journal), "--provider", f"encord:{emu.url}", "--auto-approve"],
            env=ENV,
            cwd=elsewhere,
        )
        assert r.code == 1 and "is locked by another run" in r.err, r.err
        assert emu.request_counts()["by_route"].get("PATCH storage/items/patch-bulk", 0) == 0
    finally:
        held.release()
    assert not (elsewhere / ".reconciler").exists()
    r = run(
        ["rollback", str(journal), "--provider", f"encord:{emu.url}", "--auto-approve"],
        env=ENV,
        cwd=elsewhere,
    )
    assert r.code == 0, r.err
    assert not (elsewhere / ".reconciler").exists()
    assert len(list(journals.glob("*.jsonl"))) == 2
    no_changes_after_apply(encord_ws)


# --------------------------------------------------------------------------------------------- sqlite


@pytest.fixture
def sqlite_ws(tmp_path: Path) -> Path:
    seed_sqlite(tmp_path / "live.db", snapshot())
    return write_dir(
        tmp_path / "ws",
        {"workspace.yaml": sqlite_workspace("../live.db"), "cams.yaml": CAMS, "other.yaml": OTHER},
    )


def test_a_plan_naming_another_database_is_refused(sqlite_ws: Path, tmp_path: Path):
    planfile = tmp_path / "plan.json"
    assert run(["-C", str(sqlite_ws), "plan", "--out", str(planfile)]).code == 0
    victim = seed_sqlite(tmp_path / "victim.db", snapshot())
    victim_bytes = victim.read_bytes()
    before = live(tmp_path / "live.db")
    edit_plan(planfile, {"type": "sqlite", "path": str(victim)})
    r = run(["-C", str(sqlite_ws), "apply", str(planfile), "--auto-approve"])
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"Error: {planfile}: the plan was made against sqlite:{victim} but the Workspace in "
        f"{sqlite_ws / 'workspace.yaml'} names sqlite:{tmp_path / 'ws' / '..' / 'live.db'}; a plan applies only "
        "to the provider it was made against\n"
    )
    assert victim.read_bytes() == victim_bytes
    assert live(tmp_path / "live.db") == before
    missing = tmp_path / "nowhere" / "new.db"
    edit_plan(planfile, {"type": "sqlite", "path": str(missing)})
    r = run(["-C", str(sqlite_ws), "apply", str(planfile), "--auto-approve"])
    assert r.code == 1 and "the plan was made against sqlite:" in r.err
    assert not missing.parent.exists()
    no_changes_after_apply(sqlite_ws)


def test_a_plan_recording_an_unknown_store_type_is_refused(sqlite_ws: Path, tmp_path: Path):
    planfile = tmp_path / "plan.json"
    assert run(["-C", str(sqlite_ws), "plan", "--out", str(planfile)]).code == 0
    edit_plan(planfile, {"type": "ftp", "path": "/x"})
    r = run(["-C", str(sqlite_ws), "apply", str(planfile)])
    assert (r.code, r.out) == (1, "")
    assert r.err == f"Error: {planfile}.provider: unknown provider type 'ftp' (known: encord, sqlite)\n"


def test_the_plans_store_named_the_same_way_is_accepted(sqlite_ws: Path, tmp_path: Path):
    """A plan records the resolved path; a Workspace naming it relatively (or through a link) is that store."""
    planfile = tmp_path / "plan.json"
    assert run(["-C", str(sqlite_ws), "plan", "--out", str(planfile)]).code == 0
    link = tmp_path / "link.db"
    os.symlink(tmp_path / "live.db", link)
    r = run(["apply", str(planfile), "--provider", f"sqlite:{link}"], cwd=tmp_path)
    assert r.code == 0, r.err
    assert live(tmp_path / "live.db")[uid("item:cams/c0.jpg")] == {"keep": 0, "tag": "t"}
    no_changes(sqlite_ws)


# --------------------------------------------------------------------------------------------- Workspace only


def break_a_manifest(ws: Path) -> None:
    (ws / "broken.yaml").write_text(BROKEN)
    r = run(["-C", str(ws), "plan"])
    assert r.code == 1 and "broken.yaml" in r.err  # the manifests really are broken


def test_rollback_snapshot_and_import_ignore_a_broken_file_manifest(sqlite_ws: Path, tmp_path: Path):
    r = run(["-C", str(sqlite_ws), "apply", "--auto-approve"])
    assert r.code == 0, r.err
    (journal,) = (sqlite_ws / ".reconciler" / "journal").glob("*.jsonl")
    break_a_manifest(sqlite_ws)
    r = run(["-C", str(sqlite_ws), "snapshot", "--out", str(tmp_path / "snap.json")])
    assert r.code == 0, r.err
    assert r.out == f"Wrote 2 folder(s) and 4 file(s) to {tmp_path / 'snap.json'}.\n"
    r = run(["-C", str(sqlite_ws), "import", "--out", str(tmp_path / "imported")])
    assert r.code == 0, r.err
    assert "Imported 0 schema key(s) and 2 folder(s) with 4 file(s)" in r.out
    r = run(["-C", str(sqlite_ws), "rollback", str(journal), "--auto-approve"])
    assert r.code == 0, r.err
    assert "Apply complete: 4 file(s) written." in r.out
    assert live(tmp_path / "live.db") == {uid(f"item:cams/c{i}.jpg"): {"keep": i} for i in range(3)}
    (sqlite_ws / "broken.yaml").unlink()
    no_changes_after_apply(sqlite_ws)


def test_with_provider_no_manifest_directory_is_needed(sqlite_ws: Path, tmp_path: Path):
    db = tmp_path / "live.db"
    r = run(["-C", str(sqlite_ws), "apply", "--auto-approve"])
    assert r.code == 0, r.err
    (journal,) = (sqlite_ws / ".reconciler" / "journal").glob("*.jsonl")
    empty = tmp_path / "empty"
    empty.mkdir()
    nowhere = ["-C", str(empty / "nowhere"), "--provider", f"sqlite:{db}"]
    r = run(["snapshot", *nowhere, "--out", str(empty / "snap.json")], cwd=empty)
    assert r.code == 0, r.err
    r = run(["import", *nowhere, "--out", str(empty / "imported")], cwd=empty)
    assert r.code == 0, r.err
    r = run(["rollback", str(journal), *nowhere, "--auto-approve"], cwd=empty)
    assert r.code == 0, r.err
    assert "Apply complete: 4 file(s) written." in r.out
    assert live(db) == {uid(f"item:cams/c{i}.jpg"): {"keep": i} for i in range(3)}
    # The rollback's own journal goes beside the journal it rolls back.
    assert len(list(journal.parent.glob("*.jsonl"))) == 2
    no_changes_after_apply(sqlite_ws)


def test_apply_planfile_refuses_manifests_that_do_not_load(sqlite_ws: Path, tmp_path: Path):
    """After the plan, a manifest that cannot even be read appears (a dangling link: the digest, made of the
    readable files' bytes, is unchanged). The saved plan's keys are checked against the manifests, so apply
    refuses, with plan's error, and writes nothing; once the link is gone it applies."""
    planfile = tmp_path / "plan.json"
    assert run(["-C", str(sqlite_ws), "plan", "--out", str(planfile)]).code == 0
    before = live(tmp_path / "live.db")
    os.symlink(sqlite_ws / "gone.yaml", sqlite_ws / "dangling.yaml")
    by_plan = run(["-C", str(sqlite_ws), "plan"])
    assert by_plan.code == 1 and "dangling.yaml: not a regular file" in by_plan.err
    r = run(["-C", str(sqlite_ws), "apply", str(planfile)])
    assert (r.code, r.err, r.out) == (1, by_plan.err, "")
    assert live(tmp_path / "live.db") == before
    (sqlite_ws / "dangling.yaml").unlink()
    r = run(["-C", str(sqlite_ws), "apply", str(planfile)])
    assert r.code == 0, r.err
    assert "Apply complete: 4 file(s) written." in r.out
    no_changes(sqlite_ws)


def test_a_broken_workspace_is_reported_as_plan_reports_it(sqlite_ws: Path, tmp_path: Path):
    planfile = tmp_path / "plan.json"
    assert run(["-C", str(sqlite_ws), "plan", "--out", str(planfile)]).code == 0
    (sqlite_ws / "workspace.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite, path: ../live.db, domian: x}\n"
    )
    by_plan = run(["-C", str(sqlite_ws), "plan"])
    by_apply = run(["-C", str(sqlite_ws), "apply", str(planfile)])
    assert by_plan.code == by_apply.code == 1
    assert by_apply.err == by_plan.err
    assert "workspace.yaml:3:44: unknown field 'domian'; did you mean 'domain'?" in by_apply.err
