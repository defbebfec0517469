"""File planning, streaming: list each folder once, then select, layer, check and diff files one at a time.

Memory holds the live listings (:mod:`reconciler.plan.listing`) plus the changes found. Desired values are
read row by row from manifests and ``source:`` files, and dropped once their file is diffed. An unchanged
file is recognised cheaply: by one string comparison when a source row's metadata is the live JSON text
character for character (the usual case for rows written by ``json.dumps`` against the embedded store),
else by :meth:`CompiledManifest.is_unchanged` without building a desired dict. Only changed files reach
:func:`reconciler.plan.differ.diff_metadata`.

Files selected by more than one manifest are the exception: their claims are kept until every manifest has
been read, then checked for conflicts (:func:`reconciler.plan.semantics.conflict`) and diffed together.
Which files those are is found first, by a selection-only pass over the manifests whose folders overlap (a
second read of their sources); manifests on folders no other manifest touches are read once.

Where folders are listed ahead, on listing threads, and no two manifests' folders may share files, each
folder is planned as soon as its listing is in, while the next ones are still being listed (the same plan,
errors and requests as planning after the last listing: :func:`_plan_files`).

A targeted plan (``--target``) plans only its manifests, but the other manifests on overlapping folders
take part in that selection-only pass and in the conflict check: a conflict is found whatever the flags.
"""

from __future__ import annotations

import contextlib
import json
import json.scanner
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.errors import Diagnostic, ProviderConflictError
from reconciler.jsoncodec import UNDECIDED, try_loads
from reconciler.model import (
    Assignment,
    FileManifest,
    FileSelector,
    LiveFolder,
    SourceSpec,
    UndeclaredKeys,
    metadata_fingerprint,
)
from reconciler.plan import listing
from reconciler.plan.differ import diff_metadata
from reconciler.plan.listing import LiveIndex, read_index, read_index_and_source
from reconciler.plan.model import FileChange, Strategy
from reconciler.plan.prefetch import Prefetch
from reconciler.plan.selection import Selection, overlap_groups, selected
from reconciler.plan.semantics import CompiledManifest, conflict, plain_values
from reconciler.plan.shard import Shard, ShardRule
from reconciler.progress import RESOLVING_FOLDERS, planning
from reconciler.undeclared import UndeclaredJudge

if TYPE_CHECKING:
    from reconciler.manifest.source import ReadAhead, SourceReaders, SourceRow
    from reconciler.plan.renames import Rename, RenameCheck
    from reconciler.providers.base import StateProvider
    from reconciler.schema import FieldSpec
    from reconciler.types import JsonValue, MetadataView

__all__ = ["FileClaim", "FilePlan", "plan_files", "source_readers"]

log = logging.getLogger(__name__)

#: The C scanner behind ``raw_decode`` (one Python frame less per file): ``(value, end)``.
_scan_json: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed says a scanner; CPython takes a decoder
)


@dataclass(frozen=True, slots=True)
class FileClaim:
    """One manifest's claim on one file: the manifest and the values it gives that file (``limits.Claim``)."""

    manifest: FileManifest
    given: Mapping[str, Assignment]


@dataclass
class FilePlan:
    """What :func:`plan_files` found.

    ``claims`` maps every selected file's uuid to the manifests that select it (what the blast-radius
    limits count), except the unchanged files that one manifest selects, which are only counted, per
    manifest, in ``selected_unchanged`` (a million files need no million entries). With key renames (the
    rename scan asks which files a manifest selects) those are in ``claims`` too, with a shared claim whose
    ``given`` is empty: nothing downstream reads the values of an unchanged file.
    """

    files: list[FileChange] = field(default_factory=list)
    unchanged: int = 0
    claims: dict[str, tuple[FileClaim, ...]] = field(default_factory=dict)
    selected_unchanged: Counter[str] = field(default_factory=Counter)
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    rule: ShardRule | None = None


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


def _claim(s: Selection, i: int, row: SourceRow | None, exact: FileSelector | None) -> FileClaim:
    """Manifest ``s``'s claim on file ``i``, each value located (:meth:`CompiledManifest.layer_located`)."""
    located = _RowAssignments(row) if row is not None else None
    return FileClaim(s.m, s.c.layer_located(s.index.rels[i], located, exact))


def _dataset_index(
    provider: StateProvider,
    dataset_hash: str,
    read: dict[str, LiveIndex],
    on_progress: listing.Progress,
    keep: Callable[[str], bool] | None,
) -> LiveIndex:
    """A dataset's units, read once per plan (one request on Encord). Raises ProviderConflictError."""
    index = read.get(dataset_hash)
    if index is None:
        from reconciler.plan.datasets import read_dataset_index

        index = read[dataset_hash] = read_dataset_index(provider, dataset_hash, on_progress, keep)
    return index


def _may_overlap(a: LiveFolder, b: LiveFolder) -> bool:
    """Whether listings of two folders can share files (one is the other or inside it)."""
    pa, pb = a.path.strip("/"), b.path.strip("/")
    return a.uuid == b.uuid or pa.startswith(pb + "/") or pb.startswith(pa + "/") or not pa or not pb


def _resolve_all(
    manifests: Sequence[FileManifest],
    resolve: Callable[[FileManifest], LiveFolder],
    provider: StateProvider,
    parallelism: int,
    on_progress: listing.Progress,
    on_resolved: Callable[[FileManifest, LiveFolder], None] | None = None,
) -> None:
    """Every manifest's folder, once each (errors are reported where each is used): up to ``parallelism``
    look-ups at once where the provider serves reads concurrently, the same requests either way.
    ``on_resolved`` is told of each folder found, as soon as it is (on the thread that looked it up)."""

    def one(m: FileManifest) -> None:
        if m.dataset is None:
            with contextlib.suppress(ProviderConflictError):
                folder = resolve(m)
                if on_resolved is not None:
                    on_resolved(m, folder)

    if parallelism > 1 and provider.capabilities.parallel_reads and len(manifests) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="resolve") as pool:
            for n, _ in enumerate(pool.map(one, manifests), 1):
                on_progress(RESOLVING_FOLDERS, n, len(manifests))
        return
    for n, m in enumerate(manifests, 1):
        one(m)
        on_progress(RESOLVING_FOLDERS, n, len(manifests))


def _by_text(m: FileManifest) -> bool:
    """Whether ``m``'s folder is listed with digests: a JSONL source's rows may be the live text itself."""
    return m.source is not None and m.source.format == "jsonl"


def _list_early(
    manifests: Sequence[FileManifest],
    prefetch: Prefetch,
    by_text: set[tuple[str, bool, bool]],
    *,
    first: bool,
    whole: bool,
) -> Callable[[FileManifest, LiveFolder], None] | None:
    """Where every manifest's folder is listed (the whole organisation's plan: no shard, no target; no
    dataset) and listings are made ahead, each folder's listing starts as soon as its look-up answers, while
    the other folders are still being looked up: the listings the plan starts after the last look-up, only
    sooner (the connection pool still holds requests at once to ``parallelism``). ``None`` elsewhere, and in
    a second pass (``first`` false: the listings are in)."""
    if not (first and whole and prefetch.active and all(m.dataset is None for m in manifests)):
        return None
    lock = threading.Lock()

    def start(m: FileManifest, folder: LiveFolder) -> None:
        with lock:  # look-ups answer on several threads
            if _by_text(m):
                by_text.add((folder.uuid, m.recursive, m.children))
            prefetch.start(folder, recursive=m.recursive, children=m.children)

    return start


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
    planned: Callable[[FileManifest], bool] | None = None,
    shard: Shard | None = None,
    on_progress: listing.Progress,
    parallelism: int = 1,
    readers: SourceReaders | None = None,
) -> FilePlan:
    """Select, layer and diff the files of ``manifests`` (in order; later manifests layer on earlier ones).

    With ``planned`` (a targeted plan), only the manifests it accepts are planned; the others, where their
    folders may overlap a planned manifest's, are checked for conflicts on the files the planned ones select.

    Problems go to ``FilePlan.errors`` (all of them, in one pass); ``files`` is only meaningful when there
    are none. ``renames`` move old keys' values on the files selected (``rename_check`` is told about every
    selected file that holds an old key). With ``shard``, only that shard's share is planned
    (:mod:`reconciler.plan.shard`; ``FilePlan.rule`` says how it was split). Raises ProviderError.

    A JSONL source may be read by a forked process (``manifest.source.ReadAhead``) while its folder is
    listed; every such process is stopped before this returns or raises. ``readers``: the plan's sources read
    by a process forked before its first request (:func:`source_readers`), started here.
    """
    aheads: dict[int, ReadAhead] = {}
    listed = _Listed()
    started: dict[int, ReadAhead] = {}
    if readers is not None:
        if renames or shard is not None or planned is not None:
            readers.close()  # (each source is read here: see _plan_files)
        else:
            known = UndeclaredJudge(spec_map, undeclared_keys, has_schema, [], []).known
            started = readers.start(spec_map, known)
    try:
        for eager in (PLAN_WHILE_LISTING, False):
            result = _plan_files(
                manifests,
                provider,
                root,
                spec_map,
                undeclared_keys,
                has_schema,
                renames,
                rename_check,
                planned,
                shard,
                on_progress,
                parallelism,
                aheads,
                started,
                listed,
                eager,
            )
            if result is not None:
                return result
            # Planned while listing, then two listings turned out to share a folder: everything is planned
            # again from the start, the usual way, from the same listings (no request is made again).
        raise AssertionError("unreachable: the usual way always returns a plan")
    finally:
        for ahead in (*aheads.values(), *started.values()):
            ahead.close()
        if readers is not None:
            readers.close()


#: Whether a whole plan on a paged listing (Encord) has its JSONL sources read by a process forked before
#: its first request (:func:`source_readers`). Tests turn it off to compare the two ways.
READ_SOURCES_AHEAD = True


def source_readers(
    manifests: Sequence[FileManifest], provider: StateProvider, root: Path, *, whole: bool
) -> SourceReaders | None:
    """The JSONL sources of a whole plan (no shard, no target) on a paged listing, read and checked one after
    another, in the manifests' order, by a forked copy of this process while this one lists the folders
    (:class:`reconciler.manifest.source.SourceReaders`); ``None`` where they are read here. Call it before
    the plan's first request, while no other thread runs (the copy waits for the schema: :func:`plan_files`
    starts it). Which rows it hands on is decided where they are used (``_plan_files``): a source it is not
    used for is closed there, and read here."""
    caps = provider.capabilities
    if not (whole and READ_SOURCES_AHEAD and caps.paged_listing and not caps.digest_listing):
        return None
    from reconciler.manifest.source import source_readers as fork_readers

    specs = {
        n: m.source
        for n, m in enumerate(manifests)
        if m.source is not None and m.dataset is None and m.source.format == "jsonl"
    }
    return fork_readers(root, specs) if specs else None


#: Plan each folder as soon as its listing is in, while the next ones are still being listed (where no two
#: manifests' folders may share files: see :func:`_plan_files`). Tests turn it off to compare the two ways.
PLAN_WHILE_LISTING = True


@dataclass
class _Listed:
    """What a first pass of :func:`_plan_files` asked the provider, for a second pass to ask nothing again."""

    resolved: dict[int, LiveFolder | ProviderConflictError] = field(default_factory=dict)
    indexes: dict[tuple[str, bool, bool], LiveIndex] = field(default_factory=dict)


def _plan_files(
    manifests: Sequence[FileManifest],
    provider: StateProvider,
    root: Path,
    spec_map: Mapping[str, FieldSpec],
    undeclared_keys: UndeclaredKeys,
    has_schema: bool,
    renames: Mapping[str, Rename] | None,
    rename_check: RenameCheck | None,
    planned: Callable[[FileManifest], bool] | None,
    shard: Shard | None,
    on_progress: listing.Progress,
    parallelism: int,
    aheads: dict[int, ReadAhead],
    started: Mapping[int, ReadAhead],
    listed: _Listed,
    eager: bool,
) -> FilePlan | None:
    """:func:`plan_files`; ``None`` when ``eager`` planning had to give up (then plan again with it off).

    ``eager``: where folders are listed ahead (``Prefetch.active``), every manifest is planned and no two of
    their folders may hold the same files (no dataset; no folder the same as, or inside, another), each
    folder is planned as soon as its listing is in, in the manifests' order, as the usual way would plan it
    after the last listing: the same plan, errors and requests. A listing whose files turn out to be in
    another listing's folder (which the folder paths said they could not be) ends that: ``None``. An
    exception from planning a folder is raised after the last listing is in, as it would have been.
    """
    result = FilePlan()
    renames = renames or {}
    undeclared = UndeclaredJudge(spec_map, undeclared_keys, has_schema, result.errors, result.warnings)
    indexes: dict[tuple[str, bool, bool], LiveIndex] = dict(listed.indexes)
    placed: list[tuple[int, Selection, bool]] = []  # (position in the manifests' order, selection, planned)
    early_rows: dict[int, Iterable[SourceRow]] = {}  # id(manifest) -> its source, already being read
    folders: list[LiveFolder] = []
    left_out: list[tuple[int, FileManifest]] = []
    to_plan: list[tuple[int, FileManifest, LiveFolder]] = []
    resolved = listed.resolved

    def resolve(m: FileManifest) -> LiveFolder:
        hit = resolved.get(id(m))
        if hit is None:
            try:
                hit = provider.resolve_folder(m.folder)
            except ProviderConflictError as exc:
                hit = exc
            resolved[id(m)] = hit
        if isinstance(hit, ProviderConflictError):
            raise hit
        return hit

    keep: Callable[[str], bool] | None = None
    # A digest listing pays off where JSONL rows may be the live text itself; files that only a CSV source,
    # exact entries or globs select are all compared value by value (the text listing keeps their texts).
    by_text: set[tuple[str, bool, bool]] = set()

    def read_kept(
        provider: StateProvider,
        folder: LiveFolder,
        *,
        recursive: bool,
        children: bool,
        on_progress: listing.Progress,
    ) -> LiveIndex:
        return read_index(
            provider,
            folder,
            recursive=recursive,
            children=children,
            on_progress=on_progress,
            keep=keep,
            digests=(folder.uuid, recursive, children) in by_text,
        )

    # Leaving the block, however it is left, stops listings nobody collected (at their next progress report).
    with Prefetch(provider, parallelism, on_progress, read_kept) as prefetch:
        on_progress(RESOLVING_FOLDERS, 0, len(manifests))
        _resolve_all(
            manifests,
            resolve,
            provider,
            parallelism,
            on_progress,
            _list_early(
                manifests,
                prefetch,
                by_text,
                first=eager and not listed.indexes,
                whole=shard is None and planned is None,
            ),
        )
        if shard is not None:
            paths = []
            for m in manifests:
                if m.dataset is None:
                    with contextlib.suppress(ProviderConflictError):
                        paths.append(resolve(m).path)
            # A dataset's units are files of any folder: with datasets, every shard keeps its files by uuid.
            result.rule = ShardRule(shard, paths, by_file=any(m.dataset is not None for m in manifests))
            keep = None if result.rule.by_folder else result.rule.keeps
        datasets: dict[str, LiveIndex] = {}  # dataset hash -> its units (reconciler.plan.datasets)
        for position, m in enumerate(manifests):
            if planned is not None and not planned(m):
                left_out.append((position, m))
                continue
            if m.dataset is not None:
                try:
                    units = _dataset_index(provider, m.dataset, datasets, on_progress, keep)
                except ProviderConflictError as exc:
                    result.errors.append(Diagnostic(m.target_location or m.location, str(exc)))
                    continue
                placed.append((position, Selection(m, units, result.errors), True))
                continue
            try:
                folder = resolve(m)
            except ProviderConflictError as exc:
                result.errors.append(Diagnostic(m.target_location or m.location, str(exc)))
                continue
            if result.rule is not None and not result.rule.lists(folder.path):
                continue  # another shard's folder group
            folders.append(folder)
            to_plan.append((position, m, folder))
        to_check: list[tuple[int, FileManifest, LiveFolder]] = []
        planned_datasets = bool(datasets)
        for position, m in left_out:
            # A dataset's units may be files of any folder: a planned dataset meets every left-out manifest.
            if m.dataset is not None:
                try:
                    units = _dataset_index(provider, m.dataset, datasets, on_progress, keep)
                except ProviderConflictError:
                    continue  # not this plan's manifest: its own plan reports it
                placed.append((position, Selection(m, units, []), False))
                continue
            try:
                folder = resolve(m)
            except ProviderConflictError:
                continue  # not this plan's manifest: its own plan reports it
            if planned_datasets or any(_may_overlap(folder, f) for f in folders):
                to_check.append((position, m, folder))
        from reconciler.manifest.source import iter_source_rows, read_ahead

        by_text.update(
            (folder.uuid, m.recursive, m.children) for _, m, folder in (*to_plan, *to_check) if _by_text(m)
        )

        planner = _FilePlanner(result, renames, rename_check)
        pending: dict[str, list[tuple[Selection, int, FileClaim, bool]]] = {}
        counts: dict[str, int] = {}

        def plan_one(c: Selection, is_shared: bool) -> None:
            """Plan the files manifest ``c`` selects (a manifest this plan plans)."""
            index = c.index
            stage = planning(c.m.name)
            total = len(index)
            on_progress(stage, 0, total)

            def tick(n: int) -> None:
                on_progress(stage, n, total)

            rows = early_rows.pop(id(c.m), None)
            # The usual file is found unchanged by selected() itself: a source row whose metadata is the live
            # JSON text byte for byte (_FilePlanner.single decides the same way, more slowly; a row with a null
            # value never counts, whatever the live text: LiveIndex.same_text).
            fast = c.c.plain and not renames and not is_shared
            digests = index.digests if fast else None
            texts = index.metadata_raw if fast and index.digests is None else None
            ahead = aheads.get(id(c.m))
            if ahead is not None and ahead.used:
                ahead = None  # (planned again: its rows were handed on once; read here)
            if ahead is not None and texts is not None and index.unchecked is not None:
                digests = index.text_digests()  # (a paged listing's texts, compared by digest with the rows')
            if ahead is not None and (digests is None or index.ambiguous or index.elsewhere):
                ahead.close()  # read here after all
                ahead = None
            if ahead is not None:
                log.info(
                    "%s: read and checked by process %s while folders were listed", ahead.path, ahead.pid
                )
            n = 0
            for i, row, exact in selected(
                c, root, spec_map, result.errors, undeclared, rows, digests, tick, ahead, texts
            ):
                if is_shared and counts.get(index.uuids[i], 0) > 1:
                    pending.setdefault(index.uuids[i], []).append((c, i, _claim(c, i, row, exact), True))
                else:
                    try:
                        planner.single(c, i, row, exact)
                    except (
                        RecursionError
                    ):  # a live value nested too deeply to decode or compare: this file only
                        result.errors.append(
                            Diagnostic(
                                c.m.location,
                                f"{index.folder.path}/{index.rels[i]} (file {index.uuids[i]}): its live metadata is "
                                "nested too deeply to compare; nothing is planned for it",
                            )
                        )
                n += 1

            planner.unchanged(c.m, c.same)
            on_progress(stage, n + c.same, total)
            c.finish_missing(result.errors, result.warnings)

        # Planning while listing (see the docstring): only where no two manifests' folders may share files.
        eager = (
            eager
            and not left_out
            and not to_check
            and not any(m.dataset is not None for m in manifests)
            and all(
                not _may_overlap(a, b) for n, (_, _, a) in enumerate(to_plan) for _, _, b in to_plan[n + 1 :]
            )
        )
        eager_folders: set[str] = set()  # the folders of the listings planned so far
        eager_failed: Exception | None = None
        gave_up = False
        eager = eager and prefetch.active
        for _, m, folder in (*to_plan, *to_check):  # listed ahead, up to `parallelism` folders at once
            if (folder.uuid, m.recursive, m.children) not in indexes:
                prefetch.start(folder, recursive=m.recursive, children=m.children)
        for position, m, folder in to_plan:
            key = (folder.uuid, m.recursive, m.children)
            index = indexes.get(key)
            ahead = started.get(position)
            if ahead is not None and (
                index is not None
                or ahead.used
                or key not in by_text
                or keep is not None
                or renames
                or not prefetch.active
            ):
                ahead.close()  # (read here)
                ahead = None
            if index is None:
                if ahead is not None:
                    aheads[id(m)] = ahead  # (its rows are read by the process forked for them)
                    index = prefetch.get(folder, recursive=m.recursive, children=m.children)[0]
                elif m.source is not None and prefetch.active:
                    src = m.source

                    def open_rows(src: SourceSpec = src) -> Iterator[SourceRow]:
                        return iter(iter_source_rows(root, src, spec_map, result.errors))

                    index, early = prefetch.get(
                        folder, recursive=m.recursive, children=m.children, rows=open_rows
                    )
                    assert early is not None
                    early_rows[id(m)] = early
                elif m.source is not None and not provider.capabilities.raw_listing:
                    index, early_rows[id(m)] = read_index_and_source(
                        provider, folder, m, root, spec_map, result.errors, on_progress, keep
                    )
                else:
                    if (
                        not aheads
                        and m.source is not None
                        and key in by_text
                        and keep is None
                        and not renames
                        and provider.capabilities.digest_listing
                        and threading.active_count() == 1  # (a forked copy has only the thread that forks)
                    ):
                        # The source is read and checked by another process while this one lists the folder.
                        ahead = read_ahead(root, m.source, spec_map, undeclared.known)
                        if ahead is not None:
                            aheads[id(m)] = ahead

                    index = prefetch.get(folder, recursive=m.recursive, children=m.children)[0]
                indexes[key] = listed.indexes[key] = index
            s = Selection(m, index, result.errors)
            placed.append((position, s, True))
            if eager and not gave_up:
                if not eager_folders.isdisjoint(index.folders):
                    gave_up = True  # (the usual way finds the files they share)
                elif eager_failed is None:
                    eager_folders.update(index.folders)
                    try:
                        plan_one(s, False)
                    except Exception as exc:  # raised once every listing is in, as the usual way would
                        eager_failed = exc
        for position, m, folder in to_check:
            key = (folder.uuid, m.recursive, m.children)
            index = indexes.get(key)
            if index is None:
                index = indexes[key] = listed.indexes[key] = prefetch.get(
                    folder, recursive=m.recursive, children=m.children
                )[0]
            placed.append((position, Selection(m, index, []), False))
    if gave_up:
        return None
    if eager_failed is not None:
        raise eager_failed
    placed.sort(key=lambda e: e[0])
    compiled = [s for _, s, _ in placed]
    active = [a for _, _, a in placed]

    shared = [False] * len(compiled) if eager else overlap_groups(compiled)
    if any(shared):
        # Selection-only pass: which files more than one manifest selects (diagnostics come from pass 2).
        for c, is_shared in zip(compiled, shared, strict=True):
            if is_shared:
                scratch = Selection(c.m, c.index, [], c.c)
                for i, _, _ in selected(scratch, root, spec_map, [], None):
                    u = c.index.uuids[i]
                    counts[u] = counts.get(u, 0) + 1

    for c, is_shared, is_active in zip(compiled, shared, active, strict=True):
        if eager:
            break  # every manifest is planned already
        index = c.index
        if not is_active:
            if is_shared:
                for i, row, exact in selected(c, root, spec_map, [], None):
                    if counts.get(index.uuids[i], 0) > 1:
                        pending.setdefault(index.uuids[i], []).append((c, i, _claim(c, i, row, exact), False))
            continue
        plan_one(c, is_shared)
    if pending:
        planner.shared(pending, [c.m for c in compiled])
    for index in indexes.values():  # metadata texts the plan did not need, checked as the listing would
        index.check_all()
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
        if self.renames:  # the rename scan asks which files a manifest selects (FilePlan.claims)
            self.result.unchanged += 1
            shared = self._unchanged_claim.get(id(m))
            if shared is None:
                shared = self._unchanged_claim[id(m)] = (FileClaim(m, {}),)
            self.result.claims[uuid] = shared
        else:
            self.unchanged(m)

    def unchanged(self, m: FileManifest, files: int = 1) -> None:
        """More unchanged files that only ``m`` selects (without renames: see FilePlan.claims)."""
        self.result.unchanged += files
        self.result.selected_unchanged[m.name] += files

    def _moved(self, live: MetadataView) -> dict[str, JsonValue] | None:
        if not self.renames:
            return None
        from reconciler.plan.renames import move_values

        return move_values(live, self.renames)

    def single(self, s: Selection, i: int, row: SourceRow | None, exact: FileSelector | None) -> None:
        """A file only manifest ``s`` selects: unchanged (counted) or a FileChange."""
        index = s.index
        uuid = index.uuids[i]
        m = s.m
        c = s.c
        simple = row if c.plain and exact is None else None  # the row's values are the file's values
        if (
            simple is not None
            and simple.text is not None
            and not self.renames
            and index.same_text(i, simple.text)
            and b"null" not in simple.text
        ):
            # The row's metadata is, byte for byte, the live JSON: nothing to decode or compare.
            # (A null in it would remove a key, so such rows take the long way.)
            self._unchanged(m, uuid)
            return
        unchecked = index.unchecked
        if unchecked is not None and unchecked[i]:
            # The listing left the text undecoded: decoded here once, for its check and for the plan.
            raw = index.metadata_raw[i]
            live = try_loads(raw) if type(raw) is str else raw
            if type(live) is dict:
                unchecked[i] = 0  # (what the listing's check finds first: check_listed_text)
            else:
                raw = index.raw(i)  # the listing's check, with its error
        else:
            raw = index.raw(i)
            live = try_loads(raw) if type(raw) is str else raw
        if live is UNDECIDED:
            try:
                live = _scan_json(raw, 0)[0] if isinstance(raw, str) else None
            except (StopIteration, ValueError, RecursionError):
                live = None
        if type(live) is not dict:
            live = index.metadata(i)  # the careful way, with its error
        moved = self._moved(live) if self.renames else None
        values = (
            simple.values
            if simple is not None
            else c.layer(index.rels[i], row.values if row is not None else None, exact, s.glob_used)
        )
        if moved is None and c.is_unchanged(values, live):
            self._unchanged(m, uuid)
            return
        claim = FileClaim(m, _RowAssignments(simple)) if simple is not None else _claim(s, i, row, exact)
        self.result.claims[uuid] = (claim,)
        if moved is not None and self.rename_check is not None:
            self.rename_check.check_file(f"{index.folder.path}/{index.rels[i]}", live, (claim,))
        desired, owned = c.write(values, moved if moved is not None else live, live)
        strategy = Strategy.MERGE if c.merge else Strategy.OVERWRITE
        # Without a rename only the owned keys can differ.
        self._record(index, i, live, desired, strategy, m.name, owned if moved is None else None)

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
                dataset=index.dataset.ref(i) if index.dataset is not None else None,
            )
        )

    def shared(
        self,
        pending: Mapping[str, list[tuple[Selection, int, FileClaim, bool]]],
        order: Sequence[FileManifest],
    ) -> None:
        """Files several manifests select: conflicts first, then each file's claims layered in manifest order.

        Claims marked inactive (manifests a targeted plan leaves out) count for conflicts only.
        """
        rank = {id(m): n for n, m in enumerate(order)}
        conflicts: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        by_name: dict[str, FileManifest] = {m.name: m for m in order}
        resolved: list[
            tuple[LiveIndex, int, dict[str, JsonValue], list[tuple[CompiledManifest, FileClaim]]]
        ] = []
        for uuid, entries in pending.items():
            if not any(e[3] for e in entries):
                continue  # only manifests this plan leaves out select it
            entries.sort(key=lambda e: rank[id(e[2].manifest)])
            index, i = entries[0][0].index, entries[0][1]
            live = index.metadata(i)
            address = (index.folder.path, index.rels[i])
            for a in range(len(entries)):
                for b in range(a + 1, len(entries)):
                    ea, eb = entries[a], entries[b]
                    if not (ea[3] or eb[3]):
                        continue
                    ca, cb = ea[0].c, eb[0].c
                    ma, mb = ca.m, cb.m
                    both = conflict(ca, ea[2].given, cb, eb[2].given, live)
                    if both is None:
                        what = "overwrites" if not ca.merge else "is overwritten by"
                        conflicts.setdefault((ma.name, mb.name, f"{ma.name} {what} {mb.name}"), []).append(
                            address
                        )
                    else:
                        for key in both:
                            conflicts.setdefault((ma.name, mb.name, f"key {key!r}"), []).append(address)
            mine = [(e[0].c, e[2]) for e in entries if e[3]]
            self.result.claims[uuid] = tuple(cl for _, cl in mine)
            resolved.append((index, i, live, mine))
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
                self.rename_check.check_file(
                    f"{index.folder.path}/{index.rels[i]}", live, [cl for _, cl in claims]
                )
            current: dict[str, JsonValue] = moved if moved is not None else dict(live)
            strategy = Strategy.MERGE
            for c, cl in claims:
                current = c.desired(plain_values(cl.given), current, live)
                if not c.merge:
                    strategy = Strategy.OVERWRITE
            self._record(index, i, live, current, strategy, ", ".join(cl.manifest.name for _, cl in claims))
