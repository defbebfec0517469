"""source: JSONL and CSV rows, converted and checked, bad rows reported as path:line."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from reconciler.errors import Diagnostic, SourceLocation
from reconciler.manifest.source import SourceRow, iter_source_rows
from reconciler.model import Assignment, SelectorKind, SourceSpec
from reconciler.schema import Deletion, FieldSpec, KeyType

SCHEMA = {
    "count": FieldSpec(KeyType.NUMBER),
    "ok": FieldSpec(KeyType.BOOLEAN),
    "weather": FieldSpec(KeyType.ENUM, values=("rain", "snow")),
    "clip": FieldSpec(KeyType.EMBEDDING, size=2),
    "loc": FieldSpec(KeyType.GEOSPATIAL),
    "note": FieldSpec(KeyType.VARCHAR),
    "old": FieldSpec(KeyType.NUMBER, deleted=Deletion.SOFT),
}
UUID = "5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10"


def rows(tmp_path: Path, name: str, text: str, **kwargs: int) -> tuple[list[SourceRow], list[str]]:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / name).write_text(text, encoding="utf-8")
    fmt = "csv" if name.endswith(".csv") else "jsonl"
    spec = SourceSpec(f"data/{name}", fmt, SourceLocation("m.yaml", 5, 9))
    diagnostics: list[Diagnostic] = []
    out = list(iter_source_rows(tmp_path, spec, SCHEMA, diagnostics, **kwargs))
    return out, [str(d) for d in diagnostics]


def test_jsonl_rows(tmp_path: Path) -> None:
    got, problems = rows(
        tmp_path,
        "r.jsonl",
        '{"name": "a.jpg", "metadata": {"count": 1, "note": null, "other": "x"}}\n'
        "\n"
        f'{{"uuid": "{UUID.upper()}", "metadata": {{"keyframes": [1, 2]}}}}\n'
        '{"name": "b.jpg"}\n',
    )
    assert problems == []
    assert got == [
        SourceRow(
            SelectorKind.NAME,
            "a.jpg",
            {"count": 1, "note": None, "other": "x"},
            "data/r.jsonl",
            1,
            b'{"count": 1, "note": null, "other": "x"}',  # the metadata text, for the planner's fast path
        ),
        SourceRow(
            SelectorKind.UUID, UUID, {"keyframes": [1, 2]}, "data/r.jsonl", 3, b'{"keyframes": [1, 2]}'
        ),
        SourceRow(SelectorKind.NAME, "b.jpg", {}, "data/r.jsonl", 4),
    ]
    first = got[0]
    assert first.location == SourceLocation("data/r.jsonl", 1)
    assert first.metadata == {
        "count": Assignment(1, first.location),
        "note": Assignment(None, first.location),
        "other": Assignment("x", first.location),
    }


def test_jsonl_bad_rows_are_reported_and_skipped(tmp_path: Path) -> None:
    got, problems = rows(
        tmp_path,
        "r.jsonl",
        "\n".join(
            [
                '{"name": "ok", "metadata": {"count": 1}}',
                '{"name": "a", "metadata": {"count": "1"}}',
                '{"name": "b", "metadata": {"weather": "fog"}}',
                '{"name": "c", "metadata": {"clip": [1]}}',
                '{"name": "d" "metadata": {}}',
                "[1, 2]",
                '{"metadata": {}}',
                '{"name": "e", "uuid": "' + UUID + '"}',
                '{"uuid": "nope"}',
                '{"name": "", "metadata": {}}',
                '{"name": "f", "meta": {}}',
                '{"name": "g", "metadata": []}',
                '{"name": "h", "metadata": {"keyframes": [2, 1.5]}}',
                '{"name": "i", "metadata": {"loc": {"latitude": 100, "longitude": 0}}}',
            ]
        )
        + "\n",
    )
    assert [r.key for r in got] == ["ok"]
    assert problems == [
        "data/r.jsonl:2: count: expected a number, got the string '1'",
        "data/r.jsonl:3: weather: 'fog' is not one of the enum values [rain, snow]",
        "data/r.jsonl:4: clip: embedding needs 2 numbers, got 1",
        "data/r.jsonl:5: invalid JSON: Expecting ',' delimiter (column 14)",
        'data/r.jsonl:6: expected a JSON object like {"name": ..., "metadata": {...}}, got a list of 2 item(s)',
        'data/r.jsonl:7: a row needs "name" or "uuid"',
        'data/r.jsonl:8: a row takes only one of "name" or "uuid"',
        "data/r.jsonl:9: uuid 'nope' is not a UUID",
        "data/r.jsonl:10: name must be a non-empty string, got the string ''",
        'data/r.jsonl:11: unknown field \'meta\' (a row has "name" or "uuid", "metadata" and "frames")',
        "data/r.jsonl:12: metadata must be a JSON object, got a list of 0 item(s)",
        "data/r.jsonl:13: keyframes: item 1 must be a non-negative integer frame number (keyframe_mode: frame), "
        "got the number 1.5",
        "data/r.jsonl:14: loc: latitude 100 is out of range -90..90",
    ]


def test_jsonl_invalid_utf8(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "r.jsonl").write_bytes(b'{"name": "a"}\n{"name": "\xff"}\n')
    diagnostics: list[Diagnostic] = []
    spec = SourceSpec("data/r.jsonl", "jsonl", SourceLocation("m.yaml", 5, 9))
    got = list(iter_source_rows(tmp_path, spec, SCHEMA, diagnostics))
    assert [r.key for r in got] == ["a"]
    assert [str(d) for d in diagnostics] == ["data/r.jsonl:2: line is not valid UTF-8"]


def test_csv_rows_converted_by_schema_type(tmp_path: Path) -> None:
    got, problems = rows(
        tmp_path,
        "r.csv",
        "name,count,ok,weather,clip,loc,note,other\n"
        'a.jpg,5,TRUE,rain,"[1, 2.5]","{""latitude"": 1, ""longitude"": 2}",007,8\n'
        "b.jpg,,,,,,,\n"
        '"c\nd.jpg",1.5,false,snow,,,,\n',
    )
    assert problems == []
    assert got == [
        SourceRow(
            SelectorKind.NAME,
            "a.jpg",
            {
                "count": 5,
                "ok": True,
                "weather": "rain",
                "clip": [1, 2.5],
                "loc": {"latitude": 1, "longitude": 2},
                "note": "007",
                "other": "8",
            },
            "data/r.csv",
            2,
        ),
        SourceRow(SelectorKind.NAME, "b.jpg", {}, "data/r.csv", 3),
        SourceRow(
            SelectorKind.NAME, "c\nd.jpg", {"count": 1.5, "ok": False, "weather": "snow"}, "data/r.csv", 4
        ),
    ]
    assert [type(v) for v in got[0].values.values()][:2] == [int, bool]


def test_csv_deleted_key(tmp_path: Path) -> None:
    got, problems = rows(tmp_path, "r.csv", "name,old\na,1\nb,\n")
    assert [r.key for r in got] == ["b"]
    assert problems == ["data/r.csv:2: key 'old' is deleted in the schema"]


def test_csv_uuid_column(tmp_path: Path) -> None:
    got, problems = rows(tmp_path, "r.csv", f"count,uuid\n1,{UUID.upper()}\n2,bad\n")
    assert [(r.kind, r.key) for r in got] == [(SelectorKind.UUID, UUID)]
    assert problems == ["data/r.csv:3: uuid 'bad' is not a UUID"]


def test_csv_bad_rows_with_their_line_numbers(tmp_path: Path) -> None:
    got, problems = rows(
        tmp_path,
        "r.csv",
        "name,count,ok,weather,keyframes\n"
        "a,x,true,rain,\n"
        '"multi\nline",1,maybe,rain,\n'
        "b,1,true,fog,\n"
        "c,1\n"
        ",1,true,rain,\n"
        'd,1,true,rain,"[3, 1.5]"\n'
        "e,1,true,rain,[1\n"
        "ok,1,true,rain,[1]\n",
    )
    assert [r.key for r in got] == ["ok"]
    assert problems == [
        "data/r.csv:2: count: 'x' is not a number",
        "data/r.csv:3: ok: 'maybe' is not a boolean (write true or false)",
        "data/r.csv:5: weather: 'fog' is not one of the enum values [rain, snow]",
        "data/r.csv:6: expected 5 cells (like the header), got 2",
        "data/r.csv:7: empty name cell",
        "data/r.csv:8: keyframes: item 1 must be a non-negative integer frame number (keyframe_mode: frame), "
        "got the number 1.5",
        "data/r.csv:9: keyframes: '[1' is not a JSON list of frame numbers",
    ]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("count,ok", "data/r.csv:1: the header needs exactly one name or uuid column (found neither)"),
        ("name,uuid", "data/r.csv:1: the header needs exactly one name or uuid column (found name and uuid)"),
        ("name,a,a", "data/r.csv:1: duplicate column 'a'"),
        ("name,$x", "data/r.csv:1: column '$x': invalid metadata key '$x': must not start with '$'"),
    ],
)
def test_csv_bad_header(tmp_path: Path, header: str, message: str) -> None:
    got, problems = rows(tmp_path, "r.csv", header + "\nx,1,2\n")
    assert got == []
    assert problems == [message]


def test_empty_csv(tmp_path: Path) -> None:
    assert rows(tmp_path, "r.csv", "") == (
        [],
        ["data/r.csv:1: empty CSV file: expected a header row with a name or uuid column"],
    )


def test_missing_file(tmp_path: Path) -> None:
    diagnostics: list[Diagnostic] = []
    spec = SourceSpec("data/none.jsonl", "jsonl", SourceLocation("m.yaml", 5, 9))
    assert list(iter_source_rows(tmp_path, spec, SCHEMA, diagnostics)) == []
    assert [str(d) for d in diagnostics] == [
        "data/none.jsonl: cannot read source file: No such file or directory"
    ]


def test_errors_are_capped_with_a_summary(tmp_path: Path) -> None:
    text = "".join('{"name": "a", "metadata": {"count": "x"}}\n' for _ in range(7))
    got, problems = rows(tmp_path, "r.jsonl", text, max_errors=3)
    assert got == []
    assert problems == [
        "data/r.jsonl:1: count: expected a number, got the string 'x'",
        "data/r.jsonl:2: count: expected a number, got the string 'x'",
        "data/r.jsonl:3: count: expected a number, got the string 'x'",
        "data/r.jsonl: 4 more problem(s) in this source not shown (first 3 above)",
    ]


def test_rows_stream_without_growing_memory(tmp_path: Path) -> None:
    line = '{"name": "f%07d.jpg", "metadata": {"count": %d, "ok": true, "weather": "rain", "note": "n"}}\n'
    path = tmp_path / "data" / "big.jsonl"
    path.parent.mkdir()
    with path.open("w") as fh:
        for i in range(50_000):
            fh.write(line % (i, i))
    spec = SourceSpec("data/big.jsonl", "jsonl", SourceLocation("m.yaml", 5, 9))
    diagnostics: list[Diagnostic] = []
    tracemalloc.start()
    try:
        count = 0
        for _ in iter_source_rows(tmp_path, spec, SCHEMA, diagnostics):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert diagnostics == []
    assert peak < 2_000_000  # the file is ~4.5 MB; a stream holds a few rows at a time
