"""Videos through the real CLI (SPEC §7c): the reserved ``config`` and ``keyframes`` keys and ``$encord``, on
the embedded store.

Each good scenario ends with a ``plan`` that shows no changes; each bad input is one located error, exit 1,
and nothing written.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from reconciler.types import JsonValue
from tests.helpers.cli import run, write

F_UUID = "f0000000-0000-4000-8000-000000000001"
V1 = "a0000000-0000-4000-8000-000000000001"
V2 = "a0000000-0000-4000-8000-000000000002"
V3 = "a0000000-0000-4000-8000-000000000003"
WS = "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite, path: live.db, seed: live.json}\n"
SCH = "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  when: datetime\n  clip: text\n"
FM = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: videos\n"
NO_CHANGES = "No changes. Live state matches the manifests."

#: Keyframes another tool wrote, out of order; a video sampled in seconds; Encord's own ``$encord`` key.
LIVE_METADATA: dict[str, dict[str, JsonValue]] = {
    V1: {"keyframes": [60, 0, 30], "clip": "a"},
    V2: {"config": {"sampling_rate": 2, "keyframe_mode": "seconds"}, "keyframes": [1.5, 3.0, 0.5]},
    V3: {"$encord": {"frame_metadata": {"13": {"clip": "x"}}}},
}


def live(metadata: dict[str, dict[str, JsonValue]]) -> str:
    items = [
        {"uuid": u, "folder": F_UUID, "name": f"v{i}.mp4", "item_type": "video", "client_metadata": md}
        for i, (u, md) in enumerate(sorted(metadata.items()), 1)
    ]
    snapshot = {
        "format_version": "1",
        "schema": {"when": {"ty": "variant", "hint": "datetime"}, "clip": {"ty": "variant", "hint": "text"}},
        "folders": [{"uuid": F_UUID, "parent": None, "name": "videos"}],
        "items": items,
    }
    return json.dumps(snapshot)


def live_metadata(root: Path) -> dict[str, JsonValue]:
    db = sqlite3.connect(root / "live.db")
    try:
        return {u: json.loads(md) for u, md in db.execute("SELECT uuid, metadata FROM items ORDER BY uuid")}
    finally:
        db.close()


def workspace(
    tmp_path: Path, files: dict[str, str], metadata: dict[str, dict[str, JsonValue]] | None = None
) -> Path:
    base = {"ws.yaml": WS, "s.yaml": SCH, "live.json": live(LIVE_METADATA if metadata is None else metadata)}
    return write(tmp_path / "m", {**base, **files})


def test_live_keyframes_in_any_order_and_seconds_import_validate_and_round_trip(tmp_path: Path) -> None:
    root = workspace(tmp_path, {})
    assert run(["-C", str(root), "plan"]).code == 0  # creates live.db from the seed
    out = tmp_path / "imported"
    imported = run(["import", "--provider", f"sqlite:{root / 'live.db'}", "--out", str(out)])
    assert imported.code == 0, imported.err
    validated = run(["-C", str(out), "validate"])
    # No warning: $encord and config are reserved keys, never "undeclared" and never a bad key name.
    assert (validated.code, validated.err) == (0, ""), validated.err
    manifest = (out / "files" / "videos.yaml").read_text()
    assert "keyframes: [60, 0, 30]" in manifest
    assert "keyframes: [1.5, 3.0, 0.5]" in manifest
    again = run(["-C", str(out), "plan", "--detailed-exitcode"])
    assert (again.code, again.err) == (0, "")
    assert again.out.splitlines()[0] == NO_CHANGES


def test_seconds_keyframes_from_a_manifest_apply_in_the_order_written(tmp_path: Path) -> None:
    manifest = (
        FM
        + "defaults:\n  config: {keyframe_mode: seconds, sampling_rate: 0}\n"
        + "files:\n  - name: v1.mp4\n    metadata: {keyframes: [3.0, 1.5]}\n"
        + "  - name: v2.mp4\n    metadata: {config: {keyframe_mode: frame}, keyframes: [60, 0, 30]}\n"
    )
    root = workspace(tmp_path, {"a.yaml": manifest}, {V1: {}, V2: {}})
    applied = run(["-C", str(root), "apply", "--auto-approve"])
    assert (applied.code, applied.err) == (0, ""), applied.err
    assert live_metadata(root) == {
        V1: {"config": {"keyframe_mode": "seconds", "sampling_rate": 0}, "keyframes": [3.0, 1.5]},
        V2: {"config": {"keyframe_mode": "frame"}, "keyframes": [60, 0, 30]},
    }
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.out.splitlines()[0]) == (0, NO_CHANGES)


def test_seconds_keyframes_in_a_source_follow_the_defaults_config(tmp_path: Path) -> None:
    rows = '{"name": "v1.mp4", "metadata": {"keyframes": [0.5, 2]}}\n'
    manifest = FM + "defaults:\n  config: {keyframe_mode: seconds}\nsource: rows.jsonl\n"
    root = workspace(tmp_path, {"a.yaml": manifest, "rows.jsonl": rows}, {V1: {}})
    assert run(["-C", str(root), "validate"]).code == 0
    assert run(["-C", str(root), "apply", "--auto-approve"]).code == 0
    assert live_metadata(root) == {V1: {"config": {"keyframe_mode": "seconds"}, "keyframes": [0.5, 2]}}
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.out.splitlines()[0]) == (0, NO_CHANGES)


ENTRY = FM + "files:\n  - name: v1.mp4\n    metadata:\n"
BAD = {
    "keyframe_mode: secs": (
        ENTRY + "      config: {keyframe_mode: secs}\n",
        "a.yaml:7:31: config.keyframe_mode: invalid value 'secs' (expected one of frame, seconds); "
        "did you mean 'seconds'?",
    ),
    "sampling_rate: -1": (
        ENTRY + "      config: {sampling_rate: -1}\n",
        "a.yaml:7:31: config.sampling_rate must be at least 0, got -1",
    ),
    "config not a mapping": (
        ENTRY + "      config: 30\n",
        "a.yaml:7:15: config: expected a mapping (sampling_rate, keyframe_mode), got the number 30",
    ),
    "unknown config key": (
        ENTRY + "      config:\n        fps: 30\n",
        "a.yaml:8:9: config: unknown field 'fps' (allowed fields: keyframe_mode, sampling_rate)",
    ),
    "fractional keyframes in frame mode": (
        ENTRY + "      keyframes: [1.5, 3.0]\n",
        "a.yaml:7:18: keyframes: item 0 must be a non-negative integer frame number (keyframe_mode: frame), "
        "got the number 1.5",
    ),
    "fractional keyframes under a defaults config in frame mode": (
        FM
        + "defaults: {config: {keyframe_mode: frame}}\nfiles:\n  - name: v1.mp4\n"
        + "    metadata: {keyframes: [0, 2.5]}\n",
        "a.yaml:7:27: keyframes: item 1 must be a non-negative integer frame number (keyframe_mode: frame), "
        "got the number 2.5",
    ),
    "negative seconds in a source row": (
        FM + "defaults: {config: {keyframe_mode: seconds}}\nsource: rows.jsonl\n",
        "rows.jsonl:1: keyframes: item 0 must be a non-negative number of seconds (keyframe_mode: seconds), "
        "got the number -1",
    ),
    "config declared in the schema": (
        FM,
        "s.yaml:6:3: invalid metadata key 'config': 'config' is reserved (a video's sampling config)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_bad_video_input_is_one_located_error_and_nothing_is_written(
    tmp_path: Path, case: str, command: str
) -> None:
    manifest, message = BAD[case]
    files = {"a.yaml": manifest, "rows.jsonl": '{"name": "v1.mp4", "metadata": {"keyframes": [-1]}}\n'}
    if case == "config declared in the schema":
        files["s.yaml"] = SCH + "  config: text\n"
    root = workspace(tmp_path, files, {V1: {"clip": "keep"}})
    res = run(["-C", str(root), command, *(["--auto-approve"] if command == "apply" else [])])
    assert (res.code, res.out, res.err) == (
        1,
        "",
        f"Error: {message}\n1 problem found; nothing was written.\n",
    )
    if (root / "live.db").exists():
        assert live_metadata(root) == {V1: {"clip": "keep"}}


def test_config_and_encord_get_no_undeclared_key_advice(tmp_path: Path) -> None:
    manifest = (
        FM
        + "files:\n  - name: v1.mp4\n    metadata:\n      config: {sampling_rate: 1}\n"
        + "      $encord: {frame_metadata: {}}\n      other: x\n"
    )
    ws = WS + "settings: {undeclared_keys: warn}\n"
    root = workspace(tmp_path, {"a.yaml": manifest, "ws.yaml": ws}, {V1: {}})
    res = run(["-C", str(root), "validate"])
    assert (res.code, res.err) == (
        0,
        "Warning: a.yaml:9:14: key 'other' is not declared in the metadata schema\n",
    )


def test_live_reserved_values_a_manifest_would_refuse_are_left_out_of_an_import(tmp_path: Path) -> None:
    metadata: dict[str, dict[str, JsonValue]] = {
        V1: {"config": {"fps": 30}, "clip": "a"},
        V2: {"keyframes": [1.5]},  # fractional, but no keyframe_mode: seconds
        V3: {"config": {"keyframe_mode": "frame"}, "keyframes": [60, 0, 30]},
    }
    root = workspace(tmp_path, {}, metadata)
    assert run(["-C", str(root), "plan"]).code == 0
    out = tmp_path / "imported"
    imported = run(["import", "--provider", f"sqlite:{root / 'live.db'}", "--out", str(out)])
    assert imported.code == 0, imported.err
    assert imported.err == (
        f"Warning: {out / 'files' / 'videos.yaml'}: live values of reserved keys that a manifest would refuse "
        "were left out; these keys are not owned: config, keyframes (name 'v1.mp4': config: unknown field "
        "'fps' (allowed fields: keyframe_mode, sampling_rate)) (and 1 more)\n"
    )
    manifest = (out / "files" / "videos.yaml").read_text()
    assert "owns: [clip]\n" in manifest
    assert "    metadata: {}\n" in manifest  # v2.mp4: its keyframes are left as they are
    assert run(["-C", str(out), "validate"]).code == 0
    again = run(["-C", str(out), "plan", "--detailed-exitcode"])
    assert (again.code, again.err) == (0, "")
    assert again.out.splitlines()[0] == NO_CHANGES
    assert live_metadata(root) == metadata
