"""``reconciler import``: manifests written from live state, such that ``plan`` right after shows no changes.

Run on SQLite and on the Encord provider against the emulator, over a live state with every schema type,
tombstones, values YAML would misread, image-group children, a folder big enough for a JSONL source, a name
shared by two files, live nulls and an empty folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import LiveFolder, LiveItem
from reconciler.providers.sqlite import SqliteProvider
from reconciler.snapshot import Snapshot, write_snapshot
from reconciler.testing.emulator import Emulator
from reconciler.types import JsonValue
from tests.helpers.cli import run

TOKEN = "import-test-token"


def U(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


TRICKY: dict[str, JsonValue] = {
    "s.true": "true",
    "s.float": "1.0",
    "s.date": "2024-01-01",
    "s.null": "null",
    "s.tilde": "~",
    "s.no": "no",
    "s.colon": "a: b",
    "s.hash": "x #y",
    "s.empty": "",
    "s.unicode": "Zürich ✓",
    "s.newline": "line 1\nline 2",
    "s.quote": 'say "hi"',
    "capture.time": "2024-05-01T10:00:00Z",
    "n.int": 1,
    "n.float": 1.0,
    "n.big": 6.011013060506361e16,
    "n.neg": -0.5,
    "b.yes": True,
    "b.no": False,
    "site.location": {"latitude": 51.5072, "longitude": -0.1276},
    "clip": [0.1, 0.2, 0.3],
    "keyframes": [13, 17, 19],
    "tags": [{"label": "car"}, {"label": "bus", "n": 2}],
}

SCHEMA: dict[str, dict[str, Any]] = {
    "capture.time": {"ty": "variant", "hint": "datetime"},
    "capture.weather": {"ty": "enum", "values": ["rain", "snow", "sunny"]},
    "caption": {"ty": "variant", "hint": "text"},
    "camera.id": {"ty": "variant", "hint": "uuid"},
    "clip": {"ty": "embedding", "size": 3, "api": None},
    "n.int": {"ty": "variant", "hint": "number"},
    "b.yes": {"ty": "variant", "hint": "boolean"},
    "site.location": {"ty": "geospatial"},
    "label": {"ty": "variant", "hint": "varchar"},
    "legacy.note": {"ty": "tombstone", "deleted_ty": {"ty": "variant", "hint": "varchar"}},
    "legacy.kind": {"ty": "tombstone", "deleted_ty": {"ty": "enum", "values": ["a", "b"]}},
    "gone": {"ty": "tombstone", "deleted_ty": None},
}


def live_snapshot() -> Snapshot:
    folders = [
        LiveFolder(U(1), None, "traffic", "traffic"),
        LiveFolder(U(2), U(1), "cams 2024", "traffic/cams 2024"),
        LiveFolder(U(3), None, "scans", "scans"),
        LiveFolder(U(4), None, "bulk", "bulk"),
        LiveFolder(U(5), None, "empty", "empty"),
    ]
    items = [
        LiveItem(U(100), U(2), "cam01.mp4", "video", dict(TRICKY)),
        LiveItem(U(101), U(2), "cam 02 #b.mp4", "video", {"capture.weather": "rain", "label": "true"}),
        LiveItem(U(102), U(2), "dup.mp4", "video", {"label": "first"}),
        LiveItem(U(103), U(2), "dup.mp4", "video", {"label": "second"}),
        LiveItem(U(104), U(2), "bare.mp4", "video", {}),
        LiveItem(U(105), U(2), "nulls.mp4", "video", {"label": "x", "maybe": None}),
        LiveItem(U(106), U(1), "readme.pdf", "pdf", {"caption": "Top level"}),
        LiveItem(U(200), U(3), "scan-07", "imageGroup", {"caption": "Axial series, contrast enhanced."}),
        LiveItem(U(201), U(3), "slice-1.png", "image", {"n.int": 1}, parent_item=U(200)),
        LiveItem(U(202), U(3), "slice-2.png", "image", {}, parent_item=U(200)),
    ]
    for i in range(60):
        md: dict[str, JsonValue] = {"n.int": i, "label": f"row {i}"}
        if i % 2:
            md["s.date"] = "2024-01-01"
            md["n.float"] = float(i)
        items.append(LiveItem(U(1000 + i), U(4), f"img-{i:03d}.jpg", "image", md))
    return Snapshot(schema=dict(SCHEMA), folders=folders, items=items)


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    snap = live_snapshot()
    seed = tmp_path / "seed.json"
    write_snapshot(seed, snap.schema, snap.folders, snap.items)
    db = tmp_path / "work" / "live.db"
    db.parent.mkdir(exist_ok=True)
    SqliteProvider(db, seed=seed).close()
    return db


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(live_snapshot(), tokens=[TOKEN]) as emu:
        yield emu


def no_changes(out: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
    r = run(["plan", "-C", str(out), "--detailed-exitcode"], cwd=cwd, env=env)
    assert r.code == 0, r.out + r.err
    assert r.out == (
        "No changes. Live state matches the manifests.\n\n"
        "Plan: schema 0 to add, 0 to change, 0 to delete; files 0 to update (0 merge, 0 overwrite), "
        "70 unchanged.\n"
    )


def test_import_from_sqlite_round_trips(sqlite_db: Path, cwd: Path):
    r = run(["import", "--provider", f"sqlite:{sqlite_db}", "--out", "out", "-C", "nowhere"], cwd=cwd)
    assert r.code == 0, r.err
    assert r.out == (
        f"Imported 12 schema key(s) and 4 folder(s) with 70 file(s) from sqlite:{sqlite_db} into out:\n"
        "  out/workspace.yaml\n"
        "  out/schema.yaml\n"
        "  out/data/bulk.jsonl\n"
        "  out/files/bulk.yaml\n"
        "  out/files/scans.yaml\n"
        "  out/files/traffic.yaml\n"
        "  out/files/traffic--cams-2024.yaml\n"
        "Skipped 1 folder(s) without files: empty\n"
        "Check it with: reconciler plan -C out  (it shows no changes)\n"
    )
    assert r.err == (
        "Warning: out/files/traffic--cams-2024.yaml: live null values cannot be written in "
        "a manifest; these keys are not owned: maybe\n"
    )
    out = cwd / "out"
    no_changes(out, cwd)
    assert run(["validate", "-C", str(out)], cwd=cwd).code == 0
    fmt = run(["fmt", "--check", "-C", str(out)], cwd=cwd)
    assert (fmt.code, fmt.out, fmt.err) == (0, "", "")

    assert (out / "workspace.yaml").read_text() == (
        "# Written by `reconciler import`: the live state the manifests in this directory were read from.\n"
        'apiVersion: reconciler/v1\nkind: Workspace\nprovider:\n  type: sqlite\n  path: "../live.db"\n'
    )
    schema = (out / "schema.yaml").read_text()
    assert schema.endswith(
        "apiVersion: reconciler/v1\n"
        "kind: MetadataSchema\n"
        "prune: true\n"
        "keys:\n"
        "  b.yes: boolean\n"
        "  camera.id: uuid\n"
        "  caption: text\n"
        "  capture.time: datetime\n"
        "  capture.weather: {type: enum, values: [rain, snow, sunny]}\n"
        "  clip: {type: embedding, size: 3}\n"
        "  gone: {type: varchar, deleted: hard}\n"
        "  label: varchar\n"
        "  legacy.kind: {type: enum, values: [a, b], deleted: soft}\n"
        "  legacy.note: {type: varchar, deleted: soft}\n"
        "  n.int: number\n"
        "  site.location: geospatial\n"
    )
    cams = (out / "files" / "traffic--cams-2024.yaml").read_text()
    assert (
        "folder: traffic/cams 2024\nmode: merge\nowns: [b.no, b.yes, capture.time, capture.weather," in cams
    )
    assert "  - name: cam01.mp4\n    metadata:\n      b.no: false\n      b.yes: true\n" in cams
    for line in [
        '      s.true: "true"\n',
        '      s.float: "1.0"\n',
        '      s.date: "2024-01-01"\n',
        '      s.null: "null"\n',
        '      s.tilde: "~"\n',
        '      s.no: "no"\n',
        '      s.newline: "line 1\\nline 2"\n',
        '      capture.time: "2024-05-01T10:00:00Z"\n',
        "      n.float: 1.0\n",
        "      n.int: 1\n",
        "      n.big: 6.011013060506361e+16\n",
        "      site.location: {latitude: 51.5072, longitude: -0.1276}\n",
        '      tags: [{label: car}, {label: bus, "n": 2}]\n',
    ]:
        assert line in cams
    # A name two files share is selected by uuid; a file without metadata is listed (owned: nothing to keep).
    assert f'  - uuid: "{U(102)}"\n    metadata:\n      label: first\n' in cams
    assert "  - name: bare.mp4\n    metadata: {}\n" in cams
    assert '  - name: "cam 02 #b.mp4"\n' in cams
    scans = (out / "files" / "scans.yaml").read_text()
    assert 'folder: scans\nchildren: true\nmode: merge\nowns: ["*"]\nfiles:\n' in scans
    assert "  - name: scan-07/slice-1.png\n    metadata:\n      n.int: 1\n" in scans
    bulk = (out / "files" / "bulk.yaml").read_text()
    assert bulk.endswith('folder: bulk\nmode: merge\nowns: ["*"]\nsource: data/bulk.jsonl\n')
    rows = [json.loads(line) for line in (out / "data" / "bulk.jsonl").read_text().splitlines()]
    assert len(rows) == 60
    assert rows[1] == {
        "name": "img-001.jpg",
        "metadata": {"label": "row 1", "n.float": 1.0, "n.int": 1, "s.date": "2024-01-01"},
    }
    assert isinstance(rows[1]["metadata"]["n.float"], float)


def test_later_edits_do_what_they_read_as(sqlite_db: Path, cwd: Path):
    """After an import, deleting a key line removes the key; deleting a schema line soft-deletes it."""
    assert run(["import", "--provider", f"sqlite:{sqlite_db}", "--out", "out"], cwd=cwd).code == 0
    out = cwd / "out"
    scans = out / "files" / "scans.yaml"
    scans.write_text(scans.read_text().replace("    metadata:\n      n.int: 1\n", "    metadata: {}\n"))
    schema = out / "schema.yaml"
    schema.write_text(schema.read_text().replace("  camera.id: uuid\n", ""))
    r = run(["plan", "-C", str(out)], cwd=cwd)
    assert r.code == 0, r.err
    assert f"  - {'camera.id':<20}  soft delete   [destructive]\n" in r.out
    assert "Folder scans:\n  ~ scan-07/slice-1.png   merge\n      - n.int             1\n" in r.out


def test_import_selected_folders_and_schema_only(sqlite_db: Path, cwd: Path):
    r = run(["import", "--provider", f"sqlite:{sqlite_db}", "--out", "a", "--folder", "traffic"], cwd=cwd)
    assert r.code == 0, r.err
    assert sorted(p.relative_to(cwd / "a").as_posix() for p in (cwd / "a").rglob("*.yaml")) == [
        "files/traffic--cams-2024.yaml",
        "files/traffic.yaml",
        "workspace.yaml",
    ]
    r = run(["plan", "-C", "a", "--detailed-exitcode"], cwd=cwd)
    assert r.code == 0, r.err
    r = run(["import", "--provider", f"sqlite:{sqlite_db}", "--out", "b", "--schema"], cwd=cwd)
    assert r.code == 0, r.err
    assert sorted(p.name for p in (cwd / "b").iterdir()) == ["schema.yaml", "workspace.yaml"]
    assert run(["plan", "-C", "b", "--detailed-exitcode"], cwd=cwd).code == 0


def test_import_reads_the_workspace_of_the_manifest_directory(sqlite_db: Path, cwd: Path):
    (cwd / "m").mkdir()
    (cwd / "m" / "workspace.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Workspace\nprovider:\n  type: sqlite\n  path: ../live.db\n"
    )
    r = run(["import", "-C", "m", "--out", "out", "--schema"], cwd=cwd)
    assert r.code == 0, r.err
    assert 'path: "../live.db"' in (cwd / "out" / "workspace.yaml").read_text()


def test_import_refuses_a_non_empty_out_dir(sqlite_db: Path, cwd: Path):
    (cwd / "out").mkdir()
    (cwd / "out" / "x.yaml").write_text("keep me")
    r = run(["import", "--provider", f"sqlite:{sqlite_db}", "--out", "out"], cwd=cwd)
    assert r.code == 1
    assert (
        r.err == "Error: --out out: the directory is not empty; import writes only into a new or empty one\n"
    )
    assert (cwd / "out" / "x.yaml").read_text() == "keep me"


def test_import_needs_a_provider(cwd: Path):
    r = run(["import", "--out", "out", "-C", "nowhere"], cwd=cwd)
    assert r.code == 1
    assert r.err == (
        "Error: import needs to know where the live state is: pass --provider URL (sqlite:PATH, encord: or "
        "encord:https://DOMAIN), or -C a manifest directory whose Workspace names one\n"
    )
    r = run(["import", "--out", "out", "--provider", "sqlite:missing.db"], cwd=cwd)
    assert r.code == 1
    assert r.err == f"Error: no SQLite database at {cwd / 'missing.db'}\n"
    assert not (cwd / "missing.db").exists()


def test_import_of_an_unknown_folder_leaves_the_out_dir_empty(sqlite_db: Path, cwd: Path):
    r = run(["import", "--provider", f"sqlite:{sqlite_db}", "--out", "out", "--folder", "nope"], cwd=cwd)
    assert r.code == 1
    assert r.err == "Error: folder 'nope' not found\n"
    assert list((cwd / "out").iterdir()) == []


def test_import_from_encord_via_the_emulator_round_trips(emulator: Emulator, cwd: Path):
    env = {"ENCORD_API_TOKEN": TOKEN}
    r = run(
        ["import", "--provider", f"encord:{emulator.url}", "--out", "out", "-C", "nowhere"], cwd=cwd, env=env
    )
    assert r.code == 0, r.err
    assert r.out.startswith(
        f"Imported 12 schema key(s) and 4 folder(s) with 70 file(s) from encord:{emulator.url} into out:\n"
    )
    assert (
        (cwd / "out" / "workspace.yaml")
        .read_text()
        .endswith(f'provider:\n  type: encord\n  domain: "{emulator.url}"\n')
    )
    no_changes(cwd / "out", cwd, env)
    assert TOKEN not in "".join(p.read_text() for p in (cwd / "out").rglob("*.*"))
