"""Datasets (Encord's legacy data units, SPEC §7b) end to end through the real CLI on the embedded store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.helpers.cli import run, write

WS = "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite, path: live.db, seed: live.json}\n"
SCH = "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  weather: {type: enum, values: [rain, sunny]}\n  n: number\n"
DS = "d5000000-0000-4000-8000-000000000001"
F_UUID = "f0000000-0000-4000-8000-000000000001"
A_UUID = "a0000000-0000-4000-8000-000000000001"
B_UUID = "a0000000-0000-4000-8000-000000000002"
DH_A = "dddddddd-0000-4000-8000-00000000000a"
DH_B = "dddddddd-0000-4000-8000-00000000000b"
DH_L = "dddddddd-0000-4000-8000-00000000000c"
LIVE = {
    "format_version": "1",
    "schema": {"weather": {"ty": "enum", "values": ["rain", "sunny"]}, "n": {"ty": "variant", "hint": "number"}},
    "folders": [{"uuid": F_UUID, "parent": None, "name": "f"}],
    "items": [
        {"uuid": A_UUID, "folder": F_UUID, "name": "a.jpg", "item_type": "image",
         "client_metadata": {"n": 1, "theirs": "keep"}},
        {"uuid": B_UUID, "folder": F_UUID, "name": "b.jpg", "item_type": "image", "client_metadata": {}},
    ],
    "datasets": [
        {"hash": DS, "title": "cams", "rows": [
            {"data_hash": DH_A, "title": "a.jpg", "data_type": "IMAGE", "backing_item": A_UUID},
            {"data_hash": DH_B, "title": "b.jpg", "data_type": "IMAGE", "backing_item": B_UUID},
            {"data_hash": DH_L, "title": "legacy.png", "data_type": "IMAGE", "backing_item": None,
             "client_metadata": {"old": True}},
        ]},
    ],
}  # fmt: skip
DM = f"apiVersion: reconciler/v1\nkind: FileMetadata\ndataset: {DS}\n"


def workspace(tmp_path: Path, live: dict | None = None, **files: str) -> Path:
    base = {"ws.yaml": WS, "s.yaml": SCH, "live.json": json.dumps(live or LIVE)}
    base.update({k.replace("__", "."): v for k, v in files.items()})
    return write(tmp_path / "m", base)


def stored(root: Path) -> tuple[dict[str, object], dict[str, object]]:
    """Items' metadata by uuid, and the own metadata of data rows without a backing item by data hash."""
    db = sqlite3.connect(root / "live.db")
    try:
        items = {u: json.loads(md) for u, md in db.execute("SELECT uuid, metadata FROM items ORDER BY uuid")}
        rows = {
            h: json.loads(md)
            for h, md in db.execute("SELECT data_hash, metadata FROM data_rows WHERE metadata IS NOT NULL")
        }
        return items, rows
    finally:
        db.close()


def test_dataset_plan_apply_plan(tmp_path: Path) -> None:
    manifest = DM + (
        'files:\n  - glob: "*.jpg"\n    metadata: {weather: rain}\n'
        "  - name: legacy.png\n    metadata: {n: 2}\n"
        f"  - uuid: {DH_B}\n    metadata: {{n: 5}}\n"
    )
    root = workspace(tmp_path, d__yaml=manifest)
    plan = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (plan.code, plan.err) == (2, "")
    assert plan.out == (
        "Dataset cams:\n"
        "  ~ a.jpg                 merge\n"
        '      + weather           "rain"\n'
        "  ~ b.jpg                 merge\n"
        "      + n                 5\n"
        '      + weather           "rain"\n'
        "  ~ legacy.png            merge\n"
        "      + n                 2\n"
        "\n"
        "Plan: schema 0 to add, 0 to change, 0 to delete; files 3 to update (3 merge, 0 overwrite; 1 by the "
        "legacy per-row call), 0 unchanged.\n"
    )
    js = json.loads(run(["-C", str(root), "plan", "--format", "json"]).out)
    assert [(f["uuid"], f["folder"], f["name"], f["dataset"]) for f in js["files"]] == [
        (A_UUID, "cams", "a.jpg", {"hash": DS, "title": "cams", "data_hash": DH_A, "backing_item": A_UUID}),
        (B_UUID, "cams", "b.jpg", {"hash": DS, "title": "cams", "data_hash": DH_B, "backing_item": B_UUID}),
        (DH_L, "cams", "legacy.png", {"hash": DS, "title": "cams", "data_hash": DH_L, "backing_item": None}),
    ]
    assert js["summary"]["api_calls"]["data_row_writes"] == 1
    out = tmp_path / "p.json"
    assert run(["-C", str(root), "plan", "--out", str(out)]).code == 0
    applied = run(["-C", str(root), "apply", str(out)])
    assert (applied.code, applied.err) == (0, ""), applied.out
    items, rows = stored(root)
    assert items == {
        A_UUID: {"n": 1, "theirs": "keep", "weather": "rain"},
        B_UUID: {"n": 5, "weather": "rain"},
    }
    assert rows == {DH_L: {"old": True, "n": 2}}
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.err) == (0, ""), again.out
    assert again.out.startswith("No changes.")
