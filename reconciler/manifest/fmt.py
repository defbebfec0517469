"""``reconciler fmt``: manifests rewritten in canonical form, comments kept, meaning unchanged.

Canonical form: the layout of :func:`reconciler.manifest.yamlio.dump_roundtrip` (2-space mappings, list
dashes indented by 2, one space after ``:`` and ``,``, no line wrapping), top-level keys in the order
``apiVersion``, ``kind``, then the kind's fields in the order of the manifest schema (unknown keys last, as
they were), and every full-line comment indented like the line it sits above. A comment above a top-level
key moves with that key; the comments at the top of a document stay at the top. Lists (selectors, owns,
enum values) and the order of metadata keys are never changed. Formatting is idempotent, and every result is
re-read and compared with the original: a rewrite that would change any value is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import ManifestParseError, ManifestValidationError, ReconcilerError, SourceLocation
from reconciler.fileio import write_file
from reconciler.manifest.discovery import find_manifest_files
from reconciler.manifest.schema import KIND_MODELS
from reconciler.manifest.yamlio import dump_roundtrip, load_documents, load_roundtrip, read_documents

__all__ = ["FmtResult", "format_manifest_dir", "format_text", "key_order"]

_KEY_LINE = re.compile(
    r"""^(?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"\-?:][^:#]*?|-[^\s:][^:#]*?)\s*:(?:\s|$)"""
)
_BLOCK_SCALAR = re.compile(r""":\s+(?:&\S+\s+)?(?:!\S*\s+)?[|>][0-9+-]*\s*(?:#.*)?$""")


def key_order(kind: object) -> tuple[str, ...]:
    """The canonical top-level key order of a manifest kind (``apiVersion``, ``kind`` first)."""
    model = KIND_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return ("apiVersion", "kind")
    return tuple(f.alias or name for name, f in model.model_fields.items())


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_comment(line: str) -> bool:
    return line.lstrip(" ").startswith("#")


def _scalar_lines(lines: Sequence[str]) -> set[int]:
    """Indexes of lines inside block scalars (``|`` / ``>``): their ``#`` is text, not a comment."""
    inside: set[int] = set()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not _is_comment(line) and _BLOCK_SCALAR.search(line.split(" #", 1)[0] if " #" in line else line):
            parent = _indent(line)
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > parent):
                inside.add(j)
                j += 1
            # Trailing blank lines belong to what follows, not to the scalar's text layout.
            while j - 1 > i and not lines[j - 1].strip():
                inside.discard(j - 1)
                j -= 1
            i = j
            continue
        i += 1
    return inside


def _reindent_comments(lines: list[str], scalar: set[int]) -> list[str]:
    """Indent each full-line comment like the next content line (column 0 at the end of a document)."""
    out = list(lines)
    target = 0
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if i in scalar or not line.strip():
            if i in scalar:
                target = _indent(line)
            continue
        if _is_comment(line):
            out[i] = " " * target + line.lstrip(" ")
        else:
            target = _indent(line)
    return out


def _top_level_blocks(
    lines: list[str], scalar: set[int]
) -> tuple[list[str], list[tuple[str, list[str]]], list[str]] | None:
    """Split a document into (head, [(key, block lines)], tail), or None when it is not a block mapping.

    A block is a top-level key line and the lines below it up to the next block; the comment and blank lines
    directly above a key (after the first) belong to that key's block. The head (everything above the first key) and
    the tail (comments and blank lines after the last content line) stay where they are.
    """
    starts: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        if i in scalar or not line.strip() or line.startswith((" ", "#")):
            continue
        m = _KEY_LINE.match(line)
        if m is None:
            return None  # a top-level sequence or scalar, or a line this splitter does not understand
        key = line[: m.end()].rstrip().removesuffix(":").rstrip()
        if key[:1] == '"':
            try:
                key = json.loads(key)
            except ValueError:
                return None
        elif key[:1] == "'":
            key = key[1:-1].replace("''", "'")
        starts.append((i, key))
    if not starts:
        return None
    begins = [starts[0][0]]
    for i, _ in starts[1:]:
        b = i
        while (
            b - 1 > begins[-1]
            and (b - 1) not in scalar
            and (_is_comment(lines[b - 1]) or not lines[b - 1].strip())
        ):
            b -= 1
        begins.append(b)
    end = len(lines)
    while (
        end - 1 > starts[-1][0]
        and (end - 1) not in scalar
        and (not lines[end - 1].strip() or _is_comment(lines[end - 1]))
    ):
        end -= 1
    bounds = [*begins[1:], end]
    blocks = [(key, lines[b:e]) for (_, key), b, e in zip(starts, begins, bounds, strict=True)]
    return lines[: begins[0]], blocks, lines[end:]


def _reorder(lines: list[str], scalar: set[int], order: Sequence[str]) -> list[str]:
    """Top-level blocks in canonical key order (stable for keys the order does not name)."""
    split = _top_level_blocks(lines, scalar)
    if split is None:
        return lines
    head, blocks, tail = split
    rank = {k: i for i, k in enumerate(order)}
    ordered = sorted(range(len(blocks)), key=lambda n: (rank.get(blocks[n][0], len(rank)), n))
    if ordered == list(range(len(blocks))):
        return lines
    body: list[str] = []
    for n in ordered:
        body.extend(blocks[n][1])
    while body and not body[-1].strip():
        body.pop()
    while body and not body[0].strip() and (not head or not head[-1].strip()):
        body.pop(0)
    return [*head, *body, *tail]


def _format_document(text: str, kind: object) -> str:
    lines = text.split("\n")
    final_newline = text.endswith("\n")
    if final_newline:
        lines = lines[:-1]
    scalar = _scalar_lines(lines)
    lines = _reindent_comments(lines, scalar)
    lines = _reorder(lines, scalar, key_order(kind))
    return "\n".join(lines) + ("\n" if final_newline else "")


def _canonical_values(text: str, display_path: str) -> list[str]:
    return [
        json.dumps(d.data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
        for d in load_documents(text, display_path)
    ]


def format_text(text: str, display_path: str = "<string>") -> str:
    """The canonical form of one manifest file's text.

    Raises ManifestParseError / ManifestValidationError for YAML that cannot be read (with positions), and
    ReconcilerError if formatting would change a value (a bug: the file is then left alone).
    """
    docs = load_documents(text, display_path)
    before = [
        json.dumps(d.data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
        for d in docs
    ]
    rt_docs = load_roundtrip(text)
    parts = []
    for i, doc in enumerate(rt_docs):
        data = docs[i].data if i < len(docs) else None
        kind = data.get("kind") if isinstance(data, dict) else None
        parts.append(_format_document(dump_roundtrip([doc]), kind))
    out = "---\n".join(parts)
    if not out.strip():
        out = text
    if _canonical_values(out, display_path) != before:
        raise ReconcilerError(
            f"{display_path}: fmt would change the file's values, so it was left alone; please report this "
            "file's layout as a bug"
        )
    return out


@dataclass
class FmtResult:
    """What ``fmt`` found: the files (relative, posix) whose text is not canonical, and how many were checked."""

    changed: list[str] = field(default_factory=list)
    checked: int = 0
    texts: dict[str, tuple[str, str]] = field(default_factory=dict)  # changed file -> (current, canonical)


def format_manifest_dir(root: Path, *, check: bool = False, files: Iterable[Path] | None = None) -> FmtResult:
    """Format every manifest under ``root`` in place (or, with ``check``, only report what would change).

    Every file is read and formatted before any is written, so a file that cannot be read leaves all of them
    untouched. Raises ManifestParseError / ManifestValidationError / ReconcilerError.
    """
    result = FmtResult()
    pending: list[tuple[Path, str]] = []
    if files is None:
        found = find_manifest_files(root)
        if found.errors:
            raise ManifestValidationError(found.errors)
        files = found.files
    for path in files:
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        shown = str(root / rel) if path.is_relative_to(root) else rel
        if path.suffix not in (".yaml", ".yml"):
            raise ManifestParseError(
                "not a manifest: fmt rewrites only *.yaml and *.yml files", SourceLocation(shown)
            )
        # Size, encoding and YAML problems, with positions; then: is every document a manifest?
        for doc in read_documents(path, shown):
            if doc.data is not None and not (isinstance(doc.data, dict) and "apiVersion" in doc.data):
                raise ManifestParseError(
                    "not a manifest (a document without apiVersion); fmt rewrites only manifests",
                    SourceLocation(shown, doc.line, doc.column),
                )
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ManifestParseError(
                f"cannot read file: {exc.strerror or exc}", SourceLocation(shown)
            ) from exc
        new = format_text(text, shown)
        result.checked += 1
        if new != text:
            result.changed.append(rel)
            result.texts[rel] = (text, new)
            pending.append((path, new))
    if not check:
        for path, new in pending:
            # A symlinked manifest stays a link: its target is rewritten, keeping its mode (reconciler.fileio).
            write_file(path, new, what="manifest")
    return result
