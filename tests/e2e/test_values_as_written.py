"""Values as written, through the real CLI: YAML timestamps keep their text, and glob escapes select the
literal ``*``, ``?`` and ``[`` in a file name."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from reconciler.types import JsonValue
from tests.helpers.cli import run, write

F_UUID = "f0000000-0000-4000-8000-000000000001"
WS = "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite, path: live.db, seed: live.json}\n"
SCH = "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  when: datetime\n  n: number\n"
FM = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: f\n"
NO_CHANGES = "No changes. Live state matches the manifests."


def U(n: int) -> str:
    return f"a0000000-0000-4000-8000-{n:012d}"


def workspace(tmp_path: Path, names: list[str], files: dict[str, str]) -> Path:
    snapshot = {
        "format_version": "1",
        "schema": {"when": {"ty": "variant", "hint": "datetime"}, "n": {"ty": "variant", "hint": "number"}},
        "folders": [{"uuid": F_UUID, "parent": None, "name": "f"}],
        "items": [
            {"uuid": U(i), "folder": F_UUID, "name": name, "item_type": "image", "client_metadata": {}}
            for i, name in enumerate(names, 1)
        ],
    }
    return write(tmp_path / "m", {"ws.yaml": WS, "s.yaml": SCH, "live.json": json.dumps(snapshot), **files})


def live_metadata(root: Path) -> dict[str, JsonValue]:
    db = sqlite3.connect(root / "live.db")
    try:
        return {u: json.loads(md) for u, md in db.execute("SELECT uuid, metadata FROM items ORDER BY uuid")}
    finally:
        db.close()


def test_the_same_instant_from_jsonl_and_from_yaml_plans_no_change(tmp_path: Path) -> None:
    """An unquoted YAML timestamp keeps its text: ``Z`` stays ``Z`` and nanoseconds stay."""
    stamp = "2024-05-01T10:00:00.123456789Z"
    rows = json.dumps({"name": "a.jpg", "metadata": {"when": stamp}}) + "\n"
    root = workspace(tmp_path, ["a.jpg"], {"a.yaml": FM + "source: rows.jsonl\n", "rows.jsonl": rows})
    assert run(["-C", str(root), "apply", "--auto-approve"]).code == 0
    assert live_metadata(root) == {U(1): {"when": stamp}}
    (root / "rows.jsonl").unlink()
    (root / "a.yaml").write_text(FM + f"files:\n  - name: a.jpg\n    metadata:\n      when: {stamp}\n")
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.err) == (0, "")
    assert again.out.splitlines()[0] == NO_CHANGES


def test_a_yaml_timestamp_is_written_as_typed(tmp_path: Path) -> None:
    manifest = FM + "files:\n  - name: a.jpg\n    metadata:\n      when: 2024-05-01T10:00:00Z\n"
    root = workspace(tmp_path, ["a.jpg"], {"a.yaml": manifest})
    assert run(["-C", str(root), "apply", "--auto-approve"]).code == 0
    assert live_metadata(root) == {U(1): {"when": "2024-05-01T10:00:00Z"}}
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.out.splitlines()[0]) == (0, NO_CHANGES)


def test_glob_escapes_select_literal_special_characters(tmp_path: Path) -> None:
    names = ["cam*.jpg", "cam1.jpg", "what?.jpg", "whatx.jpg", "[draft].jpg", "d.jpg"]
    manifest = FM + (
        "files:\n"
        '  - glob: "cam[*].jpg"\n    metadata: {n: 1}\n'
        '  - glob: "what[?].jpg"\n    metadata: {n: 2}\n'
        '  - glob: "[[]draft].jpg"\n    metadata: {n: 3}\n'
    )
    root = workspace(tmp_path, names, {"a.yaml": manifest})
    assert run(["-C", str(root), "apply", "--auto-approve"]).code == 0
    assert live_metadata(root) == {
        U(1): {"n": 1},
        U(2): {},
        U(3): {"n": 2},
        U(4): {},
        U(5): {"n": 3},
        U(6): {},
    }
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.out.splitlines()[0]) == (0, NO_CHANGES)
