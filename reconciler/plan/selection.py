"""Selection: which live files one manifest selects, and with which source row and exact entry.

A :class:`Selection` is one manifest compiled against its folder listing: its exact entries by ordinal, its
globs (from :class:`reconciler.plan.semantics.CompiledManifest`), which globs matched, and the selectors or
rows that match no file (reported per ``on_missing``). :func:`selected` yields every selected file once.

A name (an exact entry's or a source row's) that two live files share is an error naming both uuids:
picking one would write to a file the author may not have meant.
"""

from __future__ import annotations

import contextlib
import operator
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reconciler.errors import Diagnostic, SourceLocation
from reconciler.manifest.source import FastRows
from reconciler.model import FileManifest, FileSelector, OnMissing, SelectorKind
from reconciler.plan import listing
from reconciler.plan.listing import LiveIndex
from reconciler.plan.semantics import CompiledManifest

if TYPE_CHECKING:
    from reconciler.manifest.source import ReadAhead, SourceRow
    from reconciler.schema import FieldSpec
    from reconciler.types import JsonValue
    from reconciler.undeclared import UndeclaredJudge

__all__ = ["MAX_MISSING_REPORTED", "Selection", "overlap_groups", "selected"]

#: Source rows that match no live file: reported one by one up to this many per manifest, then counted.
MAX_MISSING_REPORTED = 100


class Selection:
    """One manifest compiled against its folder listing: exact entries by ordinal, glob hits, missing ones."""

    def __init__(
        self,
        m: FileManifest,
        index: LiveIndex,
        errors: list[Diagnostic],
        compiled: CompiledManifest | None = None,
    ) -> None:
        self.m = m
        self.index = index
        self.c = compiled if compiled is not None else CompiledManifest(m)
        self.glob_hit = [False] * len(self.c.globs)
        self.exact: dict[int, FileSelector] = {}
        self.missing: list[Diagnostic] = []
        self.missing_count = 0
        #: Files found unchanged by :func:`selected` itself (its ``same``), not yielded.
        self.same = 0
        for s in m.files:
            if s.kind is SelectorKind.GLOB:
                continue
            i = self.resolve(s.kind, s.pattern, s.location, errors)
            if i is None:
                continue
            prev = self.exact.get(i)
            if prev is not None:
                errors.append(_selected_twice(s.location, index.rels[i], prev.location))
                continue
            self.exact[i] = s

    def resolve(
        self, kind: SelectorKind, key: str, location: SourceLocation, errors: list[Diagnostic]
    ) -> int | None:
        """The ordinal of the one live file ``kind``/``key`` names; ``None`` (reported) when none or two."""
        index = self.index
        if kind is SelectorKind.NAME:
            i = index.by_name.get(key)
            if i is not None and index.ambiguous:
                ords = index.ambiguous.get(key)
                if ords is not None:
                    uuids = " and ".join(sorted(index.uuids[o] for o in ords))
                    if index.elsewhere and index.is_elsewhere(key):  # a sharded listing (plan/shard.py)
                        many, uuids = "more than one file", f"{uuids} and others"
                    else:
                        many = f"{len(ords)} files"
                    errors.append(
                        Diagnostic(
                            location,
                            index.dataset.ambiguity(key, ords)
                            if index.dataset is not None
                            else f"name {key!r} matches {many} in folder {index.folder.path!r} ({uuids}); "
                            "select each by uuid instead",
                        )
                    )
                    return None
            if i is None and index.elsewhere and index.is_elsewhere(key):
                return None  # another shard's file
        else:
            i = index.ordinal_of_uuid(key)
            if i is None and index.keep is not None:
                if index.dataset is not None:  # a data hash; the shard went by the backing item
                    if key.lower() in index.dataset.elsewhere:
                        return None
                elif not index.keep(key):
                    return None  # another shard's file: that shard judges it
        if i is None:
            self.report_missing(f"{kind.value} {key!r}", location, key if kind is SelectorKind.NAME else None)
        return i

    def glob_used(self, n: int) -> None:
        self.glob_hit[n] = True

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
        msg = f"{what} matches no file in {self.index.where}"
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
                f"{hidden:,} more selector(s) or source row(s) match no file in "
                f"{self.index.where} (first {MAX_MISSING_REPORTED} above)"
            )
            if self.m.on_missing is OnMissing.ERROR:
                out.append(Diagnostic(self.m.location, msg))
            else:
                out.append(Diagnostic(self.m.location, msg, "warning"))
        for (_, s, _), hit in zip(self.c.globs, self.glob_hit, strict=True):
            if not hit and not self.index.elsewhere:  # (a shard's glob may match other shards' files)
                warnings.append(Diagnostic(s.location, f"glob {s.pattern!r} matches no file", "warning"))


def _selected_twice(where: SourceLocation, rel: str, first: SourceLocation) -> Diagnostic:
    """The error of a file one manifest selects exactly twice: at ``where``, naming the ``first`` place."""
    return Diagnostic(where, f"{rel!r} is already selected exactly at {first} in this manifest")


def selected(
    c: Selection,
    root: Path,
    spec_map: Mapping[str, FieldSpec],
    errors: list[Diagnostic],
    undeclared: UndeclaredJudge | None,
    rows: Iterable[SourceRow] | None = None,
    same: array[int] | None = None,
    tick: Callable[[int], None] | None = None,
    ahead: ReadAhead | None = None,
    texts: Sequence[str | dict[str, JsonValue]] | None = None,
) -> Iterator[tuple[int, SourceRow | None, FileSelector | None]]:
    """Every file a manifest selects, once: ``(ordinal, source row or None, exact entry or None)``.

    Source rows first (as they stream; ``rows`` if the caller already started reading them), then exact
    entries no row selected, then glob-only files.

    With ``same`` (a digest listing's digests, for a manifest whose rows are their files' values), a file
    whose row's metadata text has the file's digest (the live text, byte for byte: unchanged) and no ``null``
    (which would remove a key) is counted in ``c.same`` instead of yielded; ``texts`` (a text listing's ``metadata_raw``, for such a manifest) does the
    same for a row whose metadata text is the file's text and holds no ``null`` (which would remove a key), as
    ``_FilePlanner.single`` would find it. ``tick(n)`` hears every ``listing.PROGRESS_EVERY`` files selected.

    ``ahead`` (with ``same``, for a listing where no name is shared or left to another shard, and ``undeclared``
    the judge whose known keys it was made with): the manifest's JSONL source as another process read and
    checked it (:class:`reconciler.manifest.source.ReadAhead`), instead of reading it here. Its usual rows come
    as names, line numbers, digests and whether one of the row's values is ``null`` (in a row its checks
    accepted, no value holds a ``null`` deeper down, and a ``null`` elsewhere in the text, in a string, leaves
    the values those of the live text); a file whose row is not its live text is read again here
    (``ReadAhead.usual_row``: the bytes the reader checked, or an error if they changed meanwhile).
    """
    m, index = c.m, c.index
    done = bytearray(len(index))
    count = 0
    every = listing.PROGRESS_EVERY
    next_report = every if tick is not None else -1
    if m.source is not None:
        from reconciler.manifest.source import iter_source_rows

        ambiguous = index.ambiguous
        row_line = array("q", bytes(8 * len(index)))
        src_path = m.source.path
        stream: Iterable[SourceRow | FastRows]
        if ahead is not None:
            assert same is not None and not ambiguous and not index.elsewhere
            stream = ahead.rows(errors)
        else:
            stream = rows if rows is not None else iter_source_rows(root, m.source, spec_map, errors)
        name = SelectorKind.NAME
        # UndeclaredJudge.judge_row, without a call for a row whose keys are all known (the usual row)
        known = undeclared.known if undeclared is not None else None
        exact_of = c.exact.get if c.exact else None
        unchecked = index.unchecked
        unchanged = 0
        # A file is looked for first as the one after the last row's (a source in listing order), then by
        # name (LiveIndex.ordinal_of_name; ``by_name`` is made only then). No name is shared where it is used.
        rels = index.rels
        size = len(rels)
        nxt = 0
        get: Callable[[str], int | None] | None = None
        for row in stream:
            if isinstance(row, FastRows):  # (only with ahead) usual rows, taken as the loop below takes a row
                assert ahead is not None and same is not None
                names, lines, digests, offsets, lengths, nulls = row
                # The files whose row is not their live text, re-read from the store together (one query,
                # not one each) before any message is given or the batch ends, so everything stays in order.
                later: list[tuple[int, SourceRow]] = []
                lo, n = nxt, len(names)
                placed = (
                    exact_of is None
                    and lo + n <= size
                    and done.find(1, lo, lo + n) < 0
                    and rels[lo : lo + n] == names
                )
                rows_here: Iterable[tuple[int, str, int, int]]
                if placed:
                    # The next files of the listing, in its order, none selected before (a source in listing
                    # order): selected together, the files whose row is their live text counted at once, the
                    # others looked at one by one below, as the loop would.
                    done[lo : lo + n] = b"\x01" * n
                    row_line[lo : lo + n] = lines
                    count += n
                    while 0 < next_report <= count:
                        tick(next_report)  # type: ignore[misc]  # next_report is -1 without tick
                        next_report += every
                    same_text = list(map(operator.eq, same[lo : lo + n], digests))
                    if 1 in nulls:  # (a null in the row removes its key)
                        for j in range(n):
                            if nulls[j]:
                                same_text[j] = False
                    if unchecked is not None:  # (a row the reader decoded as an object stands for the text)
                        unchecked[lo : lo + n] = bytes(
                            0 if s else u for u, s in zip(unchecked[lo : lo + n], same_text, strict=True)
                        )
                    others: list[int] = []
                    j = -1
                    with contextlib.suppress(ValueError):
                        while True:
                            j = same_text.index(False, j + 1)
                            others.append(j)
                    unchanged += n - len(others)
                    nxt = lo + n
                    rows_here = ((j, names[j], lines[j], digests[j]) for j in others)
                else:
                    rows_here = zip(range(n), names, lines, digests, strict=True)
                for j, key, line, h in rows_here:
                    if placed:
                        i = lo + j
                    elif nxt < size and rels[nxt] == key:
                        i = nxt
                    else:
                        if get is None:
                            get = index.by_name.get
                        found = get(key)
                        if found is None:
                            c.report_missing(f"{name.value} {key!r}", SourceLocation(src_path, line), key)
                            continue
                        i = found
                    if not placed:  # (else selected above)
                        nxt = i + 1
                        if done[i] or (exact_of is not None and exact_of(i) is not None):
                            if later:
                                yield from _reread(index, later)
                            if done[i]:
                                prev = SourceLocation(src_path, row_line[i])
                                errors.append(
                                    _selected_twice(SourceLocation(src_path, line), index.rels[i], prev)
                                )
                                continue
                        done[i] = 1
                        row_line[i] = line
                        if exact_of is not None and (exact := exact_of(i)) is not None:
                            errors.append(
                                _selected_twice(exact.location, index.rels[i], SourceLocation(src_path, line))
                            )
                            continue
                        count += 1
                        if count == next_report:
                            tick(count)  # type: ignore[misc]  # next_report is -1 without tick
                            next_report += every
                        if same[i] == h and not nulls[j]:  # (a null in the row removes its key)
                            if unchecked is not None:
                                unchecked[i] = 0
                            unchanged += 1
                            continue
                    full = ahead.usual_row(key, line, offsets[j], lengths[j], h)
                    if full is None:  # (the line is no longer the one the reader read and checked)
                        if later:
                            yield from _reread(index, later)
                        errors.append(
                            Diagnostic(
                                SourceLocation(src_path, line),
                                "the source file changed while it was being read; plan again",
                            )
                        )
                        continue
                    later.append((i, full))
                if later:
                    yield from _reread(index, later)
                continue
            if known is not None and not known.issuperset(row.values):
                assert undeclared is not None
                undeclared.judge_row(row)
            if row.kind is name and not ambiguous:
                found = index.ordinal_of_name(row.key, nxt)
                if found is None:
                    if not (index.elsewhere and index.is_elsewhere(row.key)):
                        c.report_missing(f"{row.kind.value} {row.key!r}", row.location, row.key)
                    continue
                i = nxt = found
                nxt += 1
            else:
                found = c.resolve(row.kind, row.key, row.location, errors)
                if found is None:
                    continue
                i = found
            if done[i]:
                prev = SourceLocation(src_path, row_line[i])
                errors.append(_selected_twice(row.location, index.rels[i], prev))
                continue
            done[i] = 1
            row_line[i] = row.line
            exact = exact_of(i) if exact_of is not None else None
            if exact is not None:
                errors.append(_selected_twice(exact.location, index.rels[i], row.location))
                continue
            count += 1
            if count == next_report:
                tick(count)  # type: ignore[misc]  # next_report is -1 without tick
                next_report += every
            if same is not None:
                text = row.text
                if text is not None and same[i] == hash(text) and b"null" not in text:
                    if unchecked is not None:
                        unchecked[i] = 0  # (the row's text, decoded as an object, stands for the live one)
                    unchanged += 1
                    continue
            elif texts is not None:
                text = row.text
                if (
                    text is not None
                    and type(live := texts[i]) is str
                    and b"null" not in text
                    and live == text.decode()
                ):
                    if unchecked is not None:
                        unchecked[i] = 0  # (the row's text, decoded as an object, stands for the live one)
                    unchanged += 1
                    continue
            yield i, row, None
        c.same += unchanged
    for i, s in c.exact.items():
        if not done[i]:
            done[i] = 1
            count += 1
            if count == next_report:
                tick(count)  # type: ignore[misc]
                next_report += every
            yield i, None, s
    globs = c.c.globs
    if globs:
        rels = index.rels
        for i in range(len(index)):
            if done[i]:
                continue
            rel = rels[i]
            for n, (rx, _, _) in enumerate(globs):
                if rx.match(rel):
                    c.glob_hit[n] = True
                    count += 1
                    if count == next_report:
                        tick(count)  # type: ignore[misc]
                        next_report += every
                    yield i, None, None
                    break


def _reread(
    index: LiveIndex, later: list[tuple[int, SourceRow]]
) -> Iterator[tuple[int, SourceRow | None, FileSelector | None]]:
    """Yield ``later``'s files (and empty it), their live texts re-read from the store at once."""
    index.reread_ahead([i for i, _ in later])
    for i, row in later:
        yield i, row, None
    later.clear()


def overlap_groups(selections: Sequence[Selection]) -> list[bool]:
    """For each manifest, whether another manifest's folders overlap its own (files may be shared)."""
    shared = [False] * len(selections)
    for a in range(len(selections)):
        for b in range(a + 1, len(selections)):
            ia, ib = selections[a].index, selections[b].index
            # A dataset's units are storage items of any folder (or none): it may share files with anything.
            if ia is ib or ia.dataset or ib.dataset or not ia.folders.isdisjoint(ib.folders):
                shared[a] = shared[b] = True
    return shared
