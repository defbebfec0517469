"""Bulk ``source:`` rows (JSONL or CSV, SPEC §3.3), streamed one row at a time.

Memory does not grow with the file: each line is parsed, checked against the schema and handed on.
Bad rows are reported as ``path:line: message`` in the caller's diagnostics list (at most ``max_errors``,
then one summary line) and skipped.

JSONL: one object per line, ``{"name": ...}`` or ``{"uuid": ...}`` plus ``"metadata": {...}``; blank lines are
skipped. CSV: a header row with a ``name`` or ``uuid`` column and one column per metadata key; each cell is
converted by its key's schema type (:func:`reconciler.values.convert_cell`); an empty cell means "not set".
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.errors import Diagnostic, SourceLocation
from reconciler.model import Assignment, SelectorKind
from reconciler.schema import check_key_name
from reconciler.values import (
    CellConverter,
    ValueChecker,
    cell_converter,
    check_keyframes,
    describe_value,
    value_checker,
)

if TYPE_CHECKING:
    from pathlib import Path

    from reconciler.model import SourceSpec
    from reconciler.schema import FieldSpec
    from reconciler.types import JsonValue

__all__ = ["SourceRow", "iter_source_rows"]

_UUID_CHARS = frozenset("0123456789abcdefABCDEF")
_MISSING: object = object()
_ROW_FIELDS = frozenset({"name", "uuid", "metadata"})


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One row of a source file: which file it selects and the values it gives (each located at the row)."""

    kind: SelectorKind  # NAME or UUID
    key: str  # the file name (relative to the folder) or the canonical lower-case UUID
    metadata: dict[str, Assignment]
    location: SourceLocation


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
    """One value checker per key, made on first use (the schema's type is looked at once per key)."""

    def __init__(self, schema: Mapping[str, FieldSpec]) -> None:
        self.schema = schema
        self._cache: dict[str, ValueChecker | None] = {}

    def get(self, key: str) -> ValueChecker | None:
        checker = self._cache.get(key, _MISSING)
        if checker is not _MISSING:
            return checker  # type: ignore[return-value]  # not the sentinel
        if key == "keyframes":
            checker = check_keyframes
        else:
            spec = self.schema.get(key)
            checker = value_checker(key, spec) if spec is not None else None
        self._cache[key] = checker
        return checker


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
    checkers = _Checkers(schema)
    try:
        if spec.format == "csv":
            yield from _csv_rows(root / spec.path, spec.path, schema, checkers, report)
        else:
            yield from _jsonl_rows(root / spec.path, spec.path, checkers, report)
    except OSError as exc:
        report(None, f"cannot read source file: {exc.strerror or exc}")
    report.finish()


# --------------------------------------------------------------------------------------------- JSONL


def _jsonl_rows(file: Path, path: str, checkers: _Checkers, report: _Reporter) -> Iterator[SourceRow]:
    decode = json.JSONDecoder().decode
    with file.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                report(lineno, "line is not valid UTF-8")
                continue
            if lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]  # a byte order mark
            if not text or text.isspace():
                continue
            try:
                obj = decode(text)
            except ValueError as exc:
                report(lineno, _json_problem(exc))
                continue
            row = _jsonl_row(obj, lineno, path, checkers, report)
            if row is not None:
                yield row


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    return f"invalid JSON: {exc}"


def _jsonl_row(
    obj: object, lineno: int, path: str, checkers: _Checkers, report: _Reporter
) -> SourceRow | None:
    if type(obj) is not dict:
        report(
            lineno,
            f'expected a JSON object like {{"name": ..., "metadata": {{...}}}}, got {describe_value(obj)}',
        )
        return None
    if not obj.keys() <= _ROW_FIELDS:
        extra = sorted(k for k in obj if k not in _ROW_FIELDS)
        report(lineno, f'unknown field {extra[0]!r} (a row has "name" or "uuid", and "metadata")')
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
    location = SourceLocation(path, lineno)
    values: dict[str, Assignment] = {}
    for key, value in metadata.items():
        if value is not None:
            checker = checkers.get(key)
            if checker is not None:
                problem = checker(value)
                if problem is not None:
                    report(lineno, problem)
                    return None
        values[key] = Assignment(value, location)
    return SourceRow(kind, selector, values, location)


# --------------------------------------------------------------------------------------------- CSV


def _csv_rows(
    file: Path, path: str, schema: Mapping[str, FieldSpec], checkers: _Checkers, report: _Reporter
) -> Iterator[SourceRow]:
    with file.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, strict=True)
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
        compiled = [(index, key, _cell_converter(key, schema), checkers.get(key)) for index, key in keys]
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
            location = SourceLocation(path, start)
            values: dict[str, Assignment] = {}
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
                values[key] = Assignment(value, location)
            else:
                yield SourceRow(kind, selector, values, location)


def _keyframes_cell(text: str) -> JsonValue:
    try:
        value: JsonValue = json.loads(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a JSON list of frame numbers") from None
    return value


def _cell_converter(key: str, schema: Mapping[str, FieldSpec]) -> CellConverter:
    return _keyframes_cell if key == "keyframes" else cell_converter(schema.get(key))


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
        if name != "keyframes":
            problem = check_key_name(name)
            if problem is not None:
                report(1, f"column {name!r}: {problem}")
                return None
        keys.append((i, name))
    return SelectorKind(header[ids[0]]), ids[0], keys
