"""``source: upload.json``: Encord's registration (cloud-integration upload) JSON as desired state (SPEC §3.3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import Diagnostic, SourceLocation
from reconciler.manifest.source import REGISTRATION_SECTIONS, iter_source_rows
from reconciler.model import SelectorKind, SourceSpec
from reconciler.types import JsonValue
from tests.e2e.test_cli_sqlite import FM, live_metadata, workspace
from tests.helpers.cli import run

F_UUID = "f0000000-0000-4000-8000-000000000001"
LIVE = {
    "format_version": "1",
    "schema": {},
    "folders": [{"uuid": F_UUID, "parent": None, "name": "f"}],
    "items": [
        {"uuid": f"a0000000-0000-4000-8000-00000000000{i}", "folder": F_UUID, "name": name,
         "item_type": kind, "client_metadata": md}
        for i, (name, kind, md) in enumerate(
            [("cam01.mp4", "video", {"theirs": "keep"}), ("img.jpg", "image", {}),
             ("scan-07", "imageGroup", {"n": 1}), ("series-1", "dicomSeries", {})], 1)
    ],
}  # fmt: skip

UPLOAD = """{
  "videos": [
    {
      "objectUrl": "https://bucket.example/cam01.mp4",
      "title": "cam01.mp4",
      "clientMetadata": {"weather": "rain", "keyframes": [13, 17, 19], "n": 2}
    }
  ],
  "images": [
    {"objectUrl": "https://bucket.example/img.jpg", "title": "img.jpg", "clientMetadata": {"ok": true}}
  ],
  "image_groups": [
    {"title": "scan-07", "createVideo": false, "objectUrl_0": "https://bucket.example/1.png",
     "clientMetadata": {"n": 7}}
  ],
  "dicom_series": [
    {"title": "series-1", "objectUrl_0": "https://bucket.example/1.dcm", "clientMetadata": {}}
  ],
  "skip_duplicate_urls": true
}
"""


def test_registration_json_plan_apply_plan(tmp_path: Path) -> None:
    root = workspace(
        tmp_path, live__json=json.dumps(LIVE), a__yaml=FM + "source: upload.json\n", upload__json=UPLOAD
    )
    plan = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (plan.code, plan.err) == (2, "")
    assert plan.out.split("Folder f:\n")[1] == (
        "  ~ cam01.mp4             merge\n"
        "      + keyframes         [13, 17, 19]\n"
        "      + n                 2\n"
        '      + weather           "rain"\n'
        "  ~ img.jpg               merge\n"
        "      + ok                true\n"
        "  ~ scan-07               merge\n"
        "      ~ n                 1 -> 7\n"
        "\n"
        "Plan: schema 6 to add, 0 to change, 0 to delete; files 3 to update (3 merge, 0 overwrite), 1 unchanged.\n"
    )
    applied = run(["-C", str(root), "apply", "--auto-approve"])
    assert applied.code == 0, applied.out + applied.err
    assert live_metadata(root) == {
        "a0000000-0000-4000-8000-000000000001": {
            "theirs": "keep", "weather": "rain", "keyframes": [13, 17, 19], "n": 2
        },
        "a0000000-0000-4000-8000-000000000002": {"ok": True},
        "a0000000-0000-4000-8000-000000000003": {"n": 7},
        "a0000000-0000-4000-8000-000000000004": {},
    }  # fmt: skip
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.out.splitlines()[0]) == (0, "No changes. Live state matches the manifests.")


BAD = {
    "no title": (
        '{"videos": [\n  {"objectUrl": "s3://b/x.mp4", "clientMetadata": {}}\n]}\n',
        "upload.json:2: an entry of 'videos' has no \"title\" (its file is found by title)",
    ),
    "two entries of one title": (
        '{"videos": [{"title": "cam01.mp4"}],\n "images": [\n  {"title": "cam01.mp4"}\n]}\n',
        "upload.json:3: title 'cam01.mp4' appears twice (first at line 1); give each file one entry",
    ),
    "clientMetadata not an object": (
        '{"images": [\n{"title": "img.jpg",\n "clientMetadata": "{\\"n\\": 1}"}]}\n',
        "upload.json:2: entry 'img.jpg': clientMetadata must be a JSON object, got the string '{\"n\": 1}'",
    ),
    "a value the schema refuses": (
        '{"images": [\n\n{"title": "img.jpg", "clientMetadata": {"weather": "snow"}}]}\n',
        "upload.json:3: weather: 'snow' is not one of the enum values [rain, sunny]",
    ),
    "unknown section": (
        '{"video": []}\n',
        "upload.json:1: unknown section 'video' in a registration JSON (known: "
        + ", ".join(REGISTRATION_SECTIONS)
        + ", skip_duplicate_urls)",
    ),
    "a frame number that is not a non-negative integer": (
        '{"videos": [\n  {"title": "cam01.mp4",\n   "clientMetadata": {"$encord": {"frame_metadata": {"-1": {"n": 1}}}}}\n]}\n',
        "upload.json:2: entry 'cam01.mp4': $encord.frame_metadata: '-1' is not a frame number (a non-negative "
        "integer such as 0 or 13)",
    ),
    "a frame that is not an object": (
        '{"videos": [{"title": "cam01.mp4", "clientMetadata": {"$encord": {"frame_metadata": {"13": [1]}}}}]}\n',
        "upload.json:1: entry 'cam01.mp4': $encord.frame_metadata.13: expected a mapping of metadata keys to "
        "values, got a list of 1 item(s)",
    ),
    "frame_metadata that is not an object": (
        '{"videos": [{"title": "cam01.mp4", "clientMetadata": {"$encord": {"frame_metadata": 5}}}]}\n',
        "upload.json:1: entry 'cam01.mp4': $encord.frame_metadata: expected a mapping of frame numbers to "
        "metadata, got the number 5",
    ),
    "a title that is no file of the folder": (
        '{"videos": [\n  {"title": "cam09.mp4", "clientMetadata": {"n": 1}}\n]}\n',
        "upload.json:2: name 'cam09.mp4' matches no file in folder 'f' (set on_missing: warn or ignore to allow)",
    ),
    "not an object": (
        '[{"title": "x"}]\n',
        'upload.json:1: a registration JSON is one object with sections such as "videos" and "images" '
        "(Encord's upload file), found '['",
    ),
    "invalid JSON": (
        '{"images": [\n  {"title": "img.jpg",}\n]}\n',
        "upload.json:2: invalid JSON: Expecting property name enclosed in double quotes (column 23)",
    ),
    "truncated": (
        '{"images": [\n  {"title": "img.jpg"}',
        "upload.json:2: invalid JSON: expected ',' between entries of 'images', found the end of the file",
    ),
    "entry not an object": (
        '{"images": [1]}',
        "upload.json:1: an entry of 'images' must be an object, got the number 1",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_registration_json_is_a_located_error(tmp_path: Path, case: str) -> None:
    text, message = BAD[case]
    root = workspace(
        tmp_path, live__json=json.dumps(LIVE), a__yaml=FM + "source: upload.json\n", upload__json=text
    )
    for command in (["plan"], ["apply", "--auto-approve"]):
        res = run(["-C", str(root), *command], cwd=root)  # locations relative to the current directory
        assert (res.code, res.out, res.err) == (
            1,
            "",
            f"Error: {message}\n1 problem found; nothing was written.\n",
        )
    assert live_metadata(root) == {
        "a0000000-0000-4000-8000-000000000001": {"theirs": "keep"},
        "a0000000-0000-4000-8000-000000000002": {},
        "a0000000-0000-4000-8000-000000000003": {"n": 1},
        "a0000000-0000-4000-8000-000000000004": {},
    }


def _rows(tmp_path: Path, text: str) -> tuple[list[tuple[str, dict[str, JsonValue], int]], list[str]]:
    (tmp_path / "u.json").write_text(text)
    diags: list[Diagnostic] = []
    spec = SourceSpec("u.json", "registration", SourceLocation("a.yaml", 1))
    rows = [(r.key, dict(r.values), r.line) for r in iter_source_rows(tmp_path, spec, {}, diags)]
    assert all(r.kind is SelectorKind.NAME for r in iter_source_rows(tmp_path, spec, {}, []))
    return rows, [f"{d.location}: {d.message}" for d in diags]


def test_entries_across_chunk_boundaries_keep_their_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.manifest.source as source

    monkeypatch.setattr(source, "_CHUNK_CHARS", 7)  # every value spans several reads
    entries = ",\n".join(
        json.dumps({"title": f"f{i}.jpg", "clientMetadata": {"i": i, "pi": 3.14159}}) for i in range(50)
    )
    rows, problems = _rows(tmp_path, '{\n"images": [\n' + entries + '\n],\n"skip_duplicate_urls": false}\n')
    assert problems == []
    assert rows == [(f"f{i}.jpg", {"i": i, "pi": 3.14159}, 3 + i) for i in range(50)]


def test_column_of_an_error_after_a_chunk_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.manifest.source as source

    monkeypatch.setattr(source, "_CHUNK_CHARS", 5)
    _, problems = _rows(tmp_path, '{"images": [{"title": "a"}, {"title": "b",}]}')
    assert problems == [
        "u.json:1: invalid JSON: Expecting property name enclosed in double quotes (column 43)"
    ]


def test_deep_nesting_is_a_located_error(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    rows, problems = _rows(tmp_path, '{"images": [{"title": "a", "clientMetadata": {"k": ' + deep + "}}]}")
    assert rows == []
    assert problems == ["u.json:1: invalid JSON: nested too deeply"]


def test_the_readme_example_reads_as_documented(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("- **Registration JSON**", 1)[1]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    rows, problems = _rows(tmp_path, "\n".join(line.strip() for line in example.splitlines()))
    assert problems == []
    assert rows == [
        ("cam01.mp4", {"capture.weather": "rain", "keyframes": [13, 17, 19]}, 1),
        ("scan-07", {"patient": "p7"}, 3),
    ]
