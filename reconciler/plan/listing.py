"""Live listings: each folder listed once into a compact :class:`LiveIndex`, raw JSON text when the provider
can list it so (``Capabilities.raw_listing``, :class:`RawListingProvider`), and the read-ahead that reads a manifest's ``source:`` rows
while a folder is listed over the network.

A listing holds uuid, relative name and the metadata as the provider gave it (JSON text, parsed on use),
so nothing parsed stays in memory. A relative name that two live files share (two files of one name,
``x/y.jpg`` both in subfolder ``x`` and as an item named ``x/y.jpg``, a top-level ``grp/c1.png`` and
child ``c1.png`` of group ``grp``) is recorded in :attr:`LiveIndex.ambiguous`: selecting it by name is an
error, never a silent pick.
"""

from __future__ import annotations

import bisect
import itertools
import json
import operator
import threading
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast, overload, runtime_checkable

from reconciler.errors import Diagnostic, ProviderConflictError, ProviderError, ProviderResponseError
from reconciler.frames import WIRE_ROOT, raw_to_keys
from reconciler.jsoncodec import UNDECIDED, try_loads
from reconciler.model import FileManifest, LiveFolder
from reconciler.plan.model import DatasetRef
from reconciler.progress import Progress, reading

if TYPE_CHECKING:
    from reconciler.manifest.source import SourceRow
    from reconciler.providers.base import StateProvider
    from reconciler.schema import FieldSpec
    from reconciler.types import JsonValue

__all__ = [
    "PROGRESS_EVERY",
    "READ_AHEAD_ROWS",
    "DatasetListing",
    "DigestListingProvider",
    "LiveIndex",
    "PagedListingProvider",
    "Progress",
    "RawListingProvider",
    "read_index",
    "read_index_and_source",
]

#: How often (in files) the reading and planning stages report progress.
PROGRESS_EVERY = 10_000

_decode = json.JSONDecoder().raw_decode


@runtime_checkable
class RawListingProvider(Protocol):
    """A provider that can list items with their metadata as JSON text (the planner parses it on use)."""

    def iter_raw_items(
        self, folder: LiveFolder, *, recursive: bool, children: bool
    ) -> Iterator[tuple[str, str, str, str | dict[str, JsonValue]]]:
        """``(rel_name, uuid, folder_uuid, metadata)`` for the same items as ``iter_items``: the metadata's JSON
        text, or the decoded dict when it holds per-frame values (engine keys, :mod:`reconciler.frames`)."""
        ...


@runtime_checkable
class PagedListingProvider(Protocol):
    """A provider that can list items in pages of ``(rel_name, uuid, folder_uuid, metadata)``: the same files,
    in the same order, as ``iter_items``, with the metadata as ``LiveIndex.metadata_raw`` keeps it (the JSON
    text, or the item's dict where it has no text)."""

    def iter_listed_pages(
        self, folder: LiveFolder, *, recursive: bool, children: bool, unchecked: list[bool] | None = None
    ) -> Iterator[list[tuple[str, str, str, str | dict[str, JsonValue]]]]:
        """The pages; with ``unchecked``, a flag per page appended before it is yielded: its metadata texts
        were not decoded, and each owes :meth:`check_listed_text` before it stands for its file."""
        ...

    def check_listed_text(self, uuid: str, text: str) -> None:
        """Raise the listing's error for file ``uuid``'s undecoded metadata text, if it has one."""
        ...


@runtime_checkable
class DigestListingProvider(Protocol):
    """A provider that can list items in pages with their metadata as UTF-8 bytes, and re-read files' metadata
    text by uuid (``Capabilities.digest_listing``): the listing keeps a digest of each text, not the text."""

    def iter_raw_pages(
        self, folder: LiveFolder, *, recursive: bool, children: bool
    ) -> Iterator[tuple[str, list[tuple[str, str, bytes, int]]]]:
        """``(folder_uuid, [(rel_name, uuid, metadata_utf8, rowid), ...])`` pages, in the order of
        ``iter_raw_items`` (the metadata as stored: wire keys; ``rowid`` a hint for :meth:`read_raw_metadata`)."""
        ...

    def read_raw_metadata(self, uuids: Sequence[str], rowids: Sequence[int] = ()) -> Mapping[str, str]:
        """uuid -> the metadata JSON text, for the files that still exist (``rowids``: their listed rowids)."""
        ...


#: The most files one re-read of a digest listing asks for (files compared value by value, in listing order).
REREAD_MAX = 512


@dataclass
class DatasetListing:
    """What a dataset's listing knows beyond a folder's: per ordinal, the data hash and the backing item."""

    hash: str
    title: str
    data_hashes: list[str]
    backing: list[str | None]
    #: Data hashes (lowercase) of the units a sharded listing left to other shards.
    elsewhere: set[str] = field(default_factory=set)

    def ref(self, i: int) -> DatasetRef:
        return DatasetRef(self.hash, self.title, self.data_hashes[i], self.backing[i])

    def ambiguity(self, title: str, ords: Sequence[int]) -> str:
        """The error for a name selector naming a title that the units ``ords`` share."""
        hashes = " and ".join(sorted(self.data_hashes[o] for o in ords))
        return (
            f"name {title!r} matches {len(ords)} data units in dataset {self.title!r} (data hashes {hashes}); "
            "select each by uuid (its data hash) instead"
        )


class UuidColumn(MutableSequence[str]):
    """Listed uuids, in order, as a digest listing keeps them: 36 ASCII characters each in one buffer (36 bytes
    a file, where a ``str`` each and a list of them take about 96). A uuid of another length or not ASCII
    turns it into a plain list."""

    __slots__ = ("_buf", "_list")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._list: list[str] | None = None

    def extend(self, values: Iterable[str]) -> None:
        ids = values if isinstance(values, (list, tuple)) else list(values)
        if self._list is None:
            joined = "".join(ids)
            if len(joined) == 36 * len(ids) and joined.isascii() and set(map(len, ids)) <= {36}:
                self._buf += joined.encode("ascii")
                return
            self._list = [self[i] for i in range(len(self))]
            self._buf = bytearray()
        self._list.extend(ids)

    def append(self, value: str) -> None:
        self.extend((value,))

    def __len__(self) -> int:
        return len(self._list) if self._list is not None else len(self._buf) // 36

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if self._list is not None:
            return self._list[i]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self._buf) // 36
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("uuid index out of range")
        return self._buf[36 * i : 36 * i + 36].decode("ascii")

    def _as_list(self) -> list[str]:
        if self._list is None:
            self._list = [self[i] for i in range(len(self))]
            self._buf = bytearray()
        return self._list

    @overload
    def __setitem__(self, i: int, value: str) -> None: ...
    @overload
    def __setitem__(self, i: slice, value: Iterable[str]) -> None: ...
    def __setitem__(self, i: int | slice, value: str | Iterable[str]) -> None:
        self._as_list()[i] = value  # type: ignore[index,assignment]  # (the overloads above)

    def __delitem__(self, i: int | slice) -> None:
        del self._as_list()[i]

    def insert(self, i: int, value: str) -> None:
        self._as_list().insert(i, value)


class LiveIndex:
    """One folder listing, compact: parallel lists by ordinal, and relative name -> ordinal.

    ``metadata_raw[i]`` is the JSON text of file ``i``'s metadata when the provider lists raw text, else the
    provider's dict; :meth:`metadata` parses on every call, so nothing parsed stays in memory.

    A **digest listing** (a provider with ``Capabilities.digest_listing``: the embedded store) keeps no text:
    ``digests[i]`` is ``hash()`` of file ``i``'s metadata text as UTF-8 (8 bytes a file; a keyed 64-bit
    SipHash, keyed afresh in every process), enough to tell that a source row's metadata is that text byte
    for byte (:meth:`same_text`). The files compared value by value are re-read from the store when asked
    for (:meth:`raw`), a run of files at a time when they are asked for in listing order. Metadata that may
    hold per-frame values is kept decoded in ``decoded``; its digest is -1, which ``hash()`` never gives. A
    source row whose text holds ``null`` (it would remove a key) is never "the same text": the row says so
    (selection looks at the row, not at the live text).
    """

    __slots__ = (
        "_by_name",
        "_by_nfc",
        "_by_uuid",
        "_check",
        "_reread",
        "_rowids",
        "_span",
        "_window",
        "_window_end",
        "ambiguous",
        "by_data_hash",
        "dataset",
        "decoded",
        "digests",
        "elsewhere",
        "folder",
        "folders",
        "keep",
        "metadata_raw",
        "rels",
        "unchecked",
        "uuids",
    )

    def __init__(self, folder: LiveFolder) -> None:
        self.folder = folder
        self.uuids: MutableSequence[str] = []
        self.rels: list[str] = []
        self.metadata_raw: list[str | dict[str, JsonValue]] = []
        self._by_name: dict[str, int] | None = {}
        self.folders: set[str] = set()
        self._by_uuid: dict[str, int] | None = None
        self._by_nfc: dict[str, list[str]] | None = None
        #: Relative names that more than one live file has -> their ordinals (``by_name`` holds the last).
        self.ambiguous: dict[str, list[int]] = {}
        #: A sharded listing (:mod:`reconciler.plan.shard`): which uuids this shard keeps, and the sorted
        #: ``hash()`` of each relative name it left to other shards (8 bytes a file).
        self.keep: Callable[[str], bool] | None = None
        self.elsewhere: array[int] = array("q")
        #: A dataset's listing (reconciler.plan.datasets): ``folder`` is then the dataset, named by its title.
        self.dataset: DatasetListing | None = None
        self.by_data_hash: dict[str, int] = {}
        #: A digest listing: per ordinal the ``hash()`` of the metadata text (-1: see ``decoded``).
        self.digests: array[int] | None = None
        self.decoded: dict[int, dict[str, JsonValue]] = {}
        self._reread: Callable[[Sequence[str], Sequence[int]], Mapping[str, str]] | None = None
        self._rowids: array[int] = array("q")
        self._window: dict[int, str] = {}
        self._window_end = -1
        self._span = 1
        #: A paged listing that left metadata texts undecoded (PagedListingProvider): 1 for each file whose
        #: text still owes the listing's check (``_check``), made before the text is used (:meth:`raw`) or
        #: by :meth:`check_all`; a source row with the same text (decoded as an object) stands for it.
        self.unchecked: bytearray | None = None
        self._check: Callable[[str, str], None] | None = None

    @property
    def by_name(self) -> dict[str, int]:
        """Relative name -> ordinal (the last file of that name; see ``ambiguous``). A digest listing whose
        names came strictly increasing (so no two are the same) makes it only when it is first asked for:
        selection mostly finds a source row's file as the one after the last row's (:meth:`ordinal_of_name`)."""
        got = self._by_name
        if got is None:
            got = self._by_name = dict(zip(self.rels, range(len(self.rels)), strict=True))
        return got

    def ordinal_of_name(self, name: str, expected: int) -> int | None:
        """``by_name.get(name)``, asking first whether it is file ``expected`` (the one after the last row's: a
        source written in listing order names them one after another). Only for a listing in which no name is
        shared (``ambiguous``)."""
        rels = self.rels
        if 0 <= expected < len(rels) and rels[expected] == name:
            return expected
        return self.by_name.get(name)

    def is_elsewhere(self, rel: str) -> bool:
        """Whether a file of this name was listed and left to another shard."""
        e = self.elsewhere
        h = hash(rel)
        j = bisect.bisect_left(e, h)
        return j < len(e) and e[j] == h

    @property
    def where(self) -> str:
        """How messages name the listing: ``folder 'a/b'`` or ``dataset 'title'``."""
        kind = "dataset" if self.dataset is not None else "folder"
        return f"{kind} {self.folder.path!r}"

    def __len__(self) -> int:
        return len(self.uuids)

    def ordinal_of_uuid(self, uuid: str) -> int | None:
        if self.dataset is not None:  # a dataset's uuid selectors name data hashes
            return self.by_data_hash.get(uuid.lower())
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

    def same_text(self, i: int, text: bytes) -> bool:
        """Whether file ``i``'s metadata JSON text is ``text`` (UTF-8) byte for byte (a digest listing: their
        digests are equal; a digest listing never says so of a text holding ``null``, whose row would remove
        a key, nor of metadata kept decoded)."""
        digests = self.digests
        if digests is not None:
            return digests[i] == hash(text) and b"null" not in text
        raw = self.metadata_raw[i]
        if type(raw) is str and raw == text.decode():
            if self.unchecked is not None:
                self.unchecked[i] = 0  # (a row's metadata text is a JSON object: a decoder accepted it)
            return True
        return False

    def check(self, i: int) -> None:
        """The listing's check of file ``i``'s metadata text, if it still owes it (see ``unchecked``)."""
        unchecked = self.unchecked
        if unchecked is not None and unchecked[i]:
            raw = self.metadata_raw[i]
            if type(raw) is str:
                assert self._check is not None
                self._check(self.uuids[i], raw)
            unchecked[i] = 0

    def check_all(self) -> None:
        """:meth:`check` every file that still owes it, in listing order (the first error is raised)."""
        unchecked = self.unchecked
        if unchecked is not None:
            i = unchecked.find(1)
            while i >= 0:
                self.check(i)
                i = unchecked.find(1, i + 1)

    def raw(self, i: int) -> str | dict[str, JsonValue]:
        """File ``i``'s metadata as listed: its JSON text, or the provider's dict (see ``metadata_raw``). A digest
        listing re-reads the text from the store: when files are asked for in listing order, one re-read
        takes the next files too (twice as many each time, up to :data:`REREAD_MAX`).

        Raises ProviderConflictError when the file is no longer in the store."""
        if self.digests is None:
            if self.unchecked is not None and self.unchecked[i]:
                self.check(i)
            return self.metadata_raw[i]
        got = self.decoded.get(i)
        if got is not None:
            return got
        text = self._window.get(i)
        if text is None:
            assert self._reread is not None
            self._span = min(self._span * 2, REREAD_MAX) if i == self._window_end else 1
            stop = min(i + self._span, len(self.uuids))
            wanted = self.uuids[i:stop]
            texts = self._reread(wanted, self._rowids[i:stop])
            self._window = {o: texts[u] for o, u in enumerate(wanted, i) if u in texts}
            self._window_end = stop
            text = self._window.get(i)
            if text is None:
                raise ProviderConflictError(
                    f"file {self.uuids[i]} ({self.folder.path}/{self.rels[i]}) was removed while the plan was "
                    "being made; run the plan again"
                )
        return raw_to_keys(text)

    def reread_ahead(self, ordinals: Sequence[int]) -> None:
        """A digest listing: re-read the texts of files ``ordinals`` (about to be asked for with :meth:`raw`, in
        this order) from the store at once. A file no longer there is left to :meth:`raw` to report."""
        if self.digests is None or self._reread is None or not ordinals:
            return
        wanted = [o for o in ordinals if o not in self.decoded]
        uuids = [self.uuids[o] for o in wanted]
        texts = self._reread(uuids, [self._rowids[o] for o in wanted])
        self._window = {o: texts[u] for o, u in zip(wanted, uuids, strict=True) if u in texts}
        self._window_end = -1

    def text_digests(self) -> array[int]:
        """A text listing's digests, as a digest listing keeps them: per ordinal the ``hash()`` of the UTF-8
        bytes of the live metadata text (a source row's digest is that of its bytes), -1 for a file whose
        metadata is not a text (``hash()`` of bytes is never -1)."""
        return array(
            "q",
            [hash(t.encode("utf-8", "surrogatepass")) if type(t) is str else -1 for t in self.metadata_raw],
        )

    def metadata(self, i: int) -> dict[str, JsonValue]:
        """File ``i``'s live metadata (a fresh dict for JSON text; the provider's dict otherwise)."""
        raw = self.raw(i)
        if type(raw) is not str:
            assert isinstance(raw, dict)
            return raw
        if not raw.strip():
            return {}
        value = try_loads(raw)
        if value is not UNDECIDED and type(value) is dict:
            return value
        try:
            value = _decode(raw.strip())[0]
        except ValueError as exc:
            raise ProviderResponseError(f"file {self.uuids[i]}: its live metadata is not valid JSON") from exc
        if type(value) is not dict:
            raise ProviderResponseError(f"file {self.uuids[i]}: its live metadata is not a JSON object")
        return value


def read_index(
    provider: StateProvider,
    folder: LiveFolder,
    *,
    recursive: bool,
    children: bool,
    on_progress: Progress,
    keep: Callable[[str], bool] | None = None,
    digests: bool = True,
) -> LiveIndex:
    """List a folder into a :class:`LiveIndex`, reporting progress every :data:`PROGRESS_EVERY` files.

    With ``keep`` (a shard), only the files whose uuid it accepts are kept; the others leave their name's
    hash in :attr:`LiveIndex.elsewhere`. ``digests``: a digest listing where the provider can make one
    (else the texts are kept).
    """
    index = LiveIndex(folder)
    index.keep = keep
    elsewhere = index.elsewhere
    uuids, rels, raws, by_name = index.uuids, index.rels, index.metadata_raw, index.by_name
    stage = reading(folder.path)
    on_progress(stage, 0, None)
    n = 0
    next_report = PROGRESS_EVERY
    folders = index.folders
    if digests and provider.capabilities.digest_listing:
        n = _read_digests(cast(DigestListingProvider, provider), index, recursive, children, on_progress)
    elif provider.capabilities.raw_listing:
        last_folder = None
        for rel, uuid, item_folder, raw in cast(RawListingProvider, provider).iter_raw_items(
            folder, recursive=recursive, children=children
        ):
            if item_folder != last_folder:
                folders.add(item_folder)
                last_folder = item_folder
            if keep is not None and not keep(uuid):
                elsewhere.append(hash(rel))
                continue
            by_name[rel] = n
            uuids.append(uuid)
            rels.append(rel)
            raws.append(raw)
            n += 1
            if n >= next_report:
                on_progress(stage, n, None)
                next_report += PROGRESS_EVERY
    elif provider.capabilities.paged_listing:
        paged = cast(PagedListingProvider, provider)
        # Page by page, column by column: no Python work per file but for a shard's choice. Metadata texts
        # are decoded only where the plan needs them (LiveIndex.unchecked): a file whose source row has the
        # same text is vouched for by the row's decoding; the rest are checked after planning.
        flags: list[bool] = []
        check = paged.check_listed_text
        index._check = check
        unchecked = index.unchecked = bytearray()
        try:
            for page in paged.iter_listed_pages(
                folder, recursive=recursive, children=children, unchecked=flags
            ):
                owed = flags[-1]
                folders.update([row[2] for row in page])
                if keep is not None:
                    kept = []
                    for row in page:
                        if keep(row[1]):
                            kept.append(row)
                        else:
                            elsewhere.append(hash(row[0]))
                            if owed and type(row[3]) is str:
                                check(row[1], row[3])  # (no other check of it in this shard)
                    page = kept
                if not page:
                    continue
                names, ids, _, mds = zip(*page, strict=True)
                by_name.update(zip(names, range(n, n + len(names)), strict=True))
                uuids.extend(ids)
                rels.extend(names)
                raws.extend(mds)
                unchecked.extend((b"\x01" if owed else b"\x00") * len(names))
                n += len(names)
                while n >= next_report:  # (the reports the file-by-file reading makes)
                    on_progress(stage, next_report, None)
                    next_report += PROGRESS_EVERY
        except ProviderError:
            index.check_all()  # an earlier page's error comes first, as it would have
            raise
    else:
        for li in provider.iter_items(folder, recursive=recursive, children=children):
            item = li.item
            folders.add(item.folder)
            if keep is not None and not keep(item.uuid):
                elsewhere.append(hash(li.rel_name))
                continue
            by_name[li.rel_name] = n
            uuids.append(item.uuid)
            rels.append(li.rel_name)
            raws.append(item.metadata if item.metadata_text is None else item.metadata_text)
            n += 1
            if n >= next_report:
                on_progress(stage, n, None)
                next_report += PROGRESS_EVERY
    folders.add(folder.uuid)
    if index._by_name is not None and len(index._by_name) < n:  # some relative name is shared (rare: found
        # after the listing, not per file; a digest listing in strictly increasing order has none)
        seen: dict[str, list[int]] = {}
        for i, rel in enumerate(rels):
            seen.setdefault(rel, []).append(i)
        index.ambiguous = {rel: ords for rel, ords in seen.items() if len(ords) > 1}
    if elsewhere:
        index.elsewhere = array("q", sorted(elsewhere))
        # A name this shard keeps that another shard's file shares is ambiguous here too.
        for rel, i in by_name.items():
            if rel not in index.ambiguous and index.is_elsewhere(rel):
                index.ambiguous[rel] = [i]
    on_progress(stage, n, n)
    return index


def _read_digests(
    provider: DigestListingProvider,
    index: LiveIndex,
    recursive: bool,
    children: bool,
    on_progress: Progress,
) -> int:
    """:func:`read_index` of a digest listing (see :class:`LiveIndex`). Returns the number of files kept.

    A page of rows is taken apart column by column (no Python work per row) unless a shard keeps only some
    of its files, or a text in it may hold per-frame values (then those are decoded one by one).
    """
    keep, elsewhere = index.keep, index.elsewhere
    index.uuids = UuidColumn()  # (36 bytes a file)
    uuids, rels, by_name, folders, decoded = (
        index.uuids,
        index.rels,
        index.by_name,
        index.folders,
        index.decoded,
    )
    digests = index.digests = array("q")
    index._reread = provider.read_raw_metadata
    stage = reading(index.folder.path)
    n = 0
    next_report = PROGRESS_EVERY
    # Names that come strictly increasing (one folder, listed by name: the usual case) are all different:
    # then ``by_name`` is made only if it is asked for (LiveIndex.by_name), 70 bytes a file spared.
    ordered = keep is None
    last: str | None = None
    for item_folder, page in provider.iter_raw_pages(index.folder, recursive=recursive, children=children):
        folders.add(item_folder)
        if keep is not None:
            kept = []
            for row in page:
                if keep(row[1]):
                    kept.append(row)
                else:
                    elsewhere.append(hash(row[0]))
            if not kept:
                continue
            page = kept
        names, ids, blobs, rowids = zip(*page, strict=True)
        if ordered and (
            (last is not None and not last < names[0]) or not all(map(operator.lt, names, names[1:]))
        ):
            ordered = False
            by_name.update(zip(rels, range(n), strict=True))  # (the names so far)
        if ordered:
            last = names[-1]
        else:
            by_name.update(zip(names, range(n, n + len(names)), strict=True))
        rels.extend(names)
        uuids.extend(ids)
        index._rowids.extend(rowids)
        digests.extend(map(hash, blobs))
        # Whole pages at once, with one byte searched for (memchr), then file by file where it occurs:
        joined = b"\x00".join(blobs)  # (no JSON text holds a NUL byte as it is)
        if b"$" in joined or b"\\" in joined:  # may hold per-frame values (frames.may_hold_frames)?
            for j, blob in enumerate(blobs):
                if (_ROOT in blob or b"\\u" in blob) and _decoded(blob, ids[j], decoded, n + j):
                    digests[n + j] = -1  # never a hash(): such a file is always compared value by value
        n += len(names)
        if n >= next_report:
            on_progress(stage, n, None)
            next_report = n - n % PROGRESS_EVERY + PROGRESS_EVERY
    if ordered:
        index._by_name = None
    return n


_ROOT = WIRE_ROOT.encode()


def _decoded(blob: bytes, uuid: str, decoded: dict[int, dict[str, JsonValue]], n: int) -> bool:
    """Keep file ``n``'s metadata decoded (as engine keys) when it holds per-frame values; whether it does."""
    try:
        value = raw_to_keys(blob.decode())
    except UnicodeDecodeError:
        raise ProviderResponseError(f"file {uuid}: its stored metadata is not valid UTF-8") from None
    if type(value) is not dict:
        return False
    decoded[n] = value
    return True


#: Source rows read ahead while a folder is listed over the network (about 3 kB each in memory).
READ_AHEAD_ROWS = 20_000


def read_index_and_source(
    provider: StateProvider,
    folder: LiveFolder,
    m: FileManifest,
    root: Path,
    spec_map: Mapping[str, FieldSpec],
    errors: list[Diagnostic],
    on_progress: Progress,
    keep: Callable[[str], bool] | None = None,
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
                read_index(
                    provider, folder, recursive=m.recursive, children=m.children, on_progress=count, keep=keep
                )
            )
        except BaseException as exc:  # handed to the planning thread, which raises it
            failed.append(exc)

    stage = reading(folder.path)
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
