"""Streaming file planning: list each folder once, then select, layer, check and diff files one at a time.

Memory holds the live listings (compact: uuid, relative name, and the metadata as the provider gave it, JSON
text when the provider can) plus the changes found. Desired values are read row by row from manifests and
``source:`` files, and dropped once their file is diffed. An unchanged file is recognised cheaply: by one
string comparison when a source row's metadata is the live JSON text character for character (the usual
case for rows written by ``json.dumps`` against the embedded store), else value by value without building
a desired dict. Only changed files reach :func:`reconciler.plan.differ.diff_metadata`.

Files selected by more than one manifest are the exception: their claims are kept until every manifest has
been read, then checked for conflicts and diffed together. Which files those are is found first, by a
selection-only pass over the manifests whose folders overlap (a second read of their sources); manifests
on folders no other manifest touches are read once.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import json.scanner
import logging
import re
import threading
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, runtime_checkable

from reconciler.errors import Diagnostic, ProviderConflictError, ProviderResponseError, SourceLocation
from reconciler.model import (
    Assignment,
    FileManifest,
    FileSelector,
    LiveFolder,
    Mode,
    OnMissing,
    SelectorKind,
    UndeclaredKeys,
    metadata_fingerprint,
)
from reconciler.plan.differ import diff_metadata, values_equal
from reconciler.plan.model import FileChange, Strategy
from reconciler.plan.policy import compile_glob, desired_dict, owned_keys

if TYPE_CHECKING:
    from reconciler.manifest.source import SourceRow
    from reconciler.plan.renames import Rename, RenameCheck
    from reconciler.providers.base import StateProvider
    from reconciler.schema import FieldSpec
    from reconciler.types import JsonValue, MetadataView

__all__ = [
    "FileClaim",
    "FilePlan",
    "LiveIndex",
    "RawListingProvider",
    "plan_files",
    "read_index",
]

log = logging.getLogger(__name__)

#: How often (in files) the reading and planning stages report progress.
PROGRESS_EVERY = 10_000
#: Source rows that match no live file: reported one by one up to this many per manifest, then counted.
MAX_MISSING_REPORTED = 100

_ABSENT: Any = object()
_decode = json.JSONDecoder().raw_decode
#: The C scanner behind ``raw_decode`` (one Python frame less per file): ``(value, end)``.
_scan_json: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed says a scanner; CPython takes a decoder
)

Progress = Callable[[str, int, "int | None"], None]


@runtime_checkable
class RawListingProvider(Protocol):
    """A provider that can list items with their metadata as JSON text (the planner parses it on use)."""

    def iter_raw_items(
        self, folder: LiveFolder, *, recursive: bool, children: bool
    ) -> Iterator[tuple[str, str, str, str]]:
        """``(rel_name, uuid, folder_uuid, metadata_json)`` for the same items as ``iter_items``."""
        ...


@dataclass(frozen=True, slots=True)
class FileClaim:
    """One manifest's claim on one file: the manifest and the values it gives that file (``limits.Claim``)."""

    manifest: FileManifest
    given: Mapping[str, Assignment]


class LiveIndex:
    """One folder listing, compact: parallel lists by ordinal, and relative name -> ordinal.

    ``metadata_raw[i]`` is the JSON text of file ``i``'s metadata when the provider lists raw text, else the
    provider's dict; :meth:`metadata` parses on every call, so nothing parsed stays in memory.
    """

    __slots__ = ("_by_nfc", "_by_uuid", "by_name", "folder", "folders", "metadata_raw", "rels", "uuids")

    def __init__(self, folder: LiveFolder) -> None:
        self.folder = folder
        self.uuids: list[str] = []
        self.rels: list[str] = []
        self.metadata_raw: list[str | dict[str, JsonValue]] = []
        self.by_name: dict[str, int] = {}
        self.folders: set[str] = set()
        self._by_uuid: dict[str, int] | None = None
        self._by_nfc: dict[str, list[str]] | None = None

    def __len__(self) -> int:
        return len(self.uuids)

    def ordinal_of_uuid(self, uuid: str) -> int | None:
        if self._by_uuid is None:
            self._by_uuid = {u.lower(): i for i, u in enumerate(self.uuids)}
        return self._by_uuid.get(uuid.lower())

    def other_forms(self, name: str) -> list[str]:
        """Live names that equal ``name`` once both are in Unicode normal form NFC, but differ from it."""
        if name.isascii():
            return []
        if self._by_nfc is None:
            self._by_nfc = {}
            for rel in self.rels:
                if not rel.isascii():
                    self._by_nfc.setdefault(unicodedata.normalize("NFC", rel), []).append(rel)
        return [r for r in self._by_nfc.get(unicodedata.normalize("NFC", name), []) if r != name]

    def metadata(self, i: int) -> dict[str, JsonValue]:
        """File ``i``'s live metadata (a fresh dict for JSON text; the provider's dict otherwise)."""
        raw = self.metadata_raw[i]
        if type(raw) is not str:
            assert isinstance(raw, dict)
            return raw
        if not raw.strip():
            return {}
        try:
            value = _decode(raw.strip())[0]
        except ValueError as exc:
            raise ProviderResponseError(f"file {self.uuids[i]}: its live metadata is not valid JSON") from exc
        if type(value) is not dict:
            raise ProviderResponseError(f"file {self.uuids[i]}: its live metadata is not a JSON object")
        return value


def read_index(
    provider: StateProvider, folder: LiveFolder, *, recursive: bool, children: bool, on_progress: Progress
) -> LiveIndex:
    """List a folder into a :class:`LiveIndex`, reporting progress every :data:`PROGRESS_EVERY` files."""
    index = LiveIndex(folder)
    uuids, rels, raws, by_name = index.uuids, index.rels, index.metadata_raw, index.by_name
    stage = f"reading {folder.path}"
    on_progress(stage, 0, None)
    n = 0
    next_report = PROGRESS_EVERY
    folders = index.folders
    if provider.capabilities.raw_listing:
        last_folder = None
        for rel, uuid, item_folder, raw in cast(RawListingProvider, provider).iter_raw_items(
            folder, recursive=recursive, children=children
        ):
            by_name[rel] = n
            uuids.append(uuid)
            rels.append(rel)
            raws.append(raw)
            if item_folder != last_folder:
                folders.add(item_folder)
                last_folder = item_folder
            n += 1
            if n >= next_report:
                on_progress(stage, n, None)
                next_report += PROGRESS_EVERY
    else:
        for li in provider.iter_items(folder, recursive=recursive, children=children):
            item = li.item
            by_name[li.rel_name] = n
            uuids.append(item.uuid)
            rels.append(li.rel_name)
            raws.append(item.metadata)
            folders.add(item.folder)
            n += 1
            if n >= next_report:
                on_progress(stage, n, None)
                next_report += PROGRESS_EVERY
    folders.add(folder.uuid)
    on_progress(stage, n, n)
    return index


def _merge_unchanged(
    given: Mapping[str, JsonValue], live: MetadataView, owns: Callable[[str], bool] | None
) -> bool:
    """Whether a merge claim leaves ``live`` as it is (no desired dict is built)."""
    get = live.get
    for key, v in given.items():
        cur = get(key, _ABSENT)
        tv = type(v)
        if tv is type(cur):  # the common case, inlined: the same scalar type
            if tv is str or tv is int or tv is bool:
                if cur == v:
                    continue
                return False
            if tv is float and cur == v:
                continue
        if v is None:
            if cur is not _ABSENT:
                return False
        elif cur is _ABSENT or not values_equal(cur, v):
            return False
    if owns is not None:
        for key in live:
            if key not in given and owns(key):
                return False  # an owned key with no desired value is removed
    return True


def _overwrite_unchanged(given: Mapping[str, JsonValue], live: MetadataView) -> bool:
    kept = 0
    get = live.get
    for key, v in given.items():
        if v is None:
            continue
        cur = get(key, _ABSENT)
        if cur is _ABSENT or not values_equal(cur, v):
            return False
        kept += 1
    return kept == len(live)


def _owns_matcher(patterns: Sequence[str]) -> Callable[[str], bool] | None:
    """``fnmatchcase`` against any of ``patterns``, memoised per key (keys repeat across files)."""
    if not patterns:
        return None
    rx = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    cache: dict[str, bool] = {}

    def owns(key: str) -> bool:
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = rx.match(key) is not None
        return hit

    return owns


@dataclass
class FilePlan:
    """What :func:`plan_files` found.

    ``claims`` maps every selected file's uuid to the manifests that select it (what the blast-radius
    limits count). For an unchanged file selected by one manifest the claim is shared and its ``given`` is
    empty: nothing downstream reads the values of an unchanged file.
    """

    files: list[FileChange] = field(default_factory=list)
    unchanged: int = 0
    claims: dict[str, tuple[FileClaim, ...]] = field(default_factory=dict)
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)


class _Manifest:
    """One manifest compiled against its folder listing: defaults, globs and exact entries by ordinal."""

    def __init__(self, m: FileManifest, index: LiveIndex, errors: list[Diagnostic]) -> None:
        self.m = m
        self.index = index
        self.defaults = {k: a.value for k, a in m.defaults.items()}
        self.globs: list[tuple[re.Pattern[str], FileSelector, dict[str, JsonValue]]] = [
            (compile_glob(s.pattern), s, {k: a.value for k, a in s.metadata.items()})
            for s in m.files
            if s.kind is SelectorKind.GLOB
        ]
        self.glob_hit = [False] * len(self.globs)
        self.plain = not self.globs and not self.defaults  # a source row's values are the file's values
        self.owns = _owns_matcher(m.owns) if m.mode is Mode.MERGE else None
        self.exact: dict[int, FileSelector] = {}
        self.missing: list[Diagnostic] = []
        self.missing_count = 0
        for s in m.files:
            if s.kind is SelectorKind.GLOB:
                continue
            i = (
                index.by_name.get(s.pattern)
                if s.kind is SelectorKind.NAME
                else index.ordinal_of_uuid(s.pattern)
            )
            if i is None:
                self.report_missing(
                    f"{s.kind.value} {s.pattern!r}",
                    s.location,
                    s.pattern if s.kind is SelectorKind.NAME else None,
                )
                continue
            prev = self.exact.get(i)
            if prev is not None:
                errors.append(
                    Diagnostic(
                        s.location,
                        f"{index.rels[i]!r} is already selected exactly at {prev.location} in this manifest",
                    )
                )
                continue
            self.exact[i] = s

    def report_missing(self, what: str, loc: SourceLocation, name: str | None = None) -> None:
        # A name that differs from a live one only in Unicode normalisation (NFC "é" vs NFD "e" + accent, as
        # macOS file names are) selects nothing: Encord compares names exactly. Always said, even with
        # on_missing: ignore (then as a warning), since it is almost certainly a mistake.
        forms = self.index.other_forms(name) if name is not None else []
        if forms:
            hint = (
                f"{what} matches no file in folder {self.index.folder.path!r}, but the folder has {forms[0]!a}, "
                f"which differs from {name!a} only in Unicode normalisation (NFC/NFD); write the name "
                "exactly as Encord has it"
            )
            severity: Literal["error", "warning"] = (
                "error" if self.m.on_missing is OnMissing.ERROR else "warning"
            )
            self.missing.append(Diagnostic(loc, hint, severity))
            return
        if self.m.on_missing is OnMissing.IGNORE:
            return
        self.missing_count += 1
        if self.missing_count > MAX_MISSING_REPORTED:
            return
        msg = f"{what} matches no file in folder {self.index.folder.path!r}"
        if self.m.on_missing is OnMissing.ERROR:
            self.missing.append(Diagnostic(loc, msg + " (set on_missing: warn or ignore to allow)"))
        else:
            self.missing.append(Diagnostic(loc, msg, "warning"))

    def finish_missing(self, errors: list[Diagnostic], warnings: list[Diagnostic]) -> None:
        out = errors if self.m.on_missing is OnMissing.ERROR else warnings
        out.extend(self.missing)
        hidden = self.missing_count - MAX_MISSING_REPORTED
        if hidden > 0:
            msg = (
                f"{hidden:,} more selector(s) or source row(s) match no file in folder "
                f"{self.index.folder.path!r} (first {MAX_MISSING_REPORTED} above)"
            )
            if self.m.on_missing is OnMissing.ERROR:
                out.append(Diagnostic(self.m.location, msg))
            else:
                out.append(Diagnostic(self.m.location, msg, "warning"))
        for (_, s, _), hit in zip(self.globs, self.glob_hit, strict=True):
            if not hit:
                warnings.append(Diagnostic(s.location, f"glob {s.pattern!r} matches no file", "warning"))

    def given(self, i: int, row: SourceRow | None, exact: FileSelector | None) -> Mapping[str, JsonValue]:
        """The layered values of file ``i``: defaults, globs in order, the source row, the exact entry."""
        if row is not None and not self.globs and not self.defaults and exact is None:
            return row.values
        out = dict(self.defaults)
        if self.globs:
            rel = self.index.rels[i]
            for n, (rx, _, values) in enumerate(self.globs):
                if rx.match(rel):
                    self.glob_hit[n] = True
                    out.update(values)
        if row is not None:
            out.update(row.values)
        if exact is not None:
            out.update({k: a.value for k, a in exact.metadata.items()})
        return out

    def claim(self, i: int, row: SourceRow | None, exact: FileSelector | None) -> FileClaim:
        """The same layering as :meth:`given`, with each value's location (for claims that are kept)."""
        out = dict(self.m.defaults)
        rel = self.index.rels[i]
        for rx, s, _ in self.globs:
            if rx.match(rel):
                out.update(s.metadata)
        if row is not None:
            out.update(row.metadata)
        if exact is not None:
            out.update(exact.metadata)
        return FileClaim(self.m, out)


class _RowAssignments(Mapping[str, Assignment]):
    """A source row's values as Assignments located at the row, made only when one is looked up."""

    __slots__ = ("_row",)

    def __init__(self, row: SourceRow) -> None:
        self._row = row

    def __getitem__(self, key: str) -> Assignment:
        return Assignment(self._row.values[key], self._row.location)

    def __iter__(self) -> Iterator[str]:
        return iter(self._row.values)

    def __len__(self) -> int:
        return len(self._row.values)

    def __contains__(self, key: object) -> bool:
        return key in self._row.values


class _Undeclared:
    """The undeclared-keys policy for keys that only source rows set (each key judged once)."""

    def __init__(
        self, spec_map: Mapping[str, FieldSpec], policy: UndeclaredKeys, has_schema: bool, result: FilePlan
    ) -> None:
        self.known: set[str] = set(spec_map) | {"keyframes"}
        self.active = has_schema and policy is not UndeclaredKeys.ALLOW
        self.policy = policy
        self.result = result

    def check(self, row: SourceRow) -> None:
        if self.known.issuperset(row.values):
            return
        for key, value in row.values.items():
            if key in self.known or value is None:
                continue
            self.known.add(key)
            if not self.active:
                continue
            msg = f"key {key!r} is not declared in the metadata schema"
            if self.policy is UndeclaredKeys.ERROR:
                self.result.errors.append(
                    Diagnostic(row.location, msg + " (settings.undeclared_keys: error)")
                )
            else:
                self.result.warnings.append(Diagnostic(row.location, msg, "warning"))


def _selected(
    c: _Manifest,
    root: Path,
    spec_map: Mapping[str, FieldSpec],
    errors: list[Diagnostic],
    undeclared: _Undeclared | None,
    rows: Iterable[SourceRow] | None = None,
) -> Iterator[tuple[int, SourceRow | None, FileSelector | None]]:
    """Every file a manifest selects, once: ``(ordinal, source row or None, exact entry or None)``.

    Source rows first (as they stream; ``rows`` if the caller already started reading them), then exact
    entries no row selected, then glob-only files.
    """
    m, index = c.m, c.index
    done = bytearray(len(index))
    if m.source is not None:
        from reconciler.manifest.source import iter_source_rows

        by_name = index.by_name
        row_line = array("q", bytes(8 * len(index)))
        src_path = m.source.path
        if rows is None:
            rows = iter_source_rows(root, m.source, spec_map, errors)
        for row in rows:
            if undeclared is not None:
                undeclared.check(row)
            i = by_name.get(row.key) if row.kind is SelectorKind.NAME else index.ordinal_of_uuid(row.key)
            if i is None:
                c.report_missing(
                    f"{row.kind.value} {row.key!r}",
                    row.location,
                    row.key if row.kind is SelectorKind.NAME else None,
                )
                continue
            if done[i]:
                prev = SourceLocation(src_path, row_line[i])
                errors.append(
                    Diagnostic(
                        row.location,
                        f"{index.rels[i]!r} is already selected exactly at {prev} in this manifest",
                    )
                )
                continue
            done[i] = 1
            row_line[i] = row.line
            exact = c.exact.get(i)
            if exact is not None:
                errors.append(
                    Diagnostic(
                        exact.location,
                        f"{index.rels[i]!r} is already selected exactly at {row.location} in this manifest",
                    )
                )
                continue
            yield i, row, None
    for i, s in c.exact.items():
        if not done[i]:
            done[i] = 1
            yield i, None, s
    if c.globs:
        rels = index.rels
        globs = c.globs
        for i in range(len(index)):
            if done[i]:
                continue
            rel = rels[i]
            for n, (rx, _, _) in enumerate(globs):
                if rx.match(rel):
                    c.glob_hit[n] = True
                    yield i, None, None
                    break


#: Source rows read ahead while a folder is listed over the network (about 3 kB each in memory).
READ_AHEAD_ROWS = 20_000


def _read_index_and_source(
    provider: StateProvider,
    folder: LiveFolder,
    m: FileManifest,
    root: Path,
    spec_map: Mapping[str, FieldSpec],
    errors: list[Diagnostic],
    on_progress: Progress,
) -> tuple[LiveIndex, Iterable[SourceRow]]:
    """List ``folder`` on a helper thread while this thread reads the first rows of ``m``'s source.

    A listing over the network mostly waits (for pages of 1000 to be built and sent); reading and checking
    source rows is pure Python. Doing both at once hides much of the shorter one. (A local raw listing
    has nothing to wait for: the two would only contend for the GIL, so it is not used there.) Returns
    the index and the source rows: the ones read ahead, then the rest as they stream. Progress is
    reported from this thread only.
    """
    from reconciler.manifest.source import iter_source_rows

    assert m.source is not None
    done: list[LiveIndex] = []
    failed: list[BaseException] = []
    seen = [0]

    def count(stage: str, n: int, total: int | None) -> None:
        seen[0] = n

    def listing() -> None:
        try:
            done.append(
                read_index(provider, folder, recursive=m.recursive, children=m.children, on_progress=count)
            )
        except BaseException as exc:  # handed to the planning thread, which raises it
            failed.append(exc)

    stage = f"reading {folder.path}"
    on_progress(stage, 0, None)
    worker = threading.Thread(target=listing, name="reconciler-listing", daemon=True)
    worker.start()
    rows = iter_source_rows(root, m.source, spec_map, errors)
    ahead: list[SourceRow] = []
    reported = 0
    for row in rows:
        ahead.append(row)
        if not worker.is_alive() or len(ahead) >= READ_AHEAD_ROWS:
            break
        if seen[0] - reported >= PROGRESS_EVERY:
            reported = seen[0]
            on_progress(stage, reported, None)
    while worker.is_alive():
        worker.join(0.2)
        if seen[0] != reported:
            reported = seen[0]
            on_progress(stage, reported, None)
    if failed:
        raise failed[0]
    index = done[0]
    on_progress(stage, len(index), len(index))
    return index, itertools.chain(ahead, rows)


def _overlap_groups(compiled: Sequence[_Manifest]) -> list[bool]:
    """For each manifest, whether another manifest's folders overlap its own (files may be shared)."""
    shared = [False] * len(compiled)
    for a in range(len(compiled)):
        for b in range(a + 1, len(compiled)):
            ia, ib = compiled[a].index, compiled[b].index
            if ia is ib or not ia.folders.isdisjoint(ib.folders):
                shared[a] = shared[b] = True
    return shared


def plan_files(
    manifests: Sequence[FileManifest],
    provider: StateProvider,
    *,
    root: Path,
    spec_map: Mapping[str, FieldSpec],
    undeclared_keys: UndeclaredKeys = UndeclaredKeys.ALLOW,
    has_schema: bool = False,
    renames: Mapping[str, Rename] | None = None,
    rename_check: RenameCheck | None = None,
    on_progress: Progress,
) -> FilePlan:
    """Select, layer and diff the files of ``manifests`` (in order; later manifests layer on earlier ones).

    Problems go to ``FilePlan.errors`` (all of them, in one pass); ``files`` is only meaningful when there
    are none. ``renames`` move old keys' values on the files selected (``rename_check`` is told about every
    selected file that holds an old key). Raises ProviderError.
    """
    result = FilePlan()
    renames = renames or {}
    undeclared = _Undeclared(spec_map, undeclared_keys, has_schema, result)
    indexes: dict[tuple[str, bool, bool], LiveIndex] = {}
    compiled: list[_Manifest] = []
    early_rows: dict[int, Iterable[SourceRow]] = {}  # manifest position -> its source, already being read
    for m in manifests:
        try:
            folder = provider.resolve_folder(m.folder)
        except ProviderConflictError as exc:
            result.errors.append(Diagnostic(m.location, f"{m.name}: {exc}"))
            continue
        key = (folder.uuid, m.recursive, m.children)
        index = indexes.get(key)
        if index is None:
            if m.source is not None and not provider.capabilities.raw_listing:
                index, early_rows[len(compiled)] = _read_index_and_source(
                    provider, folder, m, root, spec_map, result.errors, on_progress
                )
            else:
                index = read_index(
                    provider, folder, recursive=m.recursive, children=m.children, on_progress=on_progress
                )
            indexes[key] = index
        compiled.append(_Manifest(m, index, result.errors))

    shared = _overlap_groups(compiled)
    counts: dict[str, int] = {}
    if any(shared):
        # Selection-only pass: which files more than one manifest selects (diagnostics come from pass 2).
        for c, is_shared in zip(compiled, shared, strict=True):
            if is_shared:
                scratch = _Manifest(c.m, c.index, [])
                for i, _, _ in _selected(scratch, root, spec_map, [], None):
                    u = c.index.uuids[i]
                    counts[u] = counts.get(u, 0) + 1

    planner = _FilePlanner(result, renames, rename_check)
    pending: dict[str, list[tuple[_Manifest, int, FileClaim]]] = {}
    for position, (c, is_shared) in enumerate(zip(compiled, shared, strict=True)):
        index = c.index
        stage = f"planning {c.m.name}"
        total = len(index)
        on_progress(stage, 0, total)
        n = 0
        next_report = PROGRESS_EVERY
        rows = early_rows.get(position)
        for i, row, exact in _selected(c, root, spec_map, result.errors, undeclared, rows):
            if is_shared and counts.get(index.uuids[i], 0) > 1:
                pending.setdefault(index.uuids[i], []).append((c, i, c.claim(i, row, exact)))
            else:
                try:
                    planner.single(c, i, row, exact)
                except RecursionError:  # a live value nested too deeply to decode or compare: this file only
                    result.errors.append(
                        Diagnostic(
                            c.m.location,
                            f"{index.folder.path}/{index.rels[i]} (file {index.uuids[i]}): its live metadata is "
                            "nested too deeply to compare; nothing is planned for it",
                        )
                    )
            n += 1
            if n >= next_report:
                on_progress(stage, n, total)
                next_report += PROGRESS_EVERY
        on_progress(stage, n, total)
        c.finish_missing(result.errors, result.warnings)
    if pending:
        planner.shared(pending, [c.m for c in compiled])
    return result


class _FilePlanner:
    """Turns claims into FileChanges (or counts the file unchanged)."""

    def __init__(
        self, result: FilePlan, renames: Mapping[str, Rename], rename_check: RenameCheck | None
    ) -> None:
        self.result = result
        self.renames = renames
        self.rename_check = rename_check
        self._unchanged_claim: dict[int, tuple[FileClaim, ...]] = {}

    def _unchanged(self, m: FileManifest, uuid: str) -> None:
        self.result.unchanged += 1
        shared = self._unchanged_claim.get(id(m))
        if shared is None:
            shared = self._unchanged_claim[id(m)] = (FileClaim(m, {}),)
        self.result.claims[uuid] = shared

    def _moved(self, live: MetadataView) -> dict[str, JsonValue] | None:
        if not self.renames:
            return None
        from reconciler.plan.renames import move_values

        return move_values(live, self.renames)

    def single(self, c: _Manifest, i: int, row: SourceRow | None, exact: FileSelector | None) -> None:
        """A file only manifest ``c`` selects: unchanged (counted) or a FileChange."""
        index = c.index
        uuid = index.uuids[i]
        raw = index.metadata_raw[i]
        m = c.m
        simple = row if c.plain and exact is None else None  # the row's values are the file's values
        if simple is not None and simple.text == raw and not self.renames and "null" not in raw:
            # The row's metadata is, character for character, the live JSON: nothing to decode or compare.
            # (A null in it would remove a key, so such rows take the long way.)
            self._unchanged(m, uuid)
            return
        try:
            live = _scan_json(raw, 0)[0] if type(raw) is str else raw
        except (StopIteration, ValueError, RecursionError):
            live = None
        if type(live) is not dict:
            live = index.metadata(i)  # the careful way, with its error
        moved = self._moved(live) if self.renames else None
        values = simple.values if simple is not None else c.given(i, row, exact)
        if moved is None and (
            _merge_unchanged(values, live, c.owns)
            if m.mode is Mode.MERGE
            else _overwrite_unchanged(values, live)
        ):
            self._unchanged(m, uuid)
            return
        claim = FileClaim(m, _RowAssignments(simple)) if simple is not None else c.claim(i, row, exact)
        self.result.claims[uuid] = (claim,)
        if moved is not None and self.rename_check is not None:
            self.rename_check.check_file(f"{index.folder.path}/{index.rels[i]}", live, (claim,))
        # policy.owned_keys / desired_dict, on the plain values (no Assignment per value).
        if m.mode is Mode.OVERWRITE:
            whole = {k: v for k, v in values.items() if v is not None}
            self._record(index, i, live, whole, Strategy.OVERWRITE, m.name)
            return
        owned = set(values)
        if c.owns is not None:
            owned.update(k for k in live if c.owns(k))
        desired: dict[str, JsonValue] = dict(moved if moved is not None else live)
        for key in owned:
            v = values.get(key)
            if v is None:
                desired.pop(key, None)
            else:
                desired[key] = v
        # Without a rename only the owned keys can differ.
        self._record(index, i, live, desired, Strategy.MERGE, m.name, owned if moved is None else None)

    def _record(
        self,
        index: LiveIndex,
        i: int,
        live: MetadataView,
        desired: MetadataView,
        strategy: Strategy,
        manifest: str,
        keys: Iterable[str] | None = None,
    ) -> None:
        changes = diff_metadata(live, desired, keys=keys)
        if not changes:
            self.result.unchanged += 1
            return
        rel = index.rels[i]
        log.info("detected change to %s/%s", index.folder.path, rel)
        self.result.files.append(
            FileChange(
                uuid=index.uuids[i],
                folder=index.folder.path,
                name=rel,
                strategy=strategy,
                manifest=manifest,
                live_fingerprint=metadata_fingerprint(live),
                changes=changes,
            )
        )

    def shared(
        self, pending: Mapping[str, list[tuple[_Manifest, int, FileClaim]]], order: Sequence[FileManifest]
    ) -> None:
        """Files several manifests select: conflicts first, then each file's claims layered in manifest order."""
        rank = {id(m): n for n, m in enumerate(order)}
        conflicts: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        by_name: dict[str, FileManifest] = {m.name: m for m in order}
        resolved: list[tuple[LiveIndex, int, dict[str, JsonValue], list[FileClaim]]] = []
        for uuid, entries in pending.items():
            entries.sort(key=lambda e: rank[id(e[2].manifest)])
            index, i = entries[0][0].index, entries[0][1]
            live = index.metadata(i)
            claims = [e[2] for e in entries]
            self.result.claims[uuid] = tuple(claims)
            address = (index.folder.path, index.rels[i])
            owned_by = [owned_keys(cl.manifest.mode, cl.manifest.owns, cl.given, live) for cl in claims]
            for a in range(len(claims)):
                for b in range(a + 1, len(claims)):
                    ma, mb = claims[a].manifest, claims[b].manifest
                    oa, ob = owned_by[a], owned_by[b]
                    if oa is None or ob is None:
                        what = "overwrites" if oa is None else "is overwritten by"
                        conflicts.setdefault((ma.name, mb.name, f"{ma.name} {what} {mb.name}"), []).append(
                            address
                        )
                    else:
                        for key in sorted(oa & ob):
                            conflicts.setdefault((ma.name, mb.name, f"key {key!r}"), []).append(address)
            resolved.append((index, i, live, claims))
        for (a_name, b_name, what), addresses in sorted(conflicts.items()):
            folder_path, rel = min(addresses)
            example = f"{folder_path}/{rel}"
            more = f" and {len(addresses) - 1} more file(s)" if len(addresses) > 1 else ""
            if what.startswith("key "):
                msg = f"conflict: {a_name} and {b_name} both own {what} on {example}{more}"
            else:
                msg = (
                    f"conflict: {a_name} and {b_name} select the same file {example}{more}; "
                    "an overwrite manifest must be the only manifest on its files"
                )
            self.result.errors.append(Diagnostic(by_name[b_name].location, msg))
        if conflicts:
            return
        for index, i, live, claims in resolved:
            moved = self._moved(live)
            if moved is not None and self.rename_check is not None:
                self.rename_check.check_file(f"{index.folder.path}/{index.rels[i]}", live, claims)
            current: dict[str, JsonValue] = moved if moved is not None else dict(live)
            strategy = Strategy.MERGE
            for cl in claims:
                owned = owned_keys(cl.manifest.mode, cl.manifest.owns, cl.given, live)
                current = desired_dict(cl.manifest.mode, owned, cl.given, current)
                if cl.manifest.mode is Mode.OVERWRITE:
                    strategy = Strategy.OVERWRITE
            self._record(index, i, live, current, strategy, ", ".join(cl.manifest.name for cl in claims))
