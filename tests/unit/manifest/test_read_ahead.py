"""A JSONL source read ahead by a forked process gives exactly the rows and messages of reading it here.

``ReadAhead`` (the reader is a forked copy of the test process) hands on usual rows by column (name, line,
digest, offset) and every other line as it is; the planning process reads those lines itself, may read the
last part of the source itself while the reader reads on to there, and reads the rest itself if the reader
stops early. Random files (the lines of ``test_source_fast``: good and bad values, bad JSON, blank lines, byte
order marks, CRLF, uuid rows, per-frame rows) are read both ways, with the split, with the reader killed at
once, with lines too long, and with some keys not known (those rows are handed on as they are).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import Diagnostic, SourceLocation
from reconciler.manifest import source as source_mod
from reconciler.manifest.source import FastRows, ReadAhead, iter_source_rows, read_ahead
from reconciler.model import SourceSpec
from reconciler.reserved import RESERVED_KEYS
from tests.unit.manifest.test_source_fast import SCHEMA, rand_line

SPEC = SourceSpec("rows.jsonl", "jsonl", SourceLocation("m.yaml", 1, 1))


@pytest.fixture(autouse=True)
def _small_sources_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_mod, "AHEAD_MIN_BYTES", 0)  # (the sources here are small)


def here(root: Path) -> tuple[list[Any], list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    return list(iter_source_rows(root, SPEC, SCHEMA, diagnostics)), diagnostics


def ahead(root: Path, known: set[str] | None, kill: bool = False) -> tuple[list[Any], list[Diagnostic], int]:
    """The rows (each usual row read again by ``ReadAhead.row``), the messages, and how many rows came usual."""
    reader = read_ahead(root, SPEC, SCHEMA, known)
    assert isinstance(reader, ReadAhead)
    if kill:
        assert reader.pid is not None
        os.kill(reader.pid, signal.SIGKILL)
    diagnostics: list[Diagnostic] = []
    rows: list[Any] = []
    usual = 0
    for item in reader.rows(diagnostics):
        if type(item) is FastRows:
            for j, name in enumerate(item.names):
                row = reader.row(item.lines[j], item.offsets[j], item.lengths[j])
                assert row is not None and row.key == name and row.line == item.lines[j]
                assert row.text is not None and hash(row.text) == item.digests[j]
                assert known is None or known.issuperset(row.values)
                rows.append(row)
                usual += 1
        else:
            rows.append(item)
    assert reader.pid is None  # the reader is stopped and reaped once the rows are read
    return rows, diagnostics, usual


def usual_line(rng: random.Random, n: int) -> str:
    md = {"s": rng.choice(["x", "y"]), "n": rng.choice([1, 2.5]), "v": [0.5, 1.5, rng.random()]}
    return json.dumps({"name": f"g{n}.jpg", "metadata": md})


def write_random(root: Path, rng: random.Random, lines: int, usual: float = 0.7) -> bytes:
    pick = [usual_line if rng.random() < usual else rand_line for _ in range(lines)]
    data = "".join(f(rng, n) + rng.choice(["\n", "\n", "\r\n"]) for n, f in enumerate(pick)).encode()
    if rng.random() < 0.2:
        data = b"\xef\xbb\xbf" + data
    if rng.random() < 0.3:
        data = data.rstrip(b"\n")
    (root / "rows.jsonl").write_bytes(data)
    return data


def _slow_scan(scan: Any, *, start: float, each: float) -> Any:
    """``scan`` (the reader's ``_scan_usual``) that waits ``start`` seconds, then ``each`` at every poll (in the
    forked copy: slow throughout)."""

    def slow_reader(fh: Any, offset: int, checkers: Any, known: Any, put: Any, poll: Any = None) -> None:
        def slow_poll(offset: int, stop: int) -> int:
            time.sleep(each)
            return poll(offset, stop)

        time.sleep(start)
        scan(fh, offset, checkers, known, put, slow_poll)

    return slow_reader


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "how", ["whole", "split", "parts", "parts, long lines", "killed", "long lines", "unknown keys"]
)
def test_read_ahead_reads_what_reading_here_reads(
    tmp_path: Path, seed: int, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(f"{seed}{how}")
    # Small blocks and frames: the reader hands on many frames and looks for a split often.
    monkeypatch.setattr(source_mod, "_BLOCK_BYTES", rng.choice([64, 256, 4096]))
    monkeypatch.setattr(source_mod, "_FRAME_BYTES", 1024)
    known: set[str] | None = None
    if how.startswith("parts"):  # many small parts of the end read here, the reader slow to start
        monkeypatch.setattr(source_mod, "_TAKE_BYTES", rng.choice([200, 1000, 3000]))
        if how.endswith("long lines"):
            monkeypatch.setattr(source_mod, "MAX_ROW_BYTES", rng.randint(100, 400))
    if how == "split" or how.startswith("parts"):
        monkeypatch.setattr(source_mod, "_SPLIT_MIN", 0)
        original = source_mod._reader

        def slow_reader(*args: Any) -> None:  # (in the forked copy) starts once the split is asked for
            time.sleep(0.1)
            original(*args)

        monkeypatch.setattr(source_mod, "_reader", slow_reader)
    elif how == "long lines":
        monkeypatch.setattr(source_mod, "MAX_ROW_BYTES", rng.randint(60, 400))
    elif how == "unknown keys":
        known = set(rng.sample(sorted(SCHEMA), 4)) | {"s", "n", "v"} | RESERVED_KEYS
    taken = [0]
    take = source_mod.ReadAhead._take

    def counted_take(self: ReadAhead) -> bool:
        got = take(self)
        taken[0] += got
        return got

    monkeypatch.setattr(source_mod.ReadAhead, "_take", counted_take)
    usual = 0
    for _ in range(6):
        data = write_random(tmp_path, rng, rng.randint(1, 300))
        want = here(tmp_path)
        rows, diagnostics, n = ahead(tmp_path, known, kill=how == "killed")
        assert (rows, diagnostics) == want, data
        usual += n
    if how not in ("killed", "long lines"):  # (killed at once, a frame or two may be handed on)
        assert usual > 30
    if how.startswith("parts"):
        assert taken[0] > 0


def test_the_split_is_read_here_while_the_reader_reads_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the reader slow to start, the planning process reads parts of the end itself (each from a line
    start the reader agreed to stop at, up to the part before) and the rows are still those of reading it all
    here, in order."""
    monkeypatch.setattr(source_mod, "_SPLIT_MIN", 0)
    monkeypatch.setattr(source_mod, "_TAKE_BYTES", 4000)
    monkeypatch.setattr(source_mod, "_BLOCK_BYTES", 8192)
    slow_scan = source_mod._scan_usual
    slow_reader = _slow_scan(slow_scan, start=0.1, each=0.01)
    monkeypatch.setattr(source_mod, "_scan_usual", slow_reader)  # (the reader's: replaced below, once forked)
    rng = random.Random(7)
    write_random(tmp_path, rng, 2000)
    scanned: list[int] = []
    original_scan = slow_scan

    def scan(fh: Any, offset: int, *args: Any, **kwargs: Any) -> None:
        scanned.append(offset)  # (this process only: the reader is forked before this is set... see below)
        original_scan(fh, offset, *args, **kwargs)

    reader = read_ahead(tmp_path, SPEC, SCHEMA, None)
    assert reader is not None
    monkeypatch.setattr(source_mod, "_scan_usual", scan)  # set after the fork: counts this process's scans
    diagnostics: list[Diagnostic] = []
    got: list[Any] = []
    for item in reader.rows(diagnostics):
        if type(item) is FastRows:
            got += [
                reader.row(item.lines[j], item.offsets[j], item.lengths[j]) for j in range(len(item.names))
            ]
        else:
            got.append(item)
    size = (tmp_path / "rows.jsonl").stat().st_size
    assert len(scanned) > 3 and scanned == sorted(scanned, reverse=True) and scanned[-1] > 0
    assert size - 4000 <= scanned[0] < size
    assert (got, diagnostics) == here(tmp_path)


@pytest.mark.parametrize("seed", range(4))
def test_a_part_the_reader_agreed_to_but_not_kept_is_read_here_after_all(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the reader stops at a line this process did not take a part from (an answer misread, say), the rest
    is read here from where the reader stopped: the rows are still those of reading it all here."""
    rng = random.Random(seed)
    monkeypatch.setattr(source_mod, "_SPLIT_MIN", 0)
    monkeypatch.setattr(source_mod, "_TAKE_BYTES", rng.choice([500, 2000]))
    monkeypatch.setattr(source_mod, "_BLOCK_BYTES", 256)
    monkeypatch.setattr(source_mod, "_FRAME_BYTES", 1024)
    slow_reader = _slow_scan(source_mod._scan_usual, start=0.0, each=0.002)

    take = source_mod.ReadAhead._take
    forgot = [0]

    def forgetful(self: ReadAhead) -> bool:
        got = take(self)
        if got and len(self._own) == 2:  # the reader stops at the second part's line; it is dropped here
            self._own.pop()
            self._end = -1
            forgot[0] += 1
            return False
        return got

    monkeypatch.setattr(source_mod.ReadAhead, "_take", forgetful)
    for _ in range(3):
        write_random(tmp_path, rng, rng.randint(100, 300))
        want = here(tmp_path)
        with monkeypatch.context() as mp:
            mp.setattr(source_mod, "_scan_usual", slow_reader)
            reader = read_ahead(tmp_path, SPEC, SCHEMA, None)  # (forked with the slow scan)
        assert reader is not None
        diagnostics: list[Diagnostic] = []
        rows: list[Any] = []
        for item in reader.rows(diagnostics):
            if type(item) is FastRows:
                rows += [
                    reader.row(item.lines[j], item.offsets[j], item.lengths[j])
                    for j in range(len(item.names))
                ]
            else:
                rows.append(item)
        assert (rows, diagnostics) == want
    assert forgot[0] == 3


def test_a_reader_of_mostly_other_lines_stops_and_they_are_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source of mostly unusual lines (uuid rows, say) is not worth reading twice: the reader stops after a
    frame of them and the rest is read here; the rows are those of reading it all here."""
    monkeypatch.setattr(source_mod, "_BLOCK_BYTES", 256)
    monkeypatch.setattr(source_mod, "_FRAME_BYTES", 1024)
    rng = random.Random(3)
    uuid_rows = [
        json.dumps({"uuid": f"{n:08x}-e89b-42d3-a456-426614174000", "metadata": {"s": "x"}})
        for n in range(400)
    ]
    (tmp_path / "rows.jsonl").write_text("".join(x + "\n" for x in uuid_rows))
    frames: list[int] = []
    original = source_mod.ReadAhead._read_frames

    def counted(self: ReadAhead) -> Any:
        for frame in original(self):
            frames.append(len(frame[0]))
            yield frame

    monkeypatch.setattr(source_mod.ReadAhead, "_read_frames", counted)
    rows, diagnostics, usual = ahead(tmp_path, None)
    assert (rows, diagnostics) == here(tmp_path) and len(rows) == 400 and usual == 0
    assert len(frames) == 1  # (then the reader stopped: 400 rows take about 30 frames of 1 KiB)
    del rng


def test_no_read_ahead_where_the_source_cannot_be_opened(tmp_path: Path) -> None:
    assert read_ahead(tmp_path, SPEC, SCHEMA, None) is None  # (reading it here says why)


def test_no_read_ahead_of_a_small_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rows.jsonl").write_text('{"name": "a.jpg", "metadata": {}}\n')
    monkeypatch.setattr(source_mod, "AHEAD_MIN_BYTES", 64 << 20)
    assert read_ahead(tmp_path, SPEC, SCHEMA, None) is None
