"""The JSONL reader's fast path says what the careful way says, row for row and message for message.

The fast path decodes a usual row once with orjson and checks its values with one generated test per key
sequence (``_Checkers.accepts``); anything it is not sure of is read again the careful way. Random lines
(valid and invalid values of every schema type, nulls, integers beyond 64 bits, uuid rows, per-frame rows,
bad JSON, blank lines, byte order marks, CRLF, bad UTF-8) are read both ways; so are random files split
into lines by the block reader and by ``readline``.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import Diagnostic, SourceLocation
from reconciler.manifest import source as source_mod
from reconciler.manifest.source import _Checkers, iter_source_rows
from reconciler.model import SourceSpec
from reconciler.schema import VARCHAR_MAX, Deletion, FieldSpec, KeyType

SCHEMA = {
    "s": FieldSpec(KeyType.VARCHAR),
    "t": FieldSpec(KeyType.TEXT),
    "n": FieldSpec(KeyType.NUMBER),
    "b": FieldSpec(KeyType.BOOLEAN),
    "d": FieldSpec(KeyType.DATETIME),
    "u": FieldSpec(KeyType.UUID),
    "e": FieldSpec(KeyType.ENUM, values=("red", "green")),
    "v": FieldSpec(KeyType.EMBEDDING, size=3),
    "g": FieldSpec(KeyType.GEOSPATIAL),
    "gone": FieldSpec(KeyType.VARCHAR, deleted=Deletion.SOFT),
}
UUID = "123e4567-e89b-42d3-a456-426614174000"
VALUES: dict[str, list[Any]] = {
    "s": ["x", "", "y" * VARCHAR_MAX, "y" * (VARCHAR_MAX + 1), 1, None],
    "t": ["long text", 2, None, ["x"]],
    "n": [0, -3, 2.5, 1e300, 2**63, 2**64, -(2**63) - 1, 10**30, True, "1", None, 1e-7],
    "b": [True, False, 0, "true", None],
    "d": ["2024-01-02T03:04:05Z", "2024-02-30", "2024-01-02", "yesterday", 5, None],
    "u": [UUID, UUID.upper(), "not-a-uuid", 7, None],
    "e": ["red", "green", "blue", 1, None],
    "v": [[1, 2.5, 3], [1, 2], [1, True, 3], [1, "x", 3], [2**70, 1, 1], [1e18, 9e18, 1e18], None],
    "g": [
        {"latitude": 1, "longitude": 2.5},
        {"latitude": 91, "longitude": 0},
        {"longitude": 0, "latitude": -90},
        {"latitude": 1},
        {"latitude": "1", "longitude": 2},
        None,
    ],
    "gone": [None, "x"],
    "free": ["x", 1, 2.5, 2**65, [1, 2], {"a": 2**70}, True, None],
    "bad name ": ["x"],
    "keyframes": [[1, 2], "x"],
    "frames[3].s": ["x"],
}


def rand_line(rng: random.Random, n: int) -> str:
    keys = rng.sample(list(VALUES), rng.randint(0, 5))
    md = {k: rng.choice(VALUES[k]) for k in keys}
    r = rng.random()
    if r < 0.55:
        row: Any = {"name": f"f{n}.jpg", "metadata": md}
    elif r < 0.65:
        row = {"uuid": rng.choice([UUID, UUID.upper(), "bad"]), "metadata": md}
    elif r < 0.7:
        row = {"name": f"f{n}.jpg", "metadata": md, "frames": {"2": {"s": "x"}}}
    elif r < 0.75:
        row = {"metadata": md, "name": f"f{n}.jpg"}
    elif r < 0.8:
        row = {"name": rng.choice(["", 5, "a"]), "metadata": rng.choice([md, [1], None])}
    elif r < 0.83:
        row = {"name": "x", "uuid": UUID, "metadata": md}
    elif r < 0.86:
        return rng.choice(["", "   ", "{", '{"name": "a.jpg", "metadata": {}} x', "[1]", "null", '"\u2028"'])
    else:
        row = {"name": f"f{n}.jpg", "metadata": md}
    sep = rng.choice([(", ", ": "), (",", ":")])
    return json.dumps(row, separators=sep, ensure_ascii=rng.random() < 0.5)


def read(root: Path, checkers_accept: bool) -> tuple[list[Any], list[Diagnostic]]:
    spec = SourceSpec("rows.jsonl", "jsonl", SourceLocation("m.yaml", 1, 1))
    diagnostics: list[Diagnostic] = []
    if checkers_accept:
        rows = list(iter_source_rows(root, spec, SCHEMA, diagnostics))
    else:  # every row's test says "not sure": every line is read the careful way
        original = source_mod._shape_test
        source_mod._shape_test = lambda kinds: lambda metadata: False
        try:
            rows = list(iter_source_rows(root, spec, SCHEMA, diagnostics))
        finally:
            source_mod._shape_test = original
    return rows, diagnostics


@pytest.mark.parametrize("seed", range(10))
def test_the_fast_path_reads_what_the_careful_way_reads(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    fast_rows = 0
    for _ in range(10):
        lines = [rand_line(rng, n) for n in range(rng.randint(1, 60))]
        data = "".join(x + rng.choice(["\n", "\n", "\r\n"]) for x in lines).encode()
        if rng.random() < 0.2:
            data = b"\xef\xbb\xbf" + data  # a byte order mark
        if rng.random() < 0.1:
            data += b'{"name": "z.jpg", "metadata": {"s": "\xff"}}\n'  # not UTF-8
        if rng.random() < 0.3:
            data = data.rstrip(b"\n")  # no newline at the end
        (tmp_path / "rows.jsonl").write_bytes(data)
        fast = read(tmp_path, True)
        careful = read(tmp_path, False)
        assert fast == careful, data
        fast_rows += len(fast[0])
    assert fast_rows > 50


def big_floats(value: object) -> bool:
    if type(value) is float:
        return abs(value) >= 2.0**63
    if type(value) is list:
        return any(map(big_floats, value))
    if type(value) is dict:
        return any(map(big_floats, value.values()))
    return False


@pytest.mark.parametrize("seed", range(5))
def test_accepts_only_what_check_all_accepts(seed: int) -> None:
    """``accepts`` is never wrong: what it accepts, ``check_all`` finds nothing in, and holds no float that an
    integer beyond 64 bits could have become; and it accepts the usual valid rows (it is not vacuous). It says
    2 exactly when one of the values it accepts is ``null`` (a key to remove), else 1."""
    rng = random.Random(seed)
    checkers = _Checkers(SCHEMA)
    accepted = valid = with_null = 0
    for _ in range(3000):
        keys = rng.sample([*VALUES, "free"], rng.randint(0, 6))
        md = {k: rng.choice(VALUES.get(k, ["z", 7, 2.5, True, None, [1]])) for k in keys}
        ok = checkers.check_all(md) is None
        valid += ok
        verdict = checkers.accepts(md)
        assert verdict in (0, 1, 2)
        if verdict:
            accepted += 1
            with_null += verdict == 2
            assert ok and not big_floats(md), md
            assert (verdict == 2) == (None in md.values()), md
    assert accepted > valid / 4 and accepted / 4 > with_null > 0


def reference_lines(data: bytes, limit: int) -> list[bytes]:
    """What ``readline(limit + 1)`` splits, each without its newline; the over-long line as read, last."""
    out: list[bytes] = []
    fh = io.BytesIO(data)
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return out
        if len(raw) > limit:
            out.append(raw)
            return out
        out.append(raw[:-1] if raw.endswith(b"\n") else raw)


@pytest.mark.parametrize("seed", range(20))
def test_line_blocks_split_as_readline_does(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    limit = rng.randint(3, 40)
    monkeypatch.setattr(source_mod, "MAX_ROW_BYTES", limit)
    monkeypatch.setattr(source_mod, "_BLOCK_BYTES", rng.randint(1, 50))
    parts = [rng.choice([b"a", b"bc", b"\n", b"\r", b"\r\n", b"x" * rng.randint(0, 45)]) for _ in range(60)]
    data = b"".join(parts)
    got = [line for block in source_mod._line_blocks(io.BytesIO(data)) for line in block]
    assert got == reference_lines(data, limit), data
