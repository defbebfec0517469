"""Per-frame custom metadata and embeddings through the real CLI (SPEC §7c), on the embedded store and on Encord
(the emulator, over HTTP on 127.0.0.1).

A files entry or a source row gives ``frames: {13: {clip: [...]}}``; plans show ``frames[13].clip``; apply
writes ``clientMetadata["$encord"]["frame_metadata"]["13"]["clip"]`` and keeps what the manifest does not own
(the rest of ``$encord``, other frames' keys). Every good scenario ends with a plan that shows no changes; every
bad input is one located error, exit 1, nothing written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.model import metadata_fingerprint
from reconciler.snapshot import write_snapshot
from reconciler.testing.emulator import Emulator
from reconciler.types import JsonValue
from tests.helpers.cli import Result, run, write
from tests.helpers.states import make_snapshot, uid

TOKEN = "frames-token"
NO_CHANGES = "No changes. Live state matches the manifests."
SCHEMA_WIRE: dict[str, JsonValue] = {
    "clip": {"ty": "embedding", "size": 3},
    "label": {"ty": "variant", "hint": "text"},
    "caption": {"ty": "variant", "hint": "text"},
}
SCH = (
    "apiVersion: reconciler/v1\nkind: MetadataSchema\n"
    "keys:\n  clip: {type: embedding, size: 3}\n  label: text\n  caption: text\n"
)
FM = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: videos\n"
V1 = uid("item:videos/v1.mp4")
V2 = uid("item:videos/v2.mp4")

#: v1 holds per-frame values and a part of ``$encord`` that is not per-frame; v2 holds none.
LIVE: dict[str, dict[str, JsonValue]] = {
    "v1.mp4": {
        "label": "x",
        "$encord": {"other": 1, "frame_metadata": {"2": {"label": "keep"}, "13": {"clip": [0, 0, 0]}}},
    },
    "v2.mp4": {"caption": "plain"},
}


@dataclass
class Store:
    """One live store for a test: its Workspace document, and a way to read what it holds (wire form)."""

    kind: str
    root: Path
    emulator: Emulator | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"ENCORD_API_TOKEN": TOKEN} if self.emulator is not None else {}

    def workspace(self) -> str:
        if self.emulator is not None:
            provider = f"{{type: encord, domain: {self.emulator.url}}}"
        else:
            provider = "{type: sqlite, path: live.db, seed: live.json}"
        return f"apiVersion: reconciler/v1\nkind: Workspace\nprovider: {provider}\n"

    def wire(self) -> dict[str, JsonValue]:
        """uuid -> clientMetadata exactly as the store holds it."""
        if self.emulator is not None:
            return {i.uuid: i.metadata for i in self.emulator.snapshot().items}
        db = sqlite3.connect(f"file:{self.root / 'live.db'}?mode=ro", uri=True)  # never creates it
        try:
            return {u: json.loads(md) for u, md in db.execute("SELECT uuid, metadata FROM items")}
        finally:
            db.close()

    def cli(self, *args: str) -> Result:
        return run(["-C", str(self.root), *args], env=self.env)


@pytest.fixture(params=["sqlite", "encord"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    snap = make_snapshot({"videos": sorted(LIVE.items())}, SCHEMA_WIRE, item_type="video")
    root = tmp_path / "m"
    root.mkdir()
    if request.param == "sqlite":
        write_snapshot(root / "live.json", snap.schema, snap.folders, snap.items)
        yield Store("sqlite", root)
    else:
        with Emulator(snap, tokens=[TOKEN]) as emu:
            yield Store("encord", root, emu)


def setup(store: Store, files: dict[str, str]) -> None:
    write(store.root, {"ws.yaml": store.workspace(), "s.yaml": SCH, **files})


MANIFEST = (
    FM
    + "files:\n"
    + "  - name: v1.mp4\n"
    + "    frames:\n"
    + "      13: {clip: [1, 2, 3]}\n"
    + "      20: {clip: [4, 5, 6], label: twenty}\n"
    + "  - name: v2.mp4\n"
    + "    metadata: {caption: new}\n"
)

PLAN_TEXT = """\
Folder videos:
  ~ v1.mp4                merge
      ~ frames[13].clip   [0, 0, 0] -> [1, 2, 3]
      + frames[20].clip   [4, 5, 6]
      + frames[20].label  "twenty"
  ~ v2.mp4                merge
      ~ caption           "plain" -> "new"

Plan: schema 0 to add, 0 to change, 0 to delete; files 2 to update (2 merge, 0 overwrite), 0 unchanged.
"""


def apply_then_no_changes(store: Store, v1: dict[str, object]) -> None:
    """``apply`` writes ``v1`` as v1.mp4's whole wire metadata, and a second plan shows no changes."""
    assert store.cli("apply", "--auto-approve").code == 0
    assert store.wire()[V1] == v1
    again = store.cli("plan", "--detailed-exitcode")
    assert (again.code, again.out.splitlines()[0]) == (0, NO_CHANGES)


def test_plan_shows_frame_keys_and_apply_writes_the_wire_form(store: Store) -> None:
    setup(store, {"a.yaml": MANIFEST})
    plan = store.cli("plan")
    assert (plan.code, plan.err) == (0, ""), plan.err
    assert plan.out == PLAN_TEXT
    as_json = json.loads(store.cli("plan", "--format", "json").out)
    files = {f["name"]: f for f in as_json["files"]}
    assert [(c["key"], c["action"], c["before"], c["after"]) for c in files["v1.mp4"]["changes"]] == [
        ("frames[13].clip", "update", [0, 0, 0], [1, 2, 3]),
        ("frames[20].clip", "add", None, [4, 5, 6]),
        ("frames[20].label", "add", None, "twenty"),
    ]
    # A file without per-frame values is fingerprinted exactly as its wire dict, as before.
    assert files["v2.mp4"]["live_fingerprint"] == metadata_fingerprint(LIVE["v2.mp4"])
    markdown = store.cli("plan", "--format", "markdown").out
    assert "frames[13].clip" in markdown and "frames[20].label" in markdown

    applied = store.cli("apply", "--auto-approve")
    assert (applied.code, applied.err) == (0, ""), applied.err
    assert store.wire() == {
        V1: {
            "label": "x",
            "$encord": {
                "other": 1,
                "frame_metadata": {
                    "2": {"label": "keep"},
                    "13": {"clip": [1, 2, 3]},
                    "20": {"clip": [4, 5, 6], "label": "twenty"},
                },
            },
        },
        V2: {"caption": "new"},
    }
    again = store.cli("plan", "--detailed-exitcode")
    assert (again.code, again.err, again.out.splitlines()[0]) == (0, "", NO_CHANGES)


def test_owns_a_key_prunes_it_on_every_frame_and_frame_patterns_own_only_frames(store: Store) -> None:
    # owns: [clip] owns clip on every frame: frames[13].clip is not given, so it is removed; the file's own
    # label and frame 2's label are not owned, so they are kept.
    manifest = FM + 'owns: ["clip"]\n' + "files:\n  - name: v1.mp4\n    frames:\n      7: {clip: [7, 7, 7]}\n"
    setup(store, {"a.yaml": manifest})
    plan = store.cli("plan")
    assert (plan.code, plan.err) == (0, ""), plan.err
    assert plan.out == (
        "Folder videos:\n"
        "  ~ v1.mp4                merge\n"
        "      + frames[7].clip    [7, 7, 7]\n"
        "      - frames[13].clip   [0, 0, 0]\n"
        "\n"
        "Plan: schema 0 to add, 0 to change, 0 to delete; files 1 to update (1 merge, 0 overwrite), 0 unchanged.\n"
    )
    apply_then_no_changes(
        store,
        {
            "label": "x",
            "$encord": {"other": 1, "frame_metadata": {"2": {"label": "keep"}, "7": {"clip": [7, 7, 7]}}},
        },
    )


def test_overwrite_makes_the_frames_exactly_the_ones_given(store: Store) -> None:
    manifest = FM + "mode: overwrite\nfiles:\n  - name: v1.mp4\n    frames:\n      13: {clip: [1, 2, 3]}\n"
    setup(store, {"a.yaml": manifest})
    plan = store.cli("plan")
    assert plan.out.splitlines()[:7] == [
        "Folder videos:",
        "  ~ v1.mp4                overwrite",
        '      - $encord           {"other": 1}',
        '      - frames[2].label   "keep"',
        "      ~ frames[13].clip   [0, 0, 0] -> [1, 2, 3]",
        '      - label             "x"',
        "",
    ]
    apply_then_no_changes(store, {"$encord": {"frame_metadata": {"13": {"clip": [1, 2, 3]}}}})


def test_frame_pattern_owns_frames_but_not_the_files_own_key(store: Store) -> None:
    manifest = FM + 'owns: ["frames[*].label"]\n' + "files:\n  - name: v1.mp4\n    metadata: {}\n"
    setup(store, {"a.yaml": manifest})
    plan = store.cli("plan")
    assert plan.out.splitlines()[:3] == [
        "Folder videos:",
        "  ~ v1.mp4                merge",
        '      - frames[2].label   "keep"',
    ]
    apply_then_no_changes(
        store,
        {
            "label": "x",
            "$encord": {"other": 1, "frame_metadata": {"13": {"clip": [0, 0, 0]}}},
        },
    )


def test_source_rows_carry_frames(store: Store) -> None:
    rows = (
        json.dumps({"name": "v1.mp4", "metadata": {"label": "y"}, "frames": {"13": {"clip": [3, 2, 1]}}})
        + "\n"
    )
    setup(store, {"a.yaml": FM + "source: rows.jsonl\n", "rows.jsonl": rows})
    assert store.cli("validate").code == 0
    plan = store.cli("plan")
    assert plan.out.splitlines()[:4] == [
        "Folder videos:",
        "  ~ v1.mp4                merge",
        "      ~ frames[13].clip   [0, 0, 0] -> [3, 2, 1]",
        '      ~ label             "x" -> "y"',
    ]
    apply_then_no_changes(
        store,
        {
            "label": "y",
            "$encord": {"other": 1, "frame_metadata": {"2": {"label": "keep"}, "13": {"clip": [3, 2, 1]}}},
        },
    )


def test_import_writes_frames_and_round_trips(store: Store, tmp_path: Path) -> None:
    setup(store, {})
    out = tmp_path / "imported"
    imported = run(["import", "-C", str(store.root), "--out", str(out)], env=store.env)
    assert imported.code == 0, imported.err
    manifest = (out / "files" / "videos.yaml").read_text()
    assert (
        "  - name: v1.mp4\n"
        "    metadata:\n"
        '      "$encord": {other: 1}\n'
        "      label: x\n"
        "    frames:\n"
        "      2:\n"
        "        label: keep\n"
        "      13:\n"
        "        clip: [0, 0, 0]\n"
    ) in manifest
    validated = run(["-C", str(out), "validate"], env=store.env)
    assert (validated.code, validated.err) == (0, ""), validated.err
    again = run(["-C", str(out), "plan", "--detailed-exitcode"], env=store.env)
    assert (again.code, again.err, again.out.splitlines()[0]) == (0, "", NO_CHANGES)


ENTRY = FM + "files:\n  - name: v1.mp4\n    frames:\n"
BAD = {
    "frame -1": (
        ENTRY + "      -1: {clip: [1, 2, 3]}\n",
        "a.yaml:7:7: frames: '-1' is not a frame number (a non-negative integer such as 0 or 13)",
    ),
    "frame 1.5": (
        ENTRY + "      1.5: {clip: [1, 2, 3]}\n",
        "a.yaml:7:7: frames: '1.5' is not a frame number (a non-negative integer such as 0 or 13)",
    ),
    "frame abc": (
        ENTRY + "      abc: {clip: [1, 2, 3]}\n",
        "a.yaml:7:7: frames: 'abc' is not a frame number (a non-negative integer such as 0 or 13)",
    ),
    "frame 013": (
        ENTRY + "      013: {clip: [1, 2, 3]}\n",
        "a.yaml:7:7: frames: '013' is not a frame number (a non-negative integer such as 0 or 13)",
    ),
    "wrong embedding size": (
        ENTRY + "      13: {clip: [1, 2]}\n",
        "a.yaml:7:18: frames[13].clip: embedding needs 3 numbers, got 2",
    ),
    "frame spelled as a key": (
        FM + "files:\n  - name: v1.mp4\n    metadata: {'frames[13].clip': [1, 2, 3]}\n",
        "a.yaml:6:16: key 'frames[13].clip': per-frame values are written under frames: "
        "(frames: {13: {clip: ...}})",
    ),
    "per-frame values in the wire form under metadata": (
        FM
        + "files:\n  - name: v1.mp4\n    metadata: {$encord: {frame_metadata: {'13': {clip: [1, 2, 3]}}}}\n",
        "a.yaml:6:26: $encord.frame_metadata: per-frame values are written under frames: "
        "(frames: {13: {clip: ...}})",
    ),
    "reserved key in a frame": (
        ENTRY + "      13: {keyframes: [1]}\n",
        "a.yaml:7:12: frames.13: 'keyframes' is a reserved key of the whole file, not a per-frame key",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_frames_are_one_located_error_and_nothing_is_written(store: Store, case: str) -> None:
    manifest, message = BAD[case]
    setup(store, {"a.yaml": manifest})
    before = store.wire() if store.kind == "encord" else None
    for command in (["validate"], ["plan"], ["apply", "--auto-approve"]):
        r = store.cli(*command)
        assert r.code == 1, (command, r.out, r.err)
        lines = r.err.splitlines()
        assert lines == ["Error: " + message, "1 problem found; nothing was written."], r.err
    if before is not None:
        assert store.wire() == before
    else:
        assert not (store.root / "live.db").exists()


BAD_ROWS = {
    "frame -1": (
        {"-1": {"clip": [1, 2, 3]}},
        "frames: '-1' is not a frame number (a non-negative integer such as 0 or 13)",
    ),
    "frame 1.5": (
        {"1.5": {"clip": [1, 2, 3]}},
        "frames: '1.5' is not a frame number (a non-negative integer such as 0 or 13)",
    ),
    "frame abc": (
        {"abc": {"clip": [1, 2, 3]}},
        "frames: 'abc' is not a frame number (a non-negative integer such as 0 or 13)",
    ),
    "wrong embedding size": ({"13": {"clip": [1, 2]}}, "frames[13].clip: embedding needs 3 numbers, got 2"),
    "frame not a mapping": (
        {"13": [1]},
        "frames.13: expected a mapping of metadata keys to values, got a list of 1 item(s)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_frames_in_a_source_row_are_located_at_the_row(store: Store, case: str) -> None:
    frames, message = BAD_ROWS[case]
    rows = json.dumps({"name": "v1.mp4", "frames": frames}) + "\n"
    setup(store, {"a.yaml": FM + "source: rows.jsonl\n", "rows.jsonl": rows})
    before = store.wire() if store.kind == "encord" else None
    for command in (["validate"], ["apply", "--auto-approve"]):
        r = store.cli(*command)
        assert r.code == 1, (command, r.out, r.err)
        assert r.err.splitlines() == [
            "Error: rows.jsonl:1: " + message,
            "1 problem found; nothing was written.",
        ]
    if before is not None:
        assert store.wire() == before


def test_per_frame_values_in_the_wire_form_in_a_source_rows_metadata_are_refused(store: Store) -> None:
    """Written as they are, they would read back as frames[13].clip and the file would never plan unchanged."""
    row = {"name": "v1.mp4", "metadata": {"$encord": {"frame_metadata": {"13": {"clip": [1, 2, 3]}}}}}
    setup(store, {"a.yaml": FM + "source: rows.jsonl\n", "rows.jsonl": json.dumps(row) + "\n"})
    before = store.wire() if store.kind == "encord" else None
    for command in (["validate"], ["apply", "--auto-approve"]):
        r = store.cli(*command)
        assert (r.code, r.out) == (1, ""), command
        assert r.err.splitlines() == [
            "Error: rows.jsonl:1: $encord.frame_metadata: per-frame values are written under frames: "
            "(frames: {13: {clip: ...}})",
            "1 problem found; nothing was written.",
        ]
    if before is not None:
        assert store.wire() == before


def test_rollback_restores_the_frames_as_they_were(store: Store) -> None:
    setup(store, {"a.yaml": MANIFEST})
    applied = store.cli("apply", "--auto-approve")
    assert applied.code == 0, applied.err
    journal = next(
        line.split(": ", 1)[1] for line in applied.out.splitlines() if line.startswith("Journal: ")
    )
    rolled = store.cli("rollback", journal, "--auto-approve")
    assert (rolled.code, rolled.err) == (0, ""), rolled.err
    assert store.wire() == {V1: LIVE["v1.mp4"], V2: LIVE["v2.mp4"]}


def test_registration_json_per_frame_metadata_is_read_as_frame_keys(store: Store) -> None:
    upload = {
        "videos": [
            {
                "objectUrl": "https://bucket.example/v1.mp4",
                "title": "v1.mp4",
                "clientMetadata": {"$encord": {"frame_metadata": {"13": {"clip": [9, 9, 9]}}}},
            }
        ]
    }
    setup(store, {"a.yaml": FM + "source: upload.json\n", "upload.json": json.dumps(upload, indent=2)})
    plan = store.cli("plan")
    assert (plan.code, plan.err) == (0, ""), plan.err
    # Only frames[13].clip is given: merge keeps the rest of $encord (a given key owns only itself).
    assert plan.out.splitlines()[:3] == [
        "Folder videos:",
        "  ~ v1.mp4                merge",
        "      ~ frames[13].clip   [0, 0, 0] -> [9, 9, 9]",
    ]
    apply_then_no_changes(
        store,
        {
            "label": "x",
            "$encord": {"other": 1, "frame_metadata": {"2": {"label": "keep"}, "13": {"clip": [9, 9, 9]}}},
        },
    )


def test_undeclared_per_frame_keys_are_judged_by_their_key(store: Store) -> None:
    manifest = FM + "files:\n  - name: v1.mp4\n    frames:\n      13: {clip: [0, 0, 0], mood: calm}\n"
    setup(store, {"a.yaml": manifest})
    validated = store.cli("validate")
    assert validated.code == 0
    assert validated.err == "Warning: a.yaml:7:35: key 'mood' is not declared in the metadata schema\n"
    ws = store.workspace() + "settings: {undeclared_keys: error}\n"
    write(store.root, {"ws.yaml": ws})
    refused = store.cli("plan")
    assert refused.code == 1
    assert refused.err.splitlines()[0] == (
        "Error: a.yaml:7:35: key 'mood' is not declared in the metadata schema (settings.undeclared_keys: error)"
    )


def test_owning_a_key_conflicts_with_another_manifest_giving_it_on_a_frame(store: Store) -> None:
    other = FM + 'owns: ["clip"]\n' + "files:\n  - name: v1.mp4\n    metadata: {label: x}\n"
    mine = FM + "files:\n  - name: v1.mp4\n    frames:\n      13: {clip: [1, 2, 3]}\n"
    setup(store, {"a.yaml": other, "b.yaml": mine})
    r = store.cli("validate")
    assert r.code == 1
    assert r.err.splitlines()[0] == (
        "Error: b.yaml:5:11: conflict: manifests a.yaml and b.yaml both own 'frames[13].clip' on "
        "name 'v1.mp4' in folder 'videos' (other selector at a.yaml:6:11)"
    )


def test_import_jsonl_rows_carry_frames_and_read_back_as_the_same_keys(tmp_path: Path) -> None:
    from reconciler.errors import Diagnostic, SourceLocation
    from reconciler.manifest.importer import _jsonl, _rows
    from reconciler.manifest.source import iter_source_rows
    from reconciler.model import LiveItem, SourceSpec
    from reconciler.providers.base import ListedItem

    keys: dict[str, JsonValue] = {"label": "x", "frames[2].label": "keep", "frames[13].clip": [0, 0, 0]}
    text = _jsonl(_rows([ListedItem("v1.mp4", LiveItem(V1, "f", "v1.mp4", "video", keys))]))
    assert json.loads(text) == {
        "name": "v1.mp4",
        "metadata": {"label": "x"},
        "frames": {"2": {"label": "keep"}, "13": {"clip": [0, 0, 0]}},
    }
    (tmp_path / "rows.jsonl").write_text(text)
    problems: list[Diagnostic] = []
    spec = SourceSpec("rows.jsonl", "jsonl", SourceLocation("a.yaml"))
    rows = list(iter_source_rows(tmp_path, spec, {}, problems))
    assert problems == []
    assert [r.values for r in rows] == [keys]


def test_a_saved_plan_applies_the_frame_keys_it_shows(store: Store) -> None:
    setup(store, {"a.yaml": MANIFEST})
    saved = store.cli("plan", "--out", str(store.root / "p.plan"))
    assert saved.code == 0, saved.err
    shown = store.cli("show", str(store.root / "p.plan"))
    assert shown.out.startswith(PLAN_TEXT.split("\n\n")[0])
    applied = store.cli("apply", str(store.root / "p.plan"))
    assert (applied.code, applied.err) == (0, ""), applied.err
    assert store.wire()[V1] == {
        "label": "x",
        "$encord": {
            "other": 1,
            "frame_metadata": {
                "2": {"label": "keep"},
                "13": {"clip": [1, 2, 3]},
                "20": {"clip": [4, 5, 6], "label": "twenty"},
            },
        },
    }
    again = store.cli("plan", "--detailed-exitcode")
    assert (again.code, again.out.splitlines()[0]) == (0, NO_CHANGES)
