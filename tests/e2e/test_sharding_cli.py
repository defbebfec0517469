"""``plan --shard K/N`` and ``apply --shard K/N`` through the CLI on SQLite: bad values, the plan JSON's
``shard`` field (under the checksum), saved shard plans applied one by one, planning and applying a shard in
one go, and the schema planned by shard 1 only. Every run ends with an unsharded plan showing no changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.providers.sqlite import SqliteProvider
from tests.helpers.cli import run
from tests.helpers.states import make_snapshot, uid
from tests.helpers.workspace import HEADER, seed_sqlite, sqlite_workspace, write_dir

FOLDERS = ["a", "b", "c", "d", "e"]
SCHEMA = HEADER + "kind: MetadataSchema\nkeys:\n  team:\n    type: varchar\n  n:\n    type: number\n"


def manifest(folder: str) -> str:
    return (
        HEADER
        + f'kind: FileMetadata\nfolder: {folder}\nfiles:\n  - glob: "*.jpg"\n    metadata: {{team: {folder}}}\n'
    )


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """Five folders of six files (one already right in each) and a schema key to create."""
    snap = make_snapshot(
        {f: [(f"{f}{i}.jpg", {"team": f if i == 0 else "old", "n": i}) for i in range(6)] for f in FOLDERS},
        {"n": {"ty": "variant", "hint": "number"}},
    )
    seed_sqlite(tmp_path / "live.db", snap)
    files = {"workspace.yaml": sqlite_workspace("../live.db"), "schema.yaml": SCHEMA}
    files.update({f"{f}.yaml": manifest(f) for f in FOLDERS})
    return write_dir(tmp_path / "m", files)


def team(ws: Path) -> dict[str, object]:
    p = SqliteProvider(ws.parent / "live.db")
    try:
        uuids = [uid(f"item:{f}/{f}{i}.jpg") for f in FOLDERS for i in range(6)]
        return {u: i.metadata.get("team") for u, i in p.get_items(uuids).items()}
    finally:
        p.close()


def no_changes_left(ws: Path) -> None:
    final = run(["-C", str(ws), "plan", "--detailed-exitcode"])
    assert final.code == 0 and "No changes." in final.out, final.out + final.err


@pytest.mark.parametrize("value", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2", "1/2/3", "", "1/1001"])
def test_a_bad_shard_is_a_one_line_error(ws, value):
    for cmd in (["plan"], ["apply", "--auto-approve"]):
        r = run(["-C", str(ws), *cmd, "--shard", value])
        assert (r.code, r.out) == (1, "")
        assert r.err == (
            f"Error: --shard {value!r}: expected K/N with 1 <= K <= N <= 1000 (e.g. --shard 2/4)\n"
        )
    assert set(team(ws).values()) == {"a", "b", "c", "d", "e", "old"}


def test_a_shard_plan_records_its_shard_under_the_checksum(ws, tmp_path):
    whole = json.loads(run(["-C", str(ws), "plan", "--format", "json"]).out)
    assert "shard" not in whole
    parts = []
    for k in (1, 2, 3):
        r = run(
            [
                "-C",
                str(ws),
                "plan",
                "--shard",
                f"{k}/3",
                "--format",
                "json",
                "--out",
                str(tmp_path / f"{k}.json"),
            ]
        )
        assert r.code == 0, r.err
        parts.append(json.loads(r.out))
        assert parts[-1]["shard"] == {"index": k, "count": 3}
        assert json.loads((tmp_path / f"{k}.json").read_text())["shard"] == {"index": k, "count": 3}
    # Five folders over three shards: whole folders; the union is the whole plan; the schema in shard 1.
    assert sorted(f["uuid"] for p in parts for f in p["files"]) == sorted(f["uuid"] for f in whole["files"])
    assert sorted(len({f["folder"] for f in p["files"]}) for p in parts) == [1, 2, 2]
    assert (
        [len(p["schema"]["changes"]) for p in parts] == [1, 0, 0] == [len(whole["schema"]["changes"]), 0, 0]
    )
    for key in ("update", "unchanged"):
        assert (
            sum(p["summary"]["files"][key] for p in parts)
            == whole["summary"]["files"][key]
            == {"update": 25, "unchanged": 5}[key]
        )
    # The shard is covered by the checksum.
    saved = tmp_path / "2.json"
    saved.write_text(saved.read_text().replace('"index": 2', '"index": 1'))
    r = run(["-C", str(ws), "apply", str(saved)])
    assert (r.code, r.err) == (
        1,
        f"Error: {saved}: the plan file was altered after it was saved (checksum mismatch); refusing it\n",
    )


def test_saved_shard_plans_apply_one_by_one(ws, tmp_path):
    # The schema first (shard 1 plans it; applying it later would make the other saved plans stale).
    r = run(["-C", str(ws), "apply", "--shard", "1/2", "--target", "schema", "--auto-approve"])
    assert r.code == 0, r.err
    for k in (1, 2):
        assert (
            run(["-C", str(ws), "plan", "--shard", f"{k}/2", "--out", str(tmp_path / f"{k}.json")]).code == 0
        )
    before = team(ws)
    r = run(["-C", str(ws), "apply", str(tmp_path / "1.json")])
    assert r.code == 0, r.err
    after = team(ws)
    one = json.loads((tmp_path / "1.json").read_text())
    assert {u for u in after if after[u] != before[u]} == {f["uuid"] for f in one["files"]}
    r = run(["-C", str(ws), "apply", str(tmp_path / "2.json")])
    assert r.code == 0, r.err
    assert team(ws) == {uid(f"item:{f}/{f}{i}.jpg"): f for f in FOLDERS for i in range(6)}
    no_changes_left(ws)


def test_apply_shard_plans_and_applies_that_shard(ws):
    applied: set[str] = set()
    for k in (1, 2, 3, 4):
        before = team(ws)
        r = run(["-C", str(ws), "apply", "--shard", f"{k}/4", "--auto-approve"])
        assert r.code == 0, r.err
        after = team(ws)
        changed = {u for u in after if after[u] != before[u]}
        assert not changed & applied
        applied |= changed
    assert len(applied) == 25
    no_changes_left(ws)


def test_shard_does_not_combine_with_a_saved_plan(ws, tmp_path):
    assert run(["-C", str(ws), "plan", "--shard", "1/2", "--out", str(tmp_path / "p.json")]).code == 0
    r = run(["-C", str(ws), "apply", str(tmp_path / "p.json"), "--shard", "1/2"])
    assert (r.code, r.out) == (1, "")
    assert (
        r.err
        == "Error: --shard cannot be combined with a saved PLANFILE (a shard's saved plan records its shard)\n"
    )
