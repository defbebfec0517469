"""Bulk ``source:`` rows (JSONL or CSV, SPEC §3.3), streamed one row at a time.

Memory does not grow with the file: each line is parsed, checked against the schema and handed on.
Bad rows are reported as ``path:line: message`` in the caller's diagnostics list (at most ``max_errors``,
then one summary line) and skipped.

JSONL: one object per line, ``{"name": ...}`` or ``{"uuid": ...}`` plus ``"metadata": {...}`` and optionally
``"frames": {"13": {"clip": [...]}}`` (per-frame values, the plan keys ``frames[13].clip``); blank lines are
skipped. CSV: a header row with a ``name`` or ``uuid`` column and one column per metadata key; each cell is
converted by its key's schema type (:func:`reconciler.values.convert_cell`); an empty cell means "not set".
Registration JSON (``.json``): Encord's cloud-integration upload file, a top-level object whose sections
(``videos``, ``images``, ``image_groups``, ...) list entries with a ``title`` and ``clientMetadata``; each entry is
a row selecting the file of that name. It is read in chunks, one entry at a time.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import functools
import json
import json.scanner
import math
import mmap
import os
import pickle
import re
import select
import signal
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, AnyStr, NamedTuple, Protocol

from reconciler import forked
from reconciler.errors import Diagnostic, SourceLocation
from reconciler.frames import WIRE_FRAMES, WIRE_ROOT, base_key, frame_key, to_keys
from reconciler.jsoncodec import UNDECIDED, RawDecodeError, raw_loads, try_loads
from reconciler.jsonio import loads, too_deep
from reconciler.model import Assignment, SelectorKind
from reconciler.reserved import KEYFRAMES, RESERVED_KEYS, check_frames, first_problem, frame_key_problem
from reconciler.schema import VARCHAR_MAX, KeyType, check_key_name
from reconciler.values import (
    UUID_SHAPE,
    CellConverter,
    ValueChecker,
    cell_converter,
    describe_value,
    value_checker,
)

if TYPE_CHECKING:
    from pathlib import Path

    from reconciler.model import KeyframeMode, SourceSpec
    from reconciler.schema import FieldSpec
    from reconciler.types import JsonValue

__all__ = [
    "FastRows",
    "ReadAhead",
    "SourceReaders",
    "SourceRow",
    "iter_source_rows",
    "read_ahead",
    "source_readers",
]

_UUID_CHARS = frozenset("0123456789abcdefABCDEF")
_MISSING: object = object()
_ROW_FIELDS = frozenset({"name", "uuid", "metadata", "frames"})


class SourceRow(NamedTuple):
    """One row of a source file: which file it selects and the values it gives.

    ``values`` are the plain values (``None``: remove the key); :attr:`metadata` gives them as
    ``Assignment`` records located at the row. Rows are tuples and locations are made on demand, because
    a bulk source yields millions of rows and the planner needs neither for a file that does not change.
    """

    kind: SelectorKind  # NAME or UUID
    key: str  # the file name (relative to the folder) or the canonical lower-case UUID
    values: dict[str, JsonValue]
    path: str  # the source file, relative to the manifest directory
    line: int
    #: JSONL: the row's ``metadata`` object exactly as written in the file (UTF-8), when it is the row's last
    #: member (the planner compares it with the live JSON text before decoding that); ``None`` otherwise.
    text: bytes | None = None

    @property
    def location(self) -> SourceLocation:
        return SourceLocation(self.path, self.line)

    @property
    def metadata(self) -> dict[str, Assignment]:
        """The values as Assignments, each located at this row."""
        location = SourceLocation(self.path, self.line)
        return {k: Assignment(v, location) for k, v in self.values.items()}


def _canonical_uuid(text: str) -> str | None:
    """The lower-case 8-4-4-4-12 form, or ``None`` when ``text`` is not a UUID in that form."""
    if len(text) != 36:
        return None
    for i, ch in enumerate(text):
        if i in (8, 13, 18, 23):
            if ch != "-":
                return None
        elif ch not in _UUID_CHARS:
            return None
    return text.lower()


class _Reporter:
    """Collects row problems up to a cap, then counts the rest for one summary line."""

    def __init__(self, path: str, diagnostics: list[Diagnostic], max_errors: int) -> None:
        self.path = path
        self.diagnostics = diagnostics
        self.max_errors = max_errors
        self.count = 0

    def __call__(self, line: int | None, message: str) -> None:
        self.count += 1
        if self.count <= self.max_errors:
            self.diagnostics.append(Diagnostic(SourceLocation(self.path, line), message))

    def finish(self) -> None:
        hidden = self.count - self.max_errors
        if hidden > 0:
            self.diagnostics.append(
                Diagnostic(
                    SourceLocation(self.path),
                    f"{hidden:,} more problem(s) in this source not shown (first {self.max_errors} above)",
                )
            )


class _Checkers:
    """One value checker per key, made on first use (the schema's type is looked at once per key).

    The checkers accept the common valid values on a fast path and ask :func:`value_checker` (which words
    the message) about everything else, so a rejected value reads exactly as it does in a manifest.
    """

    def __init__(self, schema: Mapping[str, FieldSpec], keyframe_mode: KeyframeMode = "frame") -> None:
        self.schema = schema
        self.keyframe_mode: KeyframeMode = keyframe_mode
        self.cache: dict[str, ValueChecker | None] = {}
        self._shapes: dict[tuple[str, ...], tuple[list[ValueChecker | None], bool, str | None]] = {}
        self._fast: dict[tuple[str, ...], Callable[[dict[str, JsonValue]], int]] = {}

    def accepts(self, metadata: dict[str, JsonValue]) -> int:
        """Whether :meth:`check_all` certainly finds no problem in a row that orjson decoded, and no value holds
        a float of magnitude 2**63 or more (what orjson makes of an integer literal beyond 64 bits, which the
        standard library keeps exact): ``1``, or ``2`` when some value is ``null``. ``0`` means "not sure": the
        caller takes the careful way.

        One test per key sequence (rows mostly share theirs), checking the common valid values inline.
        """
        keys = tuple(metadata)
        test = self._fast.get(keys)
        if test is None:
            test = _shape_test([self._kind(key) for key in keys])
            if len(self._fast) < 1024:
                self._fast[keys] = test
        return test(metadata)

    def _kind(self, key: str) -> tuple[int, object]:
        """How :func:`_shape_test` checks values of ``key``: a ``_K_*`` constant and its parameter."""
        if key in RESERVED_KEYS or key.startswith("frames["):
            return _K_NEVER, None
        spec = self.schema.get(key)
        if spec is None:
            return (_K_ANY, None) if check_key_name(key) is None else (_K_NEVER, None)
        t = spec.type
        if spec.deleted is not None or t is None:
            return _K_NEVER, None  # only null passes
        if t is KeyType.EMBEDDING:
            return (_K_EMBEDDING, spec.size) if spec.size else (_K_NEVER, None)
        if t is KeyType.ENUM:
            return _K_ENUM, frozenset(spec.values)
        if t is KeyType.DATETIME:
            return _K_DATETIME, (self.get(key), set())
        return _KINDS.get(t, (_K_NEVER, None))

    def check_all(self, metadata: dict[str, JsonValue], *, frame_keys: bool = False) -> str | None:
        """The first problem among a row's values, or ``None``. Rows mostly share their keys (in order), so
        the checkers are looked up once per key sequence. ``frame_keys``: the dict may hold per-frame plan
        keys (``frames[13].clip``, from a row's ``frames`` or a registration entry's wire form); elsewhere a
        key spelled so is refused (it is written under ``frames``)."""
        keys = tuple(metadata)
        shape = self._shapes.get(keys)
        if shape is None:
            spelled = next((frame_key_problem(k) for k in keys if k.startswith("frames[")), None)
            shape = ([self.get(key) for key in keys], not RESERVED_KEYS.isdisjoint(keys), spelled)
            if len(self._shapes) < 1024:
                self._shapes[keys] = shape
        checkers, reserved, spelled = shape
        if spelled is not None and not frame_keys:
            return spelled
        for check, value in zip(checkers, metadata.values(), strict=True):
            if check is not None and value is not None:
                problem = check(value)
                if problem is not None:
                    return problem
        return self.check_reserved(metadata) if reserved else None

    def check_reserved(self, metadata: Mapping[str, JsonValue]) -> str | None:
        """The reserved keys of one row, together (``keyframes`` follow the row's ``config``)."""
        return first_problem(metadata, self.keyframe_mode)

    def get(self, key: str) -> ValueChecker | None:
        checker = self.cache.get(key, _MISSING)
        if checker is not _MISSING:
            return checker  # type: ignore[return-value]  # not the sentinel
        if key in RESERVED_KEYS:
            checker = None  # checked per row (check_reserved)
        else:
            name = base_key(key)  # a per-frame value frames[N].KEY is a value of KEY
            spec = self.schema.get(name)
            if spec is not None:
                checker = _fast_checker(value_checker(key, spec), spec)
            else:
                checker = _bad_name_checker(check_key_name(name))
        self.cache[key] = checker
        return checker


# The kinds of value check :func:`_shape_test` makes inline (one per schema type it knows the rule of).
_K_NEVER, _K_ANY, _K_TEXT, _K_VARCHAR, _K_ENUM, _K_BOOLEAN, _K_NUMBER = range(7)
_K_DATETIME, _K_UUID, _K_EMBEDDING, _K_GEOSPATIAL = range(7, 11)
_KINDS: dict[KeyType, tuple[int, object]] = {
    KeyType.TEXT: (_K_TEXT, None),
    KeyType.USER: (_K_TEXT, None),
    KeyType.VARCHAR: (_K_VARCHAR, None),
    KeyType.BOOLEAN: (_K_BOOLEAN, None),
    KeyType.NUMBER: (_K_NUMBER, None),
    KeyType.UUID: (_K_UUID, None),
    KeyType.GEOSPATIAL: (_K_GEOSPATIAL, None),
}
#: orjson decodes an integer literal beyond 64 bits as a float; every such float is at least this large.
_BIG = 2.0**63


#: What :func:`_shape_test` writes for each kind of key: a test of ``v`` (the value) with ``a`` (its parameter)
#: that a ``null`` does not pass (it passes every test as well: :func:`_shape_test`).
_TESTS: dict[int, str] = {
    _K_ANY: "((t := type(v)) in SAFE or (t is float and -BIG < v < BIG))",
    _K_TEXT: "type(v) is str",
    _K_VARCHAR: "(type(v) is str and len(v) <= VARCHAR_MAX)",
    _K_ENUM: "(type(v) is str and v in a)",
    _K_BOOLEAN: "(v is True or v is False)",
    _K_NUMBER: "((t := type(v)) is float and -BIG < v < BIG or t is int)",
    _K_DATETIME: "(type(v) is str and (v in a[1] or valid_datetime(a, v)))",
    _K_UUID: "(type(v) is str and uuid_shape(v) is not None)",
    _K_EMBEDDING: (
        # float.__abs__ takes floats only (not ints, bools or anything else: a TypeError, "not sure").
        "(type(v) is list and len(v) == a and sum(map(float_abs, v)) < BIG)"
    ),
    _K_GEOSPATIAL: (
        "(type(v) is dict and len(v) == 2 and type(la := v.get('latitude')) in NUMBERS"
        " and type(lo := v.get('longitude')) in NUMBERS and -90 <= la <= 90 and -180 <= lo <= 180)"
    ),
}


def _valid_datetime(a: tuple[ValueChecker, set[str]], v: str) -> bool:
    check, memo = a
    if check(v) is not None:
        return False
    if len(memo) < _MEMO_MAX:
        memo.add(v)
    return True


def _shape_test(kinds: list[tuple[int, object]]) -> Callable[[dict[str, JsonValue]], int]:
    """The test behind :meth:`_Checkers.accepts` for rows whose keys have ``kinds`` (in order): ``1`` (the row
    is accepted and no value is ``null``), ``2`` (accepted, and some value is ``null``) or ``0`` ("not sure").

    Each accepted value is one its key's checker accepts (``reconciler.values.value_checker``: a string for
    text, at most ``VARCHAR_MAX`` characters for varchar, one of the values for enum, a bool, a finite number
    that is not a bool, a UUID, an ISO 8601 datetime, a list of ``size`` floats, a latitude and
    longitude in range; a string, bool, int or float for a key the schema does not declare), or a ``null``;
    and every float is below :data:`_BIG` in magnitude. orjson never gives NaN or an infinity. Anything else
    is "not sure" (``0``), never a verdict.

    The test is one generated function of straight-line code (the checks of ``_TESTS``, one per key, on
    positional names: no key name or value is ever part of the code), because a loop over the keys costs
    several times more per row than the checks themselves. The checks without ``null`` come first: a row
    without one costs no more than that; a row with one is checked again, each check allowing ``null``.
    """
    if any(k == _K_NEVER for k, _ in kinds):
        return lambda metadata: 0
    namespace: dict[str, object] = {
        "SAFE": frozenset({str, bool, int}),
        "BIG": _BIG,
        "NUMBERS": _NUMBERS,
        "float_abs": float.__abs__,
        "VARCHAR_MAX": VARCHAR_MAX,
        "uuid_shape": _UUID_SHAPE.fullmatch,
        "valid_datetime": _valid_datetime,
    }
    tests: list[str] = []
    for j, (kind, arg) in enumerate(kinds):
        namespace[f"a{j}"] = arg
        tests.append(re.sub(r"\b([va])\b", rf"\g<1>{j}", _TESTS[kind]))
    if not kinds:
        return lambda metadata: 1
    names = "".join(f"v{j}, " for j in range(len(kinds)))
    body = " and ".join(tests)
    with_null = " and ".join(f"({t} or v{j} is None)" for j, t in enumerate(tests))
    # The namespace's names as default arguments: fast locals, not global look-ups.
    local = ", ".join(f"{k}={k}" for k in namespace if k != "type")
    source = (
        f"def test(metadata, type=type, {local}):\n    {names}= metadata.values()\n"
        f"    try:\n        if {body}:\n            return 1\n"
        f"        return 2 if {with_null} else 0\n    except TypeError:\n        return 0\n"
    )
    exec(compile(source, "<reconciler.manifest.source row test>", "exec"), namespace)
    test: Callable[[dict[str, JsonValue]], int] = namespace["test"]  # type: ignore[assignment]
    return test


def _bad_name_checker(problem: str | None) -> ValueChecker | None:
    """For a key the schema does not declare: nothing to check, unless its name breaks Encord's rule."""
    if problem is None:
        return None

    def bad_name(value: JsonValue) -> str | None:
        return problem

    return bad_name


_NUMBERS = frozenset({int, float})
#: The ISO 8601 shapes ``values.is_iso_datetime`` accepts; with ``fromisoformat`` succeeding (it checks the
#: ranges) a value is certainly valid. Anything else goes to the full check.
_DATETIME_SHAPE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?)?",
    re.ASCII,
)
_UUID_SHAPE = UUID_SHAPE
#: Valid strings remembered per key (values repeat: enums, dates, ids), up to this many.
_MEMO_MAX = 65_536


def _fast_checker(full: ValueChecker, spec: FieldSpec) -> ValueChecker:
    """``full`` behind a fast path for the values it would certainly accept."""
    t = spec.type
    if spec.deleted is not None or t is None:
        return full
    if t is KeyType.EMBEDDING:
        size = spec.size
        isfinite = math.isfinite

        def embedding(value: JsonValue) -> str | None:
            if type(value) is list and len(value) == size and _NUMBERS.issuperset(map(type, value)):
                try:
                    if isfinite(sum(value)):  # type: ignore[arg-type]  # numbers, checked above
                        return None  # a finite sum means every item is finite
                except OverflowError:
                    pass
            return full(value)

        return embedding
    if t is KeyType.GEOSPATIAL:

        def geospatial(value: JsonValue) -> str | None:
            if type(value) is dict and len(value) == 2:
                lat = value.get("latitude")
                lon = value.get("longitude")
                if (
                    (type(lat) is float or type(lat) is int)
                    and (type(lon) is float or type(lon) is int)
                    and -90 <= lat <= 90
                    and -180 <= lon <= 180
                ):
                    return None
            return full(value)

        return geospatial
    if t is KeyType.UUID:
        is_uuid = _UUID_SHAPE.fullmatch

        def uuid(value: JsonValue) -> str | None:
            if type(value) is str and is_uuid(value) is not None:
                return None
            return full(value)

        return uuid
    if t is KeyType.DATETIME:
        memo: set[str] = set()
        shape = _DATETIME_SHAPE.fullmatch
        from_iso = dt.datetime.fromisoformat

        def memoised(value: JsonValue) -> str | None:
            if type(value) is str:
                if value in memo:
                    return None
                if shape(value) is not None:
                    try:
                        from_iso(value)
                    except ValueError:
                        pass
                    else:
                        if len(memo) < _MEMO_MAX:
                            memo.add(value)
                        return None
            problem = full(value)
            if problem is None and type(value) is str and len(memo) < _MEMO_MAX:
                memo.add(value)
            return problem

        return memoised
    return full


def iter_source_rows(
    root: Path,
    spec: SourceSpec,
    schema: Mapping[str, FieldSpec],
    diagnostics: list[Diagnostic],
    *,
    max_errors: int = 100,
) -> Iterator[SourceRow]:
    """Yield the good rows of a source file (path relative to ``root``), checking values against ``schema``.

    Keys the schema does not declare are passed through unchecked (the caller applies the undeclared-keys
    policy). Bad rows go to ``diagnostics`` and are skipped; a file that cannot be opened is one diagnostic.
    """
    report = _Reporter(spec.path, diagnostics, max_errors)
    checkers = _Checkers(schema, spec.keyframe_mode)
    try:
        if spec.format == "csv":
            yield from _csv_rows(root / spec.path, spec.path, schema, checkers, report)
        elif spec.format == "registration":
            yield from _registration_rows(root / spec.path, spec.path, checkers, report)
        else:
            yield from _jsonl_rows(root / spec.path, spec.path, checkers, report)
    except OSError as exc:
        report(None, f"cannot read source file: {exc.strerror or exc}")
    report.finish()


# --------------------------------------------------------------------------------------------- JSONL


def _jsonl_rows(
    file: Path, path: str, checkers: _Checkers, report: _Reporter, start: tuple[int, int] = (0, 0)
) -> Iterator[SourceRow]:
    """The rows of a JSONL source. The usual row (``{"name" or "uuid": ..., "metadata": {...}}``, values its keys'
    checkers accept, see :meth:`_Checkers.accepts`) is decoded once, by orjson; any other line, good or bad, is
    read again the careful way (:func:`_careful_row`), so its row or its message is exactly that way's.
    ``start``: the offset of the first line to read and the number of lines before it."""
    decoder = json.JSONDecoder()
    decode = decoder.decode
    # The C scanner behind decode: one Python frame (and two regular expression matches) less per row.
    scan = json.scanner.make_scanner(decoder)  # type: ignore[arg-type]  # typeshed says a scanner; CPython takes a decoder
    accepts = checkers.accepts
    shape_tests = checkers._fast  # accepts() without a call, for a key sequence seen before
    fast_loads = raw_loads
    not_json = RawDecodeError
    new_row = _new_row
    by_name, by_uuid = SelectorKind.NAME, SelectorKind.UUID
    uuid_shape = _UUID_SHAPE.fullmatch
    offset, lineno = start
    with file.open("rb") as fh:
        if offset:
            fh.seek(offset)
        for lines in _line_blocks(fh):
            for raw in lines:
                lineno += 1
                if len(raw) > MAX_ROW_BYTES:
                    report(
                        lineno,
                        f"line is longer than {MAX_ROW_BYTES:,} bytes (one row per line); not read further",
                    )
                    return
                if lineno > 1:  # (a byte order mark is allowed on line 1 only: the careful way reads it)
                    try:
                        obj = fast_loads(raw)
                    except not_json:
                        pass
                    else:
                        if type(obj) is dict and len(obj) == 2:
                            metadata = obj.get("metadata")
                            if type(metadata) is dict and (
                                test(metadata)
                                if (test := shape_tests.get(tuple(metadata))) is not None
                                else accepts(metadata)
                            ):
                                selector = obj.get("name")
                                if type(selector) is str and selector:
                                    # _metadata_text(raw), its usual case inline
                                    at = raw.find(b'"metadata"')
                                    text = (
                                        raw[at + 12 : -1]
                                        if at >= 0 and raw.startswith(b": ", at + 10) and raw.endswith(b"}}")
                                        else _metadata_text(raw)
                                    )
                                    yield new_row((by_name, selector, metadata, path, lineno, text))
                                    continue
                                selector = obj.get("uuid")
                                if type(selector) is str and uuid_shape(selector) is not None:
                                    yield new_row(
                                        (
                                            by_uuid,
                                            selector.lower(),
                                            metadata,
                                            path,
                                            lineno,
                                            _metadata_text(raw),
                                        )
                                    )
                                    continue
                row = _careful_row(raw, lineno, path, checkers, report, scan, decode)
                if row is not None:
                    yield row


#: A SourceRow from a tuple of its fields, without the generated ``__new__`` (a Python frame per row).
_new_row: Callable[[tuple[object, ...]], SourceRow] = functools.partial(tuple.__new__, SourceRow)


def _careful_row(
    raw: bytes,
    lineno: int,
    path: str,
    checkers: _Checkers,
    report: _Reporter,
    scan: Callable[[str, int], tuple[object, int]],
    decode: Callable[[str], object],
) -> SourceRow | None:
    """One JSONL line the careful way: its row, or ``None`` (blank, or reported)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        report(lineno, "line is not valid UTF-8")
        return None
    if lineno == 1 and text.startswith("\ufeff"):
        text = text[1:]  # a byte order mark
    if not text or text.isspace():
        return None
    obj = try_loads(raw) if lineno > 1 else UNDECIDED  # a byte order mark is only allowed on line 1
    if obj is not UNDECIDED:
        return _jsonl_row(obj, lineno, path, checkers, report, raw)
    try:
        try:
            obj, end = scan(text, 0)
        except StopIteration:  # leading whitespace, or not JSON at all: let decode say which
            obj, end = decode(text), len(text)
        if end != len(text) and not text[end:].isspace():
            decode(text)  # raises "Extra data" with its column
    except ValueError as exc:
        report(lineno, _json_problem(exc))
        return None
    except RecursionError:
        report(lineno, _json_problem(too_deep(text)))
        return None
    return _jsonl_row(obj, lineno, path, checkers, report, raw)


#: Longest line read from a source file: a longer one (a file with no newlines?) is refused, not held in memory.
MAX_ROW_BYTES = 64 * 1024 * 1024


def _lines(fh: IO[AnyStr]) -> Iterator[AnyStr]:
    """The lines of ``fh``, each read at most ``MAX_ROW_BYTES + 1`` long (so memory stays bounded)."""
    return iter(functools.partial(fh.readline, MAX_ROW_BYTES + 1), fh.read(0))


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


#: How much of a JSONL source is read at a time.
_BLOCK_BYTES = 1 << 17


def _line_blocks(fh: _Readable) -> Iterator[list[bytes]]:
    """The lines of a binary file, a block at a time, each without its ``\\n`` (what ``readline`` would split,
    and nothing else). A line that with its newline is longer than ``MAX_ROW_BYTES`` comes as its first
    ``MAX_ROW_BYTES + 1`` bytes and ends the lines (as :func:`_lines` gives it), so memory stays bounded."""
    limit = MAX_ROW_BYTES
    rest = b""
    while True:
        block = fh.read(_BLOCK_BYTES)
        if not block:
            if rest:
                yield [rest[: limit + 1]]
            return
        lines = block.split(b"\n")
        if rest:
            lines[0] = rest + lines[0]
        rest = lines.pop()
        if lines and max(map(len, lines)) >= limit:
            n = next(n for n, line in enumerate(lines) if len(line) >= limit)
            yield [*lines[:n], (lines[n] + b"\n")[: limit + 1]]
            return
        yield lines
        if len(rest) > limit:
            yield [rest[: limit + 1]]
            return


class _LineTooLong(csv.Error):
    pass


def _csv_lines(fh: IO[str]) -> Iterator[str]:
    for line in _lines(fh):
        if len(line) > MAX_ROW_BYTES:
            raise _LineTooLong(f"line is longer than {MAX_ROW_BYTES:,} characters; not read further")
        yield line


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    return f"invalid JSON: {exc}"


def _jsonl_row(
    obj: object, lineno: int, path: str, checkers: _Checkers, report: _Reporter, line: bytes = b""
) -> SourceRow | None:
    if type(obj) is dict and len(obj) == 2:  # the usual {"name": ..., "metadata": {...}}
        selector = obj.get("name")
        metadata = obj.get("metadata")
        if type(selector) is str and selector and type(metadata) is dict:
            problem = checkers.check_all(metadata)
            if problem is not None:
                report(lineno, problem)
                return None
            return SourceRow(SelectorKind.NAME, selector, metadata, path, lineno, _metadata_text(line))
    if type(obj) is not dict:
        report(
            lineno,
            f'expected a JSON object like {{"name": ..., "metadata": {{...}}}}, got {describe_value(obj)}',
        )
        return None
    if not obj.keys() <= _ROW_FIELDS:
        extra = sorted(k for k in obj if k not in _ROW_FIELDS)
        report(lineno, f'unknown field {extra[0]!r} (a row has "name" or "uuid", "metadata" and "frames")')
        return None
    if "name" in obj and "uuid" in obj:
        report(lineno, 'a row takes only one of "name" or "uuid"')
        return None
    if "name" in obj:
        kind, selector = SelectorKind.NAME, obj["name"]
    elif "uuid" in obj:
        kind, selector = SelectorKind.UUID, obj["uuid"]
    else:
        report(lineno, 'a row needs "name" or "uuid"')
        return None
    if type(selector) is not str or not selector:
        report(lineno, f"{kind.value} must be a non-empty string, got {describe_value(selector)}")
        return None
    if kind is SelectorKind.UUID:
        canonical = _canonical_uuid(selector)
        if canonical is None:
            report(lineno, f"uuid {selector!r} is not a UUID")
            return None
        selector = canonical
    metadata = obj.get("metadata", {})
    if type(metadata) is not dict:
        report(lineno, f"metadata must be a JSON object, got {describe_value(metadata)}")
        return None
    problem = checkers.check_all(metadata)
    if problem is not None:
        report(lineno, problem)
        return None
    frames = obj.get("frames")
    if frames is not None:
        return _with_frames(kind, selector, metadata, frames, lineno, path, checkers, report)
    return SourceRow(kind, selector, metadata, path, lineno, _metadata_text(line))


def _with_frames(
    kind: SelectorKind,
    selector: str,
    metadata: dict[str, JsonValue],
    frames: JsonValue,
    lineno: int,
    path: str,
    checkers: _Checkers,
    report: _Reporter,
) -> SourceRow | None:
    """A row with ``"frames": {"13": {"clip": [...]}}``: its per-frame values join its values as the plan keys
    ``frames[13].clip`` (reconciler.frames), each checked against the schema by its key."""
    for shape_problem in check_frames(frames):
        report(lineno, shape_problem.message)
        return None
    assert isinstance(frames, dict)
    per_frame: dict[str, JsonValue] = {}
    for name, values in frames.items():
        assert isinstance(values, dict)
        for key, value in values.items():
            per_frame[frame_key(int(name), key)] = value
    problem = checkers.check_all(per_frame, frame_keys=True)
    if problem is not None:
        report(lineno, problem)
        return None
    return SourceRow(kind, selector, {**metadata, **per_frame}, path, lineno)


_AFTER_KEY = re.compile(rb"\s*:\s*")


def _metadata_text(line: bytes) -> bytes | None:
    """The text of a decoded row's ``metadata`` object when it is the row's last member, else ``None``.

    The first ``"metadata"`` in the line is the row's own key: inside a JSON string every quote is escaped,
    so ``"metadata"`` followed by a colon cannot occur there, and the row's key comes before its value. If
    ``metadata`` is not the last member the slice ends inside another member and never looks like an object.
    (``line`` may or may not end with its newline.)
    """
    at = line.find(b'"metadata"') + 10
    if at < 10:
        return None
    if line.startswith(b": ", at):  # json.dumps' spacing, and the compact form: no regular expression needed
        start = at + 2
    elif line.startswith(b":", at):
        start = at + 1
    else:
        sep = _AFTER_KEY.match(line, at)
        if sep is None:
            return None
        start = sep.end()
    if line.endswith(b"}}"):
        return line[start:-1]
    if line.endswith(b"}}\n"):
        return line[start:-2]
    body = line.rstrip()
    text = body[start : len(body) - 1].rstrip()
    return text if text.endswith(b"}") else None


# --------------------------------------------------------------------------------------------- CSV


def _csv_rows(
    file: Path, path: str, schema: Mapping[str, FieldSpec], checkers: _Checkers, report: _Reporter
) -> Iterator[SourceRow]:
    with file.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(_csv_lines(fh), strict=True)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            report(reader.line_num or 1, _csv_problem(exc))
            return
        if header is None:
            report(1, "empty CSV file: expected a header row with a name or uuid column")
            return
        columns = _csv_header(header, report)
        if columns is None:
            return
        kind, id_index, keys = columns
        width = len(header)
        compiled = [
            (index, key, _cell_converter(key, schema), _cell_checker(key, schema, checkers))
            for index, key in keys
        ]
        reserved = any(key in RESERVED_KEYS for _, key in keys)
        line_end = reader.line_num
        while True:
            start = line_end + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                report(start, _csv_problem(exc))
                return
            line_end = reader.line_num
            if not cells:
                continue
            if len(cells) != width:
                report(start, f"expected {width} cells (like the header), got {len(cells)}")
                continue
            selector = cells[id_index]
            if not selector:
                report(start, f"empty {kind.value} cell")
                continue
            if kind is SelectorKind.UUID:
                canonical = _canonical_uuid(selector)
                if canonical is None:
                    report(start, f"uuid {selector!r} is not a UUID")
                    continue
                selector = canonical
            values: dict[str, JsonValue] = {}
            for index, key, convert, check in compiled:
                text = cells[index]
                if not text:
                    continue
                try:
                    value = convert(text)
                except ValueError as exc:
                    report(start, f"{key}: {exc}")
                    break
                if check is not None:
                    problem = check(value)
                    if problem is not None:
                        report(start, problem)
                        break
                values[key] = value
            else:
                if reserved:
                    problem = checkers.check_reserved(values)
                    if problem is not None:
                        report(start, problem)
                        continue
                yield SourceRow(kind, selector, values, path, start)


def _keyframes_cell(text: str) -> JsonValue:
    try:
        value: JsonValue = loads(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a JSON list of frame numbers") from None
    return value


def _reserved_cell(text: str) -> JsonValue:
    try:
        value: JsonValue = json.loads(text)
    except ValueError:
        raise ValueError(f"{text!r} is not valid JSON (write this column's cells as JSON)") from None
    return value


#: Types whose cell converter only ever returns valid values (a number, a boolean, a string).
_VALID_BY_CONVERSION = frozenset({KeyType.NUMBER, KeyType.BOOLEAN, KeyType.TEXT})


def _cell_checker(key: str, schema: Mapping[str, FieldSpec], checkers: _Checkers) -> ValueChecker | None:
    """The check a converted cell still needs (none when conversion already guarantees the type)."""
    spec = schema.get(key)
    if spec is not None and spec.deleted is None and spec.type in _VALID_BY_CONVERSION:
        return None
    return checkers.get(key)


def _cell_converter(key: str, schema: Mapping[str, FieldSpec]) -> CellConverter:
    if key in RESERVED_KEYS:
        return _keyframes_cell if key == KEYFRAMES else _reserved_cell
    return cell_converter(schema.get(key))


def _csv_problem(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "file is not valid UTF-8"
    return f"malformed CSV: {exc}"


def _csv_header(
    header: list[str], report: _Reporter
) -> tuple[SelectorKind, int, list[tuple[int, str]]] | None:
    ids = [i for i, name in enumerate(header) if name in ("name", "uuid")]
    if len(ids) != 1:
        found = " and ".join(header[i] for i in ids) if ids else "neither"
        report(1, f"the header needs exactly one name or uuid column (found {found})")
        return None
    seen: set[str] = set()
    keys: list[tuple[int, str]] = []
    for i, name in enumerate(header):
        if i == ids[0]:
            continue
        if name in seen:
            report(1, f"duplicate column {name!r}")
            return None
        seen.add(name)
        if name not in RESERVED_KEYS:
            problem = check_key_name(name)
            if problem is not None:
                report(1, f"column {name!r}: {problem}")
                return None
        keys.append((i, name))
    return SelectorKind(header[ids[0]]), ids[0], keys


# --------------------------------------------------------------------------------------------- registration JSON

#: The sections of Encord's cloud-integration upload JSON that list files (each entry has a ``title``).
REGISTRATION_SECTIONS = (
    "videos", "images", "image_groups", "image_sequences", "dicom_series", "nifti", "audio", "text", "pdf",
    "scenes",
)  # fmt: skip
#: Top-level keys of the upload JSON that are not file lists (read and ignored).
_REGISTRATION_OPTIONS = frozenset({"skip_duplicate_urls"})
_CHUNK_CHARS = 1 << 20
_WHITESPACE = re.compile(r"[ \t\r\n]*")


class _Stop(Exception):
    """The registration file cannot be read further: ``line`` and the problem."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _JsonStream:
    """A JSON text read in chunks: structural characters one at a time, whole values with ``raw_decode``.

    Only the unread rest of the current chunk (plus the value being read) is held in memory; ``line`` is the
    line of the next unread character.
    """

    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.decoder = json.JSONDecoder()
        #: Characters of the buffer's first line that were read before it (its column offset).
        self.col0 = 0

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.fh.read(_CHUNK_CHARS)
        if not data:
            self.eof = True
            return False
        newline = self.buf.rfind("\n", 0, self.pos)
        self.col0 = self.pos - newline - 1 if newline >= 0 else self.col0 + self.pos
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True

    def _advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def peek(self) -> str:
        """The next non-whitespace character ("" at the end)."""
        while True:
            m = _WHITESPACE.match(self.buf, self.pos)
            assert m is not None
            self._advance(m.end())
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def take(self, expected: str, what: str) -> None:
        found = self.peek()
        if found != expected:
            shown = repr(found) if found else "the end of the file"
            raise _Stop(self.line, f"invalid JSON: expected {expected!r} {what}, found {shown}")
        self._advance(self.pos + 1)

    def value(self) -> tuple[object, int]:
        """The next JSON value and the line it starts on."""
        self.peek()
        start_line = self.line
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                truncated = exc.pos >= len(self.buf) - 1 or exc.msg.startswith("Unterminated string")
                if truncated and self._grow():
                    continue
                line = start_line + self.buf.count("\n", self.pos, exc.pos)
                column = exc.colno + (self.col0 if exc.lineno == 1 else 0)
                raise _Stop(line, f"invalid JSON: {exc.msg} (column {column})") from None
            except RecursionError:
                raise _Stop(start_line, "invalid JSON: nested too deeply") from None
            if end == len(self.buf) and self._grow():  # a number may go on in the next chunk
                continue
            self._advance(end)
            return obj, start_line

    def _grow(self) -> bool:
        if len(self.buf) - self.pos > MAX_ROW_BYTES:
            raise _Stop(self.line, f"an entry is longer than {MAX_ROW_BYTES:,} characters; not read further")
        return self._fill()


def _registration_rows(file: Path, path: str, checkers: _Checkers, report: _Reporter) -> Iterator[SourceRow]:
    """The entries of a registration JSON, one row each (``title`` -> its ``clientMetadata``)."""
    with file.open("r", encoding="utf-8-sig") as fh:
        stream = _JsonStream(fh)
        titles: dict[str, int] = {}
        try:
            if stream.peek() != "{":
                found = stream.peek()
                raise _Stop(
                    stream.line,
                    'a registration JSON is one object with sections such as "videos" and "images" '
                    f"(Encord's upload file), found {repr(found) if found else 'an empty file'}",
                )
            stream.take("{", "")
            first = True
            while True:
                if stream.peek() == "}":
                    stream.take("}", "")
                    break
                if not first:
                    stream.take(",", "between sections")
                first = False
                key, key_line = stream.value()
                if not isinstance(key, str):
                    raise _Stop(key_line, "invalid JSON: expected a section name in double quotes")
                stream.take(":", f"after {key!r}")
                if key in _REGISTRATION_OPTIONS:
                    stream.value()
                    continue
                if key not in REGISTRATION_SECTIONS:
                    raise _Stop(
                        key_line,
                        f"unknown section {key!r} in a registration JSON (known: "
                        f"{', '.join(REGISTRATION_SECTIONS)}, {', '.join(sorted(_REGISTRATION_OPTIONS))})",
                    )
                yield from _registration_section(stream, key, path, checkers, report, titles)
            if stream.peek() != "":
                raise _Stop(stream.line, "invalid JSON: extra data after the top-level object")
        except _Stop as stop:
            report(stop.line, stop.message)
        except UnicodeDecodeError:
            report(stream.line, "file is not valid UTF-8")


def _registration_section(
    stream: _JsonStream,
    section: str,
    path: str,
    checkers: _Checkers,
    report: _Reporter,
    titles: dict[str, int],
) -> Iterator[SourceRow]:
    stream.take("[", f"(the {section!r} section is a list of entries)")
    first = True
    while True:
        if stream.peek() == "]":
            stream.take("]", "")
            return
        if not first:
            stream.take(",", f"between entries of {section!r}")
        first = False
        entry, line = stream.value()
        row = _registration_entry(entry, section, line, path, checkers, report, titles)
        if row is not None:
            yield row


def _registration_entry(
    entry: object,
    section: str,
    line: int,
    path: str,
    checkers: _Checkers,
    report: _Reporter,
    titles: dict[str, int],
) -> SourceRow | None:
    if type(entry) is not dict:
        report(line, f"an entry of {section!r} must be an object, got {describe_value(entry)}")
        return None
    title = entry.get("title")
    if title is None:
        report(line, f'an entry of {section!r} has no "title" (its file is found by title)')
        return None
    if type(title) is not str or not title:
        report(line, f"title must be a non-empty string, got {describe_value(title)}")
        return None
    if "clientMetadata" in entry and "client_metadata" in entry:
        report(line, f'entry {title!r} has both "clientMetadata" and "client_metadata"')
        return None
    metadata = entry["clientMetadata"] if "clientMetadata" in entry else entry.get("client_metadata", {})
    if type(metadata) is not dict:
        report(line, f"entry {title!r}: clientMetadata must be a JSON object, got {describe_value(metadata)}")
        return None
    first = titles.get(title)
    if first is not None:
        report(line, f"title {title!r} appears twice (first at line {first}); give each file one entry")
        return None
    titles[title] = line
    root = metadata.get(WIRE_ROOT)
    if isinstance(root, dict) and WIRE_FRAMES in root:  # desired per-frame values: checked like frames:
        for shape_problem in check_frames(root[WIRE_FRAMES]):
            where = f"{WIRE_ROOT}.{WIRE_FRAMES}" + shape_problem.message.removeprefix("frames")
            report(line, f"entry {title!r}: {where}")
            return None
    metadata = to_keys(metadata)  # clientMetadata is the wire form: per-frame values as frames[N].KEY keys
    problem = checkers.check_all(metadata, frame_keys=True)
    if problem is not None:
        report(line, problem)
        return None
    return SourceRow(SelectorKind.NAME, title, metadata, path, line)


# ------------------------------------------------------------------------- JSONL read ahead by a forked process


def _line_row(
    raw: bytes, lineno: int, path: str, checkers: _Checkers, report: _Reporter, scan: _Scan, decode: _Decode
) -> SourceRow | None:
    """One JSONL line as :func:`_jsonl_rows` reads it: the row, or ``None`` (blank, or reported)."""
    if len(raw) > MAX_ROW_BYTES:  # (the readers never hand on a longer line)
        report(lineno, f"line is longer than {MAX_ROW_BYTES:,} bytes (one row per line); not read further")
        return None
    if lineno > 1:
        try:
            obj = raw_loads(raw)
        except RawDecodeError:
            pass
        else:
            if type(obj) is dict and len(obj) == 2:
                metadata = obj.get("metadata")
                if type(metadata) is dict and checkers.accepts(metadata):
                    selector = obj.get("name")
                    if type(selector) is str and selector:
                        row = (SelectorKind.NAME, selector, metadata, path, lineno, _metadata_text(raw))
                        return _new_row(row)
                    selector = obj.get("uuid")
                    if type(selector) is str and _UUID_SHAPE.fullmatch(selector) is not None:
                        row = (
                            SelectorKind.UUID,
                            selector.lower(),
                            metadata,
                            path,
                            lineno,
                            _metadata_text(raw),
                        )
                        return _new_row(row)
    return _careful_row(raw, lineno, path, checkers, report, scan, decode)


_Scan = Callable[[str, int], tuple[object, int]]
_Decode = Callable[[str], object]
#: A part of a frame: a tag (a string) and its fields.
_Part = tuple[Any, ...]
#: A frame of :func:`_scan_usual`: its parts, the (offset, line number) after its last line, whether it is the last.
_Frame = tuple[list[_Part], tuple[int, int], bool]


class FastRows(NamedTuple):
    """Usual source rows (see :class:`ReadAhead`) by column: each selects a file by name (``names[j]``, at
    line ``lines[j]``), its values are accepted by their keys' checks and all its keys are known,
    ``digests[j]`` is ``hash()`` of its ``metadata`` text (``SourceRow.text``), and ``nulls[j]`` is 1 when one
    of its values is ``null`` (else 0). The row itself is :meth:`ReadAhead.row` of ``lines[j]``, ``offsets[j]``
    and ``lengths[j]``."""

    names: list[str]
    lines: array[int]
    digests: array[int]
    offsets: array[int]
    lengths: array[int]
    nulls: bytes


#: A source smaller than this is read in the planning process only: a second process would add more memory
#: (about 40 MB) than it saves time.
AHEAD_MIN_BYTES = 64 << 20
#: Source bytes read between two frames handed on.
_FRAME_BYTES = 1 << 20
#: At most this much of the source (from its end) is read by the planning process alongside the reader ...
_SPLIT_MAX = 256 << 20
#: ... a part of this size at a time, while it has none of the reader's frames to read ...
_TAKE_BYTES = 4 << 20
#: ... and only while at least this much is left between the reader and the part taken last.
_SPLIT_MIN = 4 << 20


def _usual(
    names: list[str],
    lines: array[int],
    digests: array[int],
    offsets: array[int],
    lengths: array[int],
    nulls: bytearray,
) -> _Part:
    """A run of usual rows as :func:`_scan_usual` hands it on."""
    return (
        "f",
        names,
        lines.tobytes(),
        digests.tobytes(),
        offsets.tobytes(),
        lengths.tobytes(),
        bytes(nulls),
    )


def _scan_usual(
    fh: _PRead,
    offset: int,
    checkers: _Checkers,
    known: set[str] | None,
    put: Callable[[list[_Part], tuple[int, int], bool], None],
    poll: Callable[[int, int], int] | None = None,
    end: int = -1,
) -> None:
    """Read the lines of ``fh`` from ``offset`` (a line start; line numbers count from there) as
    :func:`_jsonl_rows` does, handing them to ``put`` a frame at a time: runs of usual rows as
    ``("f", names, lines, digests, offsets, lengths, nulls)`` (the arrays as bytes; ``nulls``: 1 for a row with
    a ``null`` value, else 0), every other line as
    ``("d", line number, offset, line)``; ``("s", offset, line number)`` where a line is too long (whoever reads
    on reads from there). ``poll(offset, stop)`` is asked between blocks for the offset to stop at (a line start;
    -1: the end); the last frame then ends with ``("x", offset, line number)``. With ``poll`` (the reader), a
    frame of mostly other lines (a source of uuid rows?) ends the reading there with ``("s", ...)``: the
    planning process reads those itself anyway. ``end`` (a line start): stop there, as if ``poll`` said so."""
    accepts = checkers.accepts
    shape_tests = checkers._fast
    fast_loads = raw_loads
    not_json = RawDecodeError
    superset = known.issuperset if known is not None else None
    lineno = first = others = 0
    stop = end
    frame: list[_Part] = []
    names: list[str] = []
    lines, digests, offsets, lengths = array("q"), array("q"), array("q"), array("q")
    nulls = bytearray()
    since = 0
    for block in _line_blocks(fh):
        for raw in block:
            if offset >= stop >= 0:
                if names:
                    frame.append(_usual(names, lines, digests, offsets, lengths, nulls))
                frame.append(("x", offset, lineno) if offset == stop else ("s", offset, lineno))
                put(frame, (offset, lineno), True)
                return
            size = len(raw)
            if size > MAX_ROW_BYTES:
                if names:
                    frame.append(_usual(names, lines, digests, offsets, lengths, nulls))
                frame.append(("s", offset, lineno))
                put(frame, (offset, lineno), True)
                return
            lineno += 1
            if lineno > 1 or offset:
                try:
                    obj = fast_loads(raw)
                except not_json:
                    pass
                else:
                    if type(obj) is dict and len(obj) == 2:
                        metadata = obj.get("metadata")
                        selector = obj.get("name")
                        if (
                            type(metadata) is dict
                            and type(selector) is str
                            and selector
                            and (superset is None or superset(metadata))
                            and (
                                verdict := test(metadata)
                                if (test := shape_tests.get(tuple(metadata))) is not None
                                else accepts(metadata)
                            )
                        ):
                            at = raw.find(b'"metadata"')
                            text = (
                                raw[at + 12 : -1]
                                if at >= 0 and raw.startswith(b": ", at + 10) and raw.endswith(b"}}")
                                else _metadata_text(raw)
                            )
                            if text is not None:  # (else handed on as it is: rare)
                                names.append(selector)
                                lines.append(lineno)
                                digests.append(hash(text))
                                offsets.append(offset)
                                lengths.append(size)
                                nulls.append(verdict == 2)
                                offset += size + 1
                                continue
            if names:
                frame.append(_usual(names, lines, digests, offsets, lengths, nulls))
                names = []
                lines, digests, offsets, lengths = array("q"), array("q"), array("q"), array("q")
                nulls = bytearray()
            frame.append(("d", lineno, offset, raw))
            offset += size + 1
            others += 1
        since += 1
        if since >= _FRAME_BYTES // _BLOCK_BYTES:
            if poll is not None and others * 2 > lineno - first:  # mostly other lines: read better there
                if names:
                    frame.append(_usual(names, lines, digests, offsets, lengths, nulls))
                frame.append(("s", offset, lineno))
                put(frame, (offset, lineno), True)
                return
            others, first = 0, lineno
            if names:
                frame.append(_usual(names, lines, digests, offsets, lengths, nulls))
                names = []
                lines, digests, offsets, lengths = array("q"), array("q"), array("q"), array("q")
                nulls = bytearray()
            put(frame, (offset, lineno), False)
            frame = []
            since = 0
        if poll is not None:
            stop = poll(offset, stop)
    if names:
        frame.append(_usual(names, lines, digests, offsets, lengths, nulls))
    put(frame, (offset, lineno), True)


class ReadAhead:
    """A JSONL source read and checked by a forked copy of this process while this one lists the live files.

    The reader (a child process, made by :func:`read_ahead`) reads the source as :func:`_jsonl_rows` does and
    hands on, a frame at a time through an unlinked temporary file, the usual rows as :class:`FastRows`
    (names, line numbers and digests: ``hash()`` is keyed alike in a forked copy) and every other line as it
    is. :meth:`rows` gives them back in line order, each other line read here (:func:`_line_row`), so its row
    or message is exactly :func:`iter_source_rows`'s. A caller that needs a usual row's values (its file is not
    unchanged) reads that line again here (:meth:`usual_row`: its metadata text decoded, not checked again, as
    its digest is the one of the text the reader checked).

    Whenever :meth:`rows` has no frame of the reader's to read and much of the source is left, this process
    reads a part of its end itself (:meth:`_take`: from a line start the reader agrees to stop at, up to the
    part taken before; up to ``_SPLIT_MAX`` in all), while the reader reads on to there: the two processes
    meet where both are done, however busy each is. If the reader stops early (it died, or met a line too
    long), the rest of the source is read here the usual way, from the first line not handed on.
    """

    def __init__(
        self,
        pid: int,
        fd: int,
        frames: IO[bytes],
        notes: int,
        ask: int,
        progress: mmap.mmap,
        file: Path,
        path: str,
        checkers: _Checkers,
        known: set[str] | None,
        group: SourceReaders | None = None,
    ) -> None:
        self.pid: int | None = pid
        #: The process that reads this source and others (:class:`SourceReaders`), or ``None`` (its own).
        self._group = group
        #: Whether :meth:`rows` was asked for (the rows are handed on once).
        self.used = False
        self._closed = False
        self._fd = fd
        self._frames = frames
        self._notes = notes
        self._ask = ask
        self._progress = progress
        self._file = file
        self.path = path
        self._checkers = checkers
        self._known = set(known) if known is not None else None
        self._report: _Reporter | None = None
        #: The parts of the source's end read here (:meth:`_take`), in the order taken: (offset, frames).
        self._own: list[tuple[int, list[_Frame]]] = []
        #: Where the next part taken ends (the last one's start), or -1: no more parts are taken.
        self._end = -1
        decoder = json.JSONDecoder()
        self._decode: _Decode = decoder.decode
        self._scan: _Scan = json.scanner.make_scanner(decoder)  # type: ignore[arg-type]  # see _jsonl_rows

    def rows(self, diagnostics: list[Diagnostic], max_errors: int = 100) -> Iterator[FastRows | SourceRow]:
        """The source's rows in line order; problems go to ``diagnostics`` as :func:`iter_source_rows` puts them."""
        self.used = True
        report = self._report = _Reporter(self.path, diagnostics, max_errors)
        resume = (0, 0)  # (offset, line number) of the first line not handed on
        finished = False
        try:  # (a group's reader may not be at this source yet: nothing is taken from its end)
            self._end = os.fstat(self._fd).st_size if self._group is None else -1
        except OSError:
            self._end = -1  # (nothing taken from the end)
        try:
            for frame, after, done in self._read_frames():
                for part in frame:
                    tag = part[0]
                    if tag in "fd":
                        yield from self._parts(part, report, 0)
                    elif tag == "s":  # the reader stopped at this line: the rest is read here
                        done = False
                resume = after
                if done:
                    last = frame[-1][0] if frame else ""
                    # The reader stopped where asked (at the lowest part read here; else, as when it did not
                    # say where it stopped, the rest is read here after all).
                    if last == "x" and self._own and self._own[-1][0] == after[0]:
                        base = after[1]
                        finished = True
                        for _, frames in reversed(self._own):  # (taken from the end: the last part first)
                            stopped = False
                            for frame2, after2, _ in frames:
                                for part in frame2:
                                    if part[0] in "fd":
                                        yield from self._parts(part, report, base)
                                resume = (after2[0], after2[1] + base)
                                if frame2 and frame2[-1][0] == "s":
                                    stopped = True
                            if stopped:
                                finished = False
                                break
                            base = resume[1]
                    else:  # to the end ("s", "x" with no part read here: the rest is read here)
                        finished = last not in ("s", "x")
                    break
        finally:
            self.close()
        if not finished:
            try:
                yield from _jsonl_rows(self._file, self.path, self._checkers, report, start=resume)
            except OSError as exc:
                report(None, f"cannot read source file: {exc.strerror or exc}")
        report.finish()

    def _parts(self, part: _Part, report: _Reporter, base: int) -> Iterator[FastRows | SourceRow]:
        if part[0] == "f":
            _, names, lines, digests, offsets, lengths, nulls = part
            numbers = array("q", lines)
            if base:
                numbers = array("q", [n + base for n in numbers])
            yield FastRows(
                names,
                numbers,
                array("q", digests),
                array("q", offsets),
                array("q", lengths),
                nulls,
            )
        else:
            lineno = part[1] + base
            row = _line_row(part[3], lineno, self.path, self._checkers, report, self._scan, self._decode)
            if row is not None:
                yield row

    def _take(self) -> bool:
        """While no frame of the reader's is there to read: read another part of the source's end here (the
        lines from a line start about ``_TAKE_BYTES`` before the part taken last, which the reader agrees to
        stop at), kept until the reader's frames are read. Whether a part was read (else none is taken any
        more: the reader is too near, ``_SPLIT_MAX`` is taken, a line is too long, or the reader did not
        agree)."""
        end = self._end
        if end < 0:
            return False
        self._end = -1  # (unless this part is taken)
        try:
            size = os.fstat(self._fd).st_size
            at = int.from_bytes(self._progress[:8], "little")  # (where the reader's last frame ended)
            left = end - at
            if size - end >= _SPLIT_MAX or left < max(_SPLIT_MIN, 1):
                return False  # (enough taken, or the reader is near: it reads on to there)
            low = at + min(2 * _FRAME_BYTES, left // 2)  # (ahead of the reader)
            step = _TAKE_BYTES
            split = end
            while split >= end:  # the line start at or after end - step - 1 (a line longer than the step:
                start = split = max(end - step, low)  # a longer step)
                while True:  # (a newline ends the line before it)
                    chunk = os.pread(self._fd, 1 << 16, split - 1)
                    if not chunk:
                        return False
                    nl = chunk.find(b"\n")
                    if nl >= 0:
                        split += nl
                        break
                    split += len(chunk)
                if split >= end and start <= low:
                    return False
                step *= 2
            os.write(self._ask, split.to_bytes(8, "little"))
            answers = (2 * split).to_bytes(8, "little"), (2 * split + 1).to_bytes(8, "little")
            while (answer := self._progress[8:16]) not in answers:  # the reader looks between two blocks
                if os.waitpid(self.pid, os.WNOHANG)[0] if self.pid is not None else True:
                    self.pid = None  # (gone: reaped; it may have answered before it ended)
                    if (answer := self._progress[8:16]) not in answers:
                        return False
                    break
                time.sleep(0.0002)
            if answer != answers[1]:
                return False  # (too late: the reader reads on to the part taken last)
        except OSError:
            return False
        frames: list[_Frame] = []
        _scan_usual(
            _PRead(self._fd, split),
            split,
            self._checkers,
            self._known,
            lambda frame, after, done: frames.append((frame, after, done)),
            end=end if self._own else -1,  # (the first part: to the end, however long the file is now)
        )
        self._own.append((split, frames))
        if not (frames and frames[-1][0] and frames[-1][0][-1][0] == "s"):  # (a line too long: no more)
            self._end = split
        return True

    def usual_row(self, name: str, lineno: int, offset: int, length: int, digest: int) -> SourceRow | None:
        """The usual row of line ``lineno`` (``length`` bytes at ``offset``) that the reader handed on, as
        :func:`_jsonl_rows` gives it, without checking it again: the reader checked these very bytes (its
        metadata text has the ``digest`` handed on). ``None`` where the line is no longer those bytes (the
        file changed meanwhile)."""
        raw = os.pread(self._fd, length, offset)
        at = raw.find(b'"metadata"')
        text = (
            raw[at + 12 : -1]
            if at >= 0 and raw.startswith(b": ", at + 10) and raw.endswith(b"}}")
            else _metadata_text(raw)
        )
        if text is None or hash(text) != digest:
            return None
        try:
            values = raw_loads(text)
        except RawDecodeError:
            return None
        if type(values) is not dict:
            return None
        return _new_row((SelectorKind.NAME, name, values, self.path, lineno, text))

    def row(self, lineno: int, offset: int, length: int) -> SourceRow | None:
        """The row of line ``lineno`` (``length`` bytes at ``offset``), read and checked again here."""
        assert self._report is not None
        raw = os.pread(self._fd, length, offset)
        return _line_row(raw, lineno, self.path, self._checkers, self._report, self._scan, self._decode)

    def _read_frames(self) -> Iterator[_Frame]:
        """Each frame the reader wrote, until the last, or until the reader is gone (then the frames so far).
        While there is none to read yet, parts of the source's end are read here (:meth:`_take`)."""
        at = 0
        fd = self._frames.fileno()
        waiting = select.poll()
        waiting.register(self._notes, select.POLLIN)
        while True:
            while self._end >= 0 and not waiting.poll(0) and self._take():
                pass  # (a part of the end read here meanwhile)
            notes = os.read(self._notes, 4096)  # one byte per frame written (blocks until there is one)
            if not notes:
                return  # the reader is gone without saying where it stopped
            for _ in range(len(notes)):
                head = os.pread(fd, 8, at)
                size = int.from_bytes(head, "little")
                body = os.pread(fd, size, at + 8)
                if len(head) != 8 or len(body) != size:
                    return
                at += 8 + size
                frame, after, done = pickle.loads(body)
                yield frame, after, done
                if done:
                    return

    def close(self) -> None:
        """Stop the reader (if it still runs) and free what it used. Idempotent; :meth:`row` reads no more."""
        if self._closed:
            return
        self._closed = True
        pid, self.pid = self.pid, None
        if self._group is not None:
            self._progress[16:17] = b"\x01"  # (the group's reader skips this source if not yet at it)
            self._group.release()
        elif pid is not None:
            forked.stop(pid)
        for fd in (self._notes, self._ask, self._fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._frames.close()
        self._progress.close()

    def __del__(self) -> None:
        self.close()


def read_ahead(
    root: Path, spec: SourceSpec, schema: Mapping[str, FieldSpec], known: set[str] | None
) -> ReadAhead | None:
    """A :class:`ReadAhead` of a JSONL source, or ``None`` where it is not made (a system other than Linux,
    where forking a copy is measured and safe; a source under ``AHEAD_MIN_BYTES``; no temporary file or
    process to be had) or the source cannot be opened (then reading it here says why). ``known``: the keys whose rows need no undeclared-key
    judgement (rows with others are handed on as they are, to be judged here).

    Call it while no other thread runs (a forked copy has only the thread that forked).
    """
    if spec.format != "jsonl" or not sys.platform.startswith("linux"):
        return None
    file = root / spec.path
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        small = os.fstat(fd).st_size < AHEAD_MIN_BYTES
    except OSError:
        return None
    if small:
        os.close(fd)
        return None
    checkers = _Checkers(schema, spec.keyframe_mode)
    opened: list[int] = [fd]
    try:
        frames = tempfile.TemporaryFile()  # noqa: SIM115  # closed by ReadAhead.close
        notes, out = os.pipe()
        opened += (notes, out)
        asks, ask = os.pipe()
        opened += (asks, ask)
        progress = mmap.mmap(-1, 16)
    except OSError:
        for n in opened:
            os.close(n)
        return None
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        for n in opened:
            os.close(n)
        frames.close()
        return None
    if pid == 0:  # the reader: never returns
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _reader(fd, frames.fileno(), out, asks, progress, checkers, known, parent)
        finally:
            os._exit(0)
    os.close(out)
    os.close(asks)
    return ReadAhead(pid, fd, frames, notes, ask, progress, file, spec.path, checkers, known)


#: A source smaller than this is not read by :class:`SourceReaders` (handing its rows on would cost about what
#: reading them here does). Nor is a plan's only such source, unless it is ``AHEAD_MIN_BYTES`` or more: its
#: folder is listed alone, and the planning process reads its first rows while it waits for the pages (a
#: second process measured slower there, where every row changed); several folders listed at once share
#: this process with the reading of their sources, which a second process takes off it.
GROUP_MIN_BYTES = 1 << 20


class _Member(NamedTuple):
    """One source of :class:`SourceReaders`: the planning process's ends and the reader's."""

    spec: SourceSpec
    file: Path
    fd: int
    frames: IO[bytes]
    notes: int
    out: int
    asks: int
    ask: int
    progress: mmap.mmap


class SourceReaders:
    """JSONL sources read and checked one after another, in the plan's order, by one forked copy of this
    process, each handed on as a :class:`ReadAhead` does.

    The copy is made by :func:`source_readers` before the plan's first request (while no other thread
    runs: a forked copy has only the thread that forks), when the schema the rows are checked against is not
    known yet; it waits for it (:meth:`start`), then reads. A source whose :class:`ReadAhead` is closed
    before the reader is at it is skipped. The copy ends when every source is read, closed or skipped, when
    :meth:`close` stops it, or when this process is gone.
    """

    def __init__(self, pid: int, config: int, members: dict[int, _Member]) -> None:
        self._pid = pid  # (a member's ReadAhead names it; only this object signals or reaps it)
        self.pid: int | None = pid
        self._config = config
        self._members = members
        self._open = len(members)
        self._started = False
        self._aheads: dict[int, ReadAhead] = {}

    def start(self, schema: Mapping[str, FieldSpec], known: set[str] | None) -> dict[int, ReadAhead]:
        """Hand the reader the checks (the schema, and the keys whose rows need no undeclared-key judgement);
        the :class:`ReadAhead` of each source, by the position given to :func:`source_readers`. Once."""
        assert not self._started
        self._started = True
        plain = {key: dataclasses.replace(spec, wire=None) for key, spec in schema.items()}
        aheads = self._aheads
        for n, m in self._members.items():
            checkers = _Checkers(schema, m.spec.keyframe_mode)
            aheads[n] = ReadAhead(
                self._pid,
                m.fd,
                m.frames,
                m.notes,
                m.ask,
                m.progress,
                m.file,
                m.spec.path,
                checkers,
                known,
                self,
            )
        body = pickle.dumps((plain, known), protocol=pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(
            OSError
        ):  # (else the reader is gone: each source is read here, from its start)
            _write_all(self._config, len(body).to_bytes(8, "little") + body)
        return dict(aheads)

    def release(self) -> None:
        """One source's :class:`ReadAhead` is closed; the last one stops the reader."""
        self._open -= 1
        if self._open <= 0:
            self.close()

    def close(self) -> None:
        """Stop the reader (if it still runs) and close every source's :class:`ReadAhead` (before :meth:`start`,
        the sources' ends). Idempotent."""
        pid, self.pid = self.pid, None
        if pid is None:
            return
        forked.stop(pid)
        with contextlib.suppress(OSError):
            os.close(self._config)
        if self._started:
            for ahead in self._aheads.values():
                ahead.close()
        else:
            for m in self._members.values():
                _close_parent_ends(m)

    def __del__(self) -> None:
        self.close()


def _close_parent_ends(m: _Member) -> None:
    for fd in (m.fd, m.notes, m.ask):
        with contextlib.suppress(OSError):
            os.close(fd)
    m.frames.close()
    m.progress.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def source_readers(root: Path, specs: Mapping[int, SourceSpec]) -> SourceReaders | None:
    """A :class:`SourceReaders` of the JSONL sources of ``specs`` (by position: the order they are read in)
    that are large enough (``GROUP_MIN_BYTES``), or ``None`` where fewer than two are (unless that one is
    ``AHEAD_MIN_BYTES`` or more), where this is not Linux, or where another thread runs (then each source is
    read here). A source that cannot be opened is left out (reading it here says why)."""
    import threading

    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return None
    members: dict[int, _Member] = {}
    opened: list[int] = []
    try:
        for n, spec in specs.items():
            if spec.format != "jsonl":
                continue
            file = root / spec.path
            try:
                fd = os.open(file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                continue
            try:
                small = os.fstat(fd).st_size < GROUP_MIN_BYTES
            except OSError:
                small = True
            if small:
                os.close(fd)
                continue
            opened.append(fd)
            frames = tempfile.TemporaryFile()  # noqa: SIM115  # closed by ReadAhead.close
            notes, out = os.pipe()
            opened += (notes, out)
            asks, ask = os.pipe()
            opened += (asks, ask)
            members[n] = _Member(spec, file, fd, frames, notes, out, asks, ask, mmap.mmap(-1, 24))
        big = any(os.fstat(m.fd).st_size >= AHEAD_MIN_BYTES for m in members.values())
        if len(members) < 2 and not big:
            raise OSError  # (nothing worth reading ahead: see GROUP_MIN_BYTES)
        config_in, config = os.pipe()
        opened += (config_in, config)
        parent = os.getpid()
        pid = os.fork()
    except OSError:
        for fd in opened:
            with contextlib.suppress(OSError):
                os.close(fd)
        for m in members.values():
            m.frames.close()
            m.progress.close()
        return None
    if pid == 0:  # the reader: never returns
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            kept = {config_in} | {fd for m in members.values() for fd in (m.fd, m.out, m.asks)}
            for fd in opened:
                if fd not in kept:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            _group_reader(config_in, list(members.values()), parent)
        finally:
            os._exit(0)
    for m in members.values():
        os.close(m.out)
        os.close(m.asks)
    os.close(config_in)
    return SourceReaders(pid, config, members)


def _group_reader(config: int, members: list[_Member], parent: int) -> None:
    """The reader of :class:`SourceReaders` (in the forked copy): the checks, once sent, then each source in
    turn as :func:`_reader` reads one, but for those closed meanwhile."""
    data = b""
    with contextlib.suppress(OSError):
        while len(data) < 8 or len(data) < 8 + int.from_bytes(data[:8], "little"):
            chunk = os.read(config, 1 << 16)
            if not chunk:
                return  # (nobody starts it: the plan ended, or the planning process is gone)
            data += chunk
    try:
        schema, known = pickle.loads(data[8:])
    except Exception:
        return
    for m in members:
        if os.getppid() != parent:
            return
        if m.progress[16:17] != b"\x01":
            checkers = _Checkers(schema, m.spec.keyframe_mode)
            _reader(m.fd, m.frames.fileno(), m.out, m.asks, m.progress, checkers, known, parent)
        with contextlib.suppress(OSError):
            os.close(m.out)


def _reader(
    fd: int,
    frames: int,
    notes: int,
    asks: int,
    progress: mmap.mmap,
    checkers: _Checkers,
    known: set[str] | None,
    parent: int,
) -> None:
    """The reader of :class:`ReadAhead` (in the forked copy): :func:`_scan_usual` from the start, each frame
    written to ``frames`` with one byte to ``notes``; asked for a split on ``asks``. Whatever goes wrong, it
    just stops: the planning process reads the rest itself, from the last frame handed on."""
    os.set_blocking(asks, False)
    pending: list[_Part] = []

    def put(frame: list[_Part], after: tuple[int, int], done: bool) -> None:
        if pending:
            frame[:0] = pending
            pending.clear()
        body = pickle.dumps((frame, after, done), protocol=pickle.HIGHEST_PROTOCOL)
        data = memoryview(len(body).to_bytes(8, "little") + body)
        while data:
            data = data[os.write(frames, data) :]
        os.write(notes, b"\x01")
        progress[:8] = after[0].to_bytes(8, "little")
        if os.getppid() != parent:
            raise SystemExit  # orphaned: nobody reads on

    def poll(offset: int, stop: int) -> int:
        try:
            asked = os.read(asks, 4096)
        except BlockingIOError:
            return stop
        for k in range(0, len(asked) - 7, 8):  # (8 bytes a question, each written at once)
            split = int.from_bytes(asked[k : k + 8], "little")
            if split < offset or 0 <= stop <= split:
                progress[8:16] = (2 * split).to_bytes(8, "little")  # too late: reads on to where it stops
            else:
                stop = split
                progress[8:16] = (2 * split + 1).to_bytes(8, "little")
        return stop

    with contextlib.suppress(BaseException):
        _scan_usual(_PRead(fd, 0), 0, checkers, known, put, poll)


class _PRead:
    """A file descriptor read from an offset of its own (``os.pread``): the planning process and the reader
    share the descriptor, and so its file position."""

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        self.offset = offset

    def read(self, size: int) -> bytes:
        data = os.pread(self.fd, size, self.offset)
        self.offset += len(data)
        return data
