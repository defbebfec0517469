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
    rows, usual = _rows_of(reader, diagnostics, known)
    assert reader.pid is None  # the reader is stopped and reaped once the rows are read
    return rows, diagnostics, usual


def _rows_of(
    reader: ReadAhead, diagnostics: list[Diagnostic], known: set[str] | None = None
) -> tuple[list[Any], int]:
    """The rows, each usual row read again and checked by ``ReadAhead.row``, and built from the same bytes by
    ``ReadAhead.usual_row`` (the same row); and how many rows came usual."""
    rows: list[Any] = []
    usual = 0
    for item in reader.rows(diagnostics):
        if type(item) is FastRows:
            for j, name in enumerate(item.names):
                line, offset, length, digest = (
                    item.lines[j],
                    item.offsets[j],
                    item.lengths[j],
                    item.digests[j],
                )
                row = reader.row(line, offset, length)
                assert row is not None and row.key == name and row.line == line
                assert row.text is not None and hash(row.text) == digest
                assert known is None or known.issuperset(row.values)
                assert reader.usual_row(name, line, offset, length, digest) == row
                rows.append(row)
                usual += 1
        else:
            rows.append(item)
    return rows, usual


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


# -- several sources, one reader forked before the checks are known (SourceReaders) -------------------------


def _specs(count: int) -> dict[int, SourceSpec]:
    return {
        2 * n: SourceSpec(f"rows{n}.jsonl", "jsonl", SourceLocation("m.yaml", n + 1, 1)) for n in range(count)
    }


def _here_of(
    root: Path, spec: SourceSpec, known: set[str] | None = None
) -> tuple[list[Any], list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    return list(iter_source_rows(root, spec, SCHEMA, diagnostics)), diagnostics


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    "how", ["whole", "killed", "some closed", "unknown keys", "long lines", "read backwards"]
)
def test_one_reader_of_several_sources_reads_what_reading_here_reads(
    tmp_path: Path, seed: int, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sources read one after another by one forked reader, started once the checks are known: each gives
    the rows and messages of reading it here, whether the reader is killed, some sources are closed before
    the reader is at them (it skips them), or the sources are read here in another order than the reader's."""
    rng = random.Random(f"{seed}{how}")
    monkeypatch.setattr(source_mod, "_BLOCK_BYTES", rng.choice([64, 256, 4096]))
    monkeypatch.setattr(source_mod, "_FRAME_BYTES", 1024)
    monkeypatch.setattr(source_mod, "GROUP_MIN_BYTES", 500)  # (some sources are smaller: read here)
    if how == "long lines":
        monkeypatch.setattr(source_mod, "MAX_ROW_BYTES", rng.randint(60, 400))
    known = (
        set(rng.sample(sorted(SCHEMA), 4)) | {"s", "n", "v"} | RESERVED_KEYS
        if how == "unknown keys"
        else None
    )
    specs = _specs(rng.randint(1, 4))
    for spec in specs.values():
        lines = rng.choice([0, 3, rng.randint(10, 300)])
        data = "".join(
            usual_line(rng, n) + "\n" if rng.random() < 0.7 else rand_line(rng, n) + "\n"
            for n in range(lines)
        )
        (tmp_path / spec.path).write_text(data)
    big = {n for n, spec in specs.items() if (tmp_path / spec.path).stat().st_size >= 500}
    readers = source_mod.source_readers(tmp_path, specs)
    if not big:
        assert readers is None
        return
    assert readers is not None
    aheads = readers.start(SCHEMA, known)
    assert set(aheads) == big
    if how == "killed":
        assert readers.pid is not None
        os.kill(readers.pid, signal.SIGKILL)
    order = sorted(aheads, reverse=how == "read backwards")
    closed = {n for n in order if how == "some closed" and rng.random() < 0.5}
    for n in closed:
        aheads[n].close()
    usual = 0
    for n in order:
        if n in closed:
            continue
        diagnostics: list[Diagnostic] = []
        rows, got = _rows_of(aheads[n], diagnostics, known)
        assert (rows, diagnostics) == _here_of(tmp_path, specs[n]), specs[n].path
        usual += got
    readers.close()
    assert readers.pid is None
    if how in ("whole", "read backwards", "some closed") and len(closed) < len(big):
        assert usual > 0


def test_readers_not_started_are_stopped_and_reaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan that ends before it starts its readers (the schema read failed, say) stops the copy: it is
    reaped, and nothing of it is left."""
    monkeypatch.setattr(source_mod, "GROUP_MIN_BYTES", 0)
    (tmp_path / "rows0.jsonl").write_text(usual_line(random.Random(1), 1) + "\n")
    readers = source_mod.source_readers(tmp_path, _specs(1))
    assert readers is not None and readers.pid is not None
    pid = readers.pid
    readers.close()
    assert readers.pid is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # (already reaped)


def test_no_readers_while_another_thread_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.setattr(source_mod, "GROUP_MIN_BYTES", 0)
    (tmp_path / "rows0.jsonl").write_text(usual_line(random.Random(1), 1) + "\n")
    gate = threading.Event()
    t = threading.Thread(target=gate.wait)
    t.start()
    try:
        assert source_mod.source_readers(tmp_path, _specs(1)) is None  # (a forked copy has one thread)
    finally:
        gate.set()
        t.join()
    readers = source_mod.source_readers(tmp_path, _specs(1))
    assert readers is not None
    readers.close()


def test_no_readers_of_csv_small_or_missing_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rows0.jsonl").write_text(usual_line(random.Random(1), 1) + "\n")
    (tmp_path / "rows.csv").write_text("name,s\n" + "a.jpg,x\n" * 1000)
    csv_spec = SourceSpec("rows.csv", "csv", SourceLocation("m.yaml", 1, 1))
    missing = SourceSpec("nope.jsonl", "jsonl", SourceLocation("m.yaml", 1, 1))
    assert source_mod.source_readers(tmp_path, {0: _specs(1)[0], 1: csv_spec, 2: missing}) is None
    monkeypatch.setattr(source_mod, "GROUP_MIN_BYTES", 0)
    readers = source_mod.source_readers(tmp_path, {0: _specs(1)[0], 1: csv_spec, 2: missing})
    assert readers is not None
    assert set(readers.start(SCHEMA, None)) == {0}
    readers.close()


def test_a_reader_whose_planning_process_is_gone_ends(tmp_path: Path) -> None:
    """The planning process dies (SIGKILL, say) before it starts its readers (the copy waits for its checks),
    or after: the copy ends on its own, holding nothing (such as the lock an apply holds)."""
    rows = "".join(usual_line(random.Random(n), n) + "\n" for n in range(20000))
    (tmp_path / "rows0.jsonl").write_text(rows)
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from reconciler.manifest import source\n"
        "from reconciler.model import SourceSpec\n"
        "from reconciler.errors import SourceLocation\n"
        "from tests.unit.manifest.test_source_fast import SCHEMA\n"
        "source.AHEAD_MIN_BYTES = 0\n"
        "spec = SourceSpec('rows0.jsonl', 'jsonl', SourceLocation('m.yaml', 1, 1))\n"
        "r = source.source_readers(Path(sys.argv[1]), {0: spec})\n"
        "if sys.argv[2] == 'started':\n"
        "    r.start(SCHEMA, None)\n"
        "print(r.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    import subprocess
    import sys

    for when in ("not started", "started"):
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path), when],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[3],
        ).stdout
        pid = int(out)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            status = (
                Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
                if Path(f"/proc/{pid}").exists()
                else "X"
            )
            if status == "Z":
                break  # (ended; a zombie until init reaps it)
            time.sleep(0.02)
        assert not Path(f"/proc/{pid}").exists() or status == "Z", when


def test_a_plans_only_source_is_read_ahead_only_if_it_is_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One source of a plan is read here unless it is AHEAD_MIN_BYTES or more (its folder is listed alone,
    and this process reads it while it waits for the pages); two or more are read ahead."""
    monkeypatch.setattr(source_mod, "GROUP_MIN_BYTES", 0)
    monkeypatch.setattr(source_mod, "AHEAD_MIN_BYTES", 1000)
    specs = _specs(2)
    for spec in specs.values():
        (tmp_path / spec.path).write_text(usual_line(random.Random(1), 1) + "\n")
    assert source_mod.source_readers(tmp_path, {0: specs[0]}) is None
    readers = source_mod.source_readers(tmp_path, specs)
    assert readers is not None and set(readers.start(SCHEMA, None)) == set(specs)
    readers.close()
    (tmp_path / specs[0].path).write_text(
        usual_line(random.Random(1), 1) * 20 + "\n"
    )  # (1,000 bytes or more)
    readers = source_mod.source_readers(tmp_path, {0: specs[0]})
    assert readers is not None
    readers.close()
