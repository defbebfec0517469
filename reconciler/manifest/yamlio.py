"""Safe YAML 1.2 reading with positions, and the comment-keeping round trip used by ``fmt``.

The only module that imports ruamel.yaml. :func:`read_documents` composes the node graph (which carries a
line and column for every node), then builds plain Python values itself, so that it alone decides what is
allowed: only the YAML core tags, string mapping keys, no duplicate keys, bounded alias expansion.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.emitter import Emitter
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarfloat import ScalarFloat

from reconciler.errors import Diagnostic, ManifestParseError, ManifestValidationError, SourceLocation
from reconciler.types import JsonValue

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_MANIFEST_BYTES",
    "Position",
    "RoundTripDocument",
    "YamlDocument",
    "YamlPath",
    "dump_roundtrip",
    "load_documents",
    "load_roundtrip",
    "read_documents",
]

#: A place inside a document: mapping keys and sequence indexes from the document root.
YamlPath: TypeAlias = tuple[str | int, ...]
#: ``(line, column)``, both 1-based.
Position: TypeAlias = tuple[int, int]
#: A document as the round-trip loader gives it (ruamel's CommentedMap/CommentedSeq/scalars, which behave
#: as MutableMapping/MutableSequence/str/int...). Opaque outside this module except through those protocols.
RoundTripDocument: TypeAlias = Any

#: Largest manifest file read (bulk rows belong in a ``source:`` file).
MAX_MANIFEST_BYTES = 10 * 1024 * 1024
#: Most nodes one file may produce through aliases (refuses "billion laughs" documents).
MAX_ALIAS_NODES: Final = 10_000

_CORE = "tag:yaml.org,2002:"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_YAML_DIRECTIVE = re.compile(r"^%YAML[ \t]+(\S+)", re.MULTILINE)
_TIMESTAMP = re.compile(
    r"""^(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})
    (?:(?:[Tt]|[ \t]+)(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})
    (?:\.(?P<fraction>[0-9]*))?
    (?:[ \t]*(?P<tz>Z|z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9]{1,2})(?::?(?P<tz_minute>[0-9]{2}))?))?)?$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class YamlDocument:
    """One YAML document of a file: its plain value and where each part of it is.

    ``values`` maps the path of every node to the position of the node itself; ``keys`` maps the path of
    every mapping entry to the position of its key. ``index`` is the 0-based document number in the file;
    ``line``/``column`` say where the document's content starts.
    """

    data: JsonValue
    index: int
    line: int
    column: int
    values: Mapping[YamlPath, Position]
    keys: Mapping[YamlPath, Position]

    def value_position(self, path: YamlPath) -> Position:
        """Where the value at ``path`` is (or its nearest enclosing node that has a position)."""
        return self._nearest(self.values, path)

    def key_position(self, path: YamlPath) -> Position:
        """Where the key of the mapping entry at ``path`` is (falling back to the value, then upwards)."""
        if path in self.keys:
            return self.keys[path]
        return self._nearest(self.values, path)

    def _nearest(self, table: Mapping[YamlPath, Position], path: YamlPath) -> Position:
        for n in range(len(path), -1, -1):
            pos = table.get(path[:n]) or self.keys.get(path[:n])
            if pos is not None:
                return pos
        return (self.line, self.column)


# --------------------------------------------------------------------------------------------- reading


def read_documents(file: Path, display_path: str, *, max_bytes: int | None = None) -> list[YamlDocument]:
    """Read every document of a YAML file (at most ``max_bytes``, default :data:`MAX_MANIFEST_BYTES`).

    Raises ManifestParseError (unreadable, too big, not UTF-8, malformed YAML) or ManifestValidationError
    (every construction problem of the file: duplicate keys, forbidden tags, non-string keys, aliases).
    """
    if max_bytes is None:
        max_bytes = MAX_MANIFEST_BYTES
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise ManifestParseError(
                f"file is {_size(size)}; a manifest may be at most {_size(max_bytes)} "
                "(put bulk rows in a source: file)",
                SourceLocation(display_path),
            )
        with file.open("rb") as fh:
            raw = fh.read(max_bytes + 1)  # bounded even where stat() knows no size (a device, a pipe)
    except OSError as exc:
        raise ManifestParseError(
            f"cannot read file: {exc.strerror or exc}", SourceLocation(display_path)
        ) from exc
    if len(raw) > max_bytes:
        raise ManifestParseError(
            f"file is larger than {_size(max_bytes)}, the most a manifest may be",
            SourceLocation(display_path),
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ManifestParseError(
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            SourceLocation(display_path, line, column),
        ) from exc
    return load_documents(text, display_path)


def load_documents(text: str, display_path: str = "<string>") -> list[YamlDocument]:
    """Parse YAML text (every document) into plain values with positions. Raises like read_documents."""
    directive = _YAML_DIRECTIVE.search(text)
    if directive and directive.group(1) != "1.2":
        line = text.count("\n", 0, directive.start()) + 1
        raise ManifestParseError(
            f"only YAML 1.2 is supported (found %YAML {directive.group(1)})",
            SourceLocation(display_path, line, 1),
        )
    yaml = YAML(typ="rt")
    try:
        with warnings.catch_warnings():
            # A re-used anchor name is legal YAML (the later definition wins); ruamel only warns about it.
            warnings.simplefilter("ignore", ReusedAnchorWarning)
            nodes = list(yaml.compose_all(io.StringIO(text)))
    except MarkedYAMLError as exc:
        raise _parse_error(exc, text, display_path) from exc
    except ReaderError as exc:
        raise _reader_error(exc, text, display_path) from exc
    except YAMLError as exc:
        raise ManifestParseError(f"invalid YAML: {exc}", SourceLocation(display_path)) from exc
    except RecursionError as exc:
        raise ManifestParseError("document is nested too deeply", SourceLocation(display_path)) from exc
    builder = _Builder(display_path)
    docs: list[YamlDocument] = []
    for index, node in enumerate(nodes):
        docs.append(builder.document(index, node))
    if builder.problems:
        raise ManifestValidationError(builder.problems)
    return docs


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _parse_error(exc: MarkedYAMLError, text: str, display_path: str) -> ManifestParseError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    if line is not None:
        lines = text.splitlines()
        if line - 1 < len(lines):
            src = lines[line - 1]
            indent = src[: len(src) - len(src.lstrip(" \t"))]
            if "\t" in indent:
                return ManifestParseError(
                    "tab characters are not allowed for indentation (indent with spaces)",
                    SourceLocation(display_path, line, indent.index("\t") + 1),
                )
    if "'\\t'" in (exc.problem or ""):
        return ManifestParseError(
            "tab characters are not allowed here (use spaces)", SourceLocation(display_path, line, column)
        )
    problem = _friendly(exc.problem or "malformed YAML")
    message = f"invalid YAML: {problem}"
    if exc.context:
        context = _friendly(exc.context)
        cmark = exc.context_mark
        if cmark is not None and (cmark.line + 1) != line:
            context += f" started at line {cmark.line + 1}"
        message += f" ({context})"
    return ManifestParseError(message, SourceLocation(display_path, line, column))


def _reader_error(exc: ReaderError, text: str, display_path: str) -> ManifestParseError:
    """A character YAML does not allow (control characters): point at it by line and column."""
    pos = min(max(int(exc.position), 0), len(text))
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    char = exc.character
    shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
    return ManifestParseError(
        f"invalid YAML: character {shown} is not allowed in YAML ({exc.reason})",
        SourceLocation(display_path, line, column),
    )


def _friendly(text: str) -> str:
    return (
        text.replace("'<stream end>'", "the end of the file")
        .replace("<stream end>", "the end of the file")
        .replace("<block end>", "the end of the block")
        .replace("but found '?'", "but found another key")
        .replace("but found '-'", "but found a list item")
    )


class _AliasLimitError(Exception):
    pass


class _Builder:
    """Turns composed nodes into plain values, recording positions and collecting problems."""

    def __init__(self, display_path: str) -> None:
        self.path = display_path
        self.problems: list[Diagnostic] = []
        self.alias_nodes = 0
        self._built: set[int] = set()
        self._active: set[int] = set()
        self._values: dict[YamlPath, Position] = {}
        self._keys: dict[YamlPath, Position] = {}

    def document(self, index: int, node: Node) -> YamlDocument:
        self._values = {}
        self._keys = {}
        self._built = set()
        line, column = _pos(node)
        try:
            data = self._build(node, (), via_alias=None)
        except _AliasLimitError:
            data = None
        return YamlDocument(data, index, line, column, self._values, self._keys)

    def _problem(self, node: Node, message: str) -> None:
        line, column = _pos(node)
        self.problems.append(Diagnostic(SourceLocation(self.path, line, column), message))

    def _build(self, node: Node, path: YamlPath, *, via_alias: Node | None) -> JsonValue:
        ident = id(node)
        if ident in self._active:
            self._problem(node, "recursive alias: a node cannot contain itself")
            return None
        if ident in self._built and via_alias is None:
            via_alias = node
        if via_alias is not None:
            self.alias_nodes += 1
            if self.alias_nodes > MAX_ALIAS_NODES:
                anchor = f" (of anchor &{via_alias.anchor})" if via_alias.anchor else ""
                self._problem(
                    via_alias,
                    f"aliases{anchor} expand to more than {MAX_ALIAS_NODES:,} nodes; "
                    "refusing to expand them further",
                )
                raise _AliasLimitError
        self._built.add(ident)
        self._values[path] = _pos(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        self._active.add(ident)
        try:
            if isinstance(node, SequenceNode):
                if node.tag not in (_CORE + "seq",):
                    self._problem(node, f"unsupported YAML tag {_short(node.tag)}")
                return [
                    self._build(child, (*path, i), via_alias=via_alias) for i, child in enumerate(node.value)
                ]
            if isinstance(node, MappingNode):
                if node.tag not in (_CORE + "map",):
                    self._problem(node, f"unsupported YAML tag {_short(node.tag)}")
                return self._mapping(node, path, via_alias=via_alias)
        finally:
            self._active.discard(ident)
        self._problem(node, "unsupported YAML node")
        return None

    def _mapping(self, node: MappingNode, path: YamlPath, *, via_alias: Node | None) -> dict[str, JsonValue]:
        merged: dict[str, JsonValue] = {}
        explicit: dict[str, JsonValue] = {}
        first_seen: dict[str, Position] = {}
        pairs: list[tuple[Node, Node]] = list(node.value)
        # Merge keys (``<<: *base``) first, so that explicit keys, built afterwards, win (and own the position).
        own_position = self._values[path]
        for key_node, value_node in pairs:
            if isinstance(key_node, ScalarNode) and key_node.tag == _CORE + "merge":
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for src in sources:
                    if not isinstance(src, MappingNode):
                        self._problem(src, "a merge key ('<<') needs a mapping or a list of mappings")
                        continue
                    built = self._build(src, path, via_alias=via_alias)
                    if isinstance(built, dict):
                        for k, v in built.items():
                            merged.setdefault(k, v)
        self._values[path] = own_position
        for key_node, value_node in pairs:
            if isinstance(key_node, ScalarNode) and key_node.tag == _CORE + "merge":
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            kpos = _pos(key_node)
            if key in first_seen:
                self._problem(key_node, f"duplicate key {key!r} (first defined at line {first_seen[key][0]})")
                continue
            first_seen[key] = kpos
            child: YamlPath = (*path, key)
            self._keys[child] = kpos
            explicit[key] = self._build(value_node, child, via_alias=via_alias)
        for k, v in merged.items():
            explicit.setdefault(k, v)
        return explicit

    def _key(self, node: Node, path: YamlPath = ()) -> str | None:
        if not isinstance(node, ScalarNode):
            self._problem(node, "mapping keys must be plain strings, not lists or mappings")
            return None
        if self._lone_surrogate(node):
            return None
        value = self._scalar(node)
        if isinstance(value, str):
            return value
        if _is_frames_mapping(path) and isinstance(value, int | float) and not isinstance(value, bool):
            return str(node.value)  # a frame number, kept as written (the manifest rules check it)
        shown = "null" if value is None else _json_text(value)
        self._problem(node, f"mapping key {shown} must be a string (quote it: '{node.value}')")
        return None

    def _lone_surrogate(self, node: ScalarNode) -> bool:
        """Report a string holding a lone surrogate (from a "\\ud800" escape): no UTF-8 output can hold it."""
        text: str = node.value
        if text.isascii() or not _LONE_SURROGATE.search(text):
            return False
        self._problem(node, "invalid string: a \\u escape names a lone UTF-16 surrogate, not a character")
        return True

    def _scalar(self, node: ScalarNode) -> JsonValue:
        tag: str = node.tag or ""
        text: str = node.value
        if self._lone_surrogate(node):
            return None
        try:
            if tag == _CORE + "str":
                return text
            if tag == _CORE + "null":
                return None
            if tag == _CORE + "bool":
                lowered = text.lower()
                if lowered not in ("true", "false"):
                    raise ValueError
                return lowered == "true"
            if tag == _CORE + "int":
                return _yaml_int(text)
            if tag == _CORE + "float":
                return _yaml_float(text)
            if tag == _CORE + "timestamp":
                return _yaml_timestamp(text)
        except ValueError:
            self._problem(node, f"invalid {_short(tag)} value {text!r}")
            return None
        if tag.startswith((_CORE + "python/", "!!python/")):
            self._problem(node, f"language-specific tag {_short(tag)} is not allowed")
        else:
            self._problem(node, f"unsupported YAML tag {_short(tag)}")
        return None


def _pos(node: Node) -> Position:
    mark = node.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _short(tag: str | None) -> str:
    tag = tag or "?"
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def _json_text(value: JsonValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _yaml_int(text: str) -> int:
    t = text.replace("_", "")
    sign = -1 if t.startswith("-") else 1
    t = t.lstrip("+-")
    lowered = t.lower()
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if lowered.startswith(prefix):
            return sign * int(t[2:], base)
    return sign * int(t, 10)


def _yaml_float(text: str) -> float:
    t = text.replace("_", "").lower()
    if t in (".inf", "+.inf"):
        return float("inf")
    if t == "-.inf":
        return float("-inf")
    if t == ".nan":
        return float("nan")
    return float(t)


def _yaml_timestamp(text: str) -> str:
    """A YAML timestamp as the text written: ``2024-05-01T10:00:00Z`` stays exactly that (its zone spelling and
    every fraction digit kept), so the same instant reads the same from a manifest and from a JSONL source.
    Raises ValueError for a date that does not exist (``2024-02-30``)."""
    m = _TIMESTAMP.match(text.strip())
    if m is None:
        raise ValueError(text)
    dt.date(int(m["year"]), int(m["month"]), int(m["day"]))
    if m["hour"] is not None:
        dt.time(int(m["hour"]), int(m["minute"]), int(m["second"]))
        if m["tz_hour"] is not None:
            dt.timezone(dt.timedelta(hours=int(m["tz_hour"]), minutes=int(m["tz_minute"] or 0)))
    return text


# --------------------------------------------------------------------------------------------- round trip


class _RoundTripRepresenter(RoundTripRepresenter):
    """Writes ``null`` for None (ruamel writes ``key:`` with nothing, which hides an explicit null)."""


def _digits(text: str) -> str:
    """The significant digits of a number's text (``-2.50E+3`` -> ``25``)."""
    return re.split("[eE]", text.replace("_", "").lstrip("+-"))[0].replace(".", "").strip("0")


def _represent_float(r: RoundTripRepresenter, data: ScalarFloat) -> Node:
    """ruamel re-renders a float from its parsed parts: that keeps the layout (``1e5``, ``2.5E+3``) but can
    alter digits (6.011013060506361e+16 comes back as ...360e+16). Whenever its digits are not those of the
    shortest exact text, that text is written instead."""
    node: ScalarNode = r.represent_scalar_float(data)
    if not math.isfinite(data) or _digits(node.value) == _digits(repr(float(data))):
        return node
    return r.represent_scalar("tag:yaml.org,2002:float", repr(float(data)))


_RoundTripRepresenter.add_representer(
    type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
)
_RoundTripRepresenter.add_representer(ScalarFloat, _represent_float)


class _FlowEmitter(Emitter):
    """ruamel's emitter, without the dash alignment it pads in front of a flow sequence nested in another
    flow collection (it wrote ``[[[[]]]]`` back as ``[[[   []]]]``): inside ``[...]`` or ``{...}`` a nested
    ``[`` follows its separator directly."""

    def expect_flow_sequence(self, force_flow_indent: bool | None = False) -> None:
        if not self.flow_context or force_flow_indent:
            super().expect_flow_sequence(force_flow_indent)
            return
        self.write_indicator(self.flow_seq_start, True, whitespace=True)
        self.increase_indent(flow=True, sequence=True)
        self.flow_context.append("[")
        self.state = self.expect_first_flow_sequence_item


def _roundtrip_yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Representer = _RoundTripRepresenter
    yaml.Emitter = _FlowEmitter
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 1 << 30  # never wrap (long strings stay on one line)
    yaml.brace_single_entry_mapping_in_flow_sequence = True  # [{k: v}] stays [{k: v}], not [k: v]
    return yaml


def load_roundtrip(text: str) -> list[RoundTripDocument]:
    """Load every document keeping comments, quotes and key order (for ``fmt``).

    Raises ManifestParseError on malformed YAML (location without a path: the caller knows the file).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReusedAnchorWarning)
            return list(_roundtrip_yaml().load_all(text))
    except MarkedYAMLError as exc:
        raise _parse_error(exc, text, "<string>") from exc
    except ReaderError as exc:
        raise _reader_error(exc, text, "<string>") from exc
    except YAMLError as exc:
        raise ManifestParseError(f"invalid YAML: {exc}") from exc


def dump_roundtrip(docs: list[RoundTripDocument]) -> str:
    """Write documents loaded by :func:`load_roundtrip` back, comments kept, in the canonical layout
    (2-space mappings, list dashes indented by 2, no line wrapping, ``---`` only between documents)."""
    out = io.StringIO()
    yaml = _roundtrip_yaml()
    yaml.dump_all(docs, out)
    return out.getvalue()


def _is_frames_mapping(path: YamlPath) -> bool:
    """Whether ``path`` is a files entry's ``frames:`` mapping, whose keys are frame numbers (``13:``): the one
    place a number is a mapping key, kept as the text written so that ``-1``, ``1.5`` or ``013`` can be pointed at."""
    return len(path) == 3 and path[0] == "files" and path[2] == "frames"
