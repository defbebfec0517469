"""``EncordProvider``: live state read from and written to Encord's v2 public API (schema, folders, items).

Request shapes follow the Encord SDK 0.1.211 (encord-api.md §3-§5); request counts are the minimum the API
allows (pages of 1000, bulk reads and writes of 1000). Safe to call from several threads at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid as uuid_mod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from reconciler.errors import (
    ProviderAuthError,
    ProviderConflictError,
    ProviderError,
    ProviderResponseError,
)
from reconciler.frames import to_keys, to_wire
from reconciler.jsoncodec import try_loads
from reconciler.model import LiveDataset, LiveFolder, LiveItem
from reconciler.providers.base import CallStats, Capabilities, ListedItem, ProviderIdentity
from reconciler.providers.encord.auth import auth_from_env
from reconciler.providers.encord.client import (
    DEFAULT_DOMAIN,
    PAGE_TOKEN,
    EncodedBody,
    EncordClient,
    PayloadTooLargeError,
    QueryParams,
    RetryPolicy,
    normalize_domain,
    retry_policy_from_env,
)
from reconciler.providers.encord.wire import (
    PlainRow,
    WireItem,
    check_listed_text,
    parse_metadata,
    plain_rows,
    read_dataset,
    read_folder,
    read_item,
    read_path_to_root,
    read_results,
    read_schema,
    read_written_row,
)

if TYPE_CHECKING:
    import httpx

    from reconciler.schema import WireSchema
    from reconciler.types import JsonValue

__all__ = ["GROUP_ITEM_TYPES", "PATCH_MAX_BYTES", "EncordProvider", "encord_provider_from_config"]

logger = logging.getLogger(__name__)

#: Item types whose files are child items (fetched with ``child-items``).
GROUP_ITEM_TYPES: Final = frozenset({"imageGroup", "imageSequence", "dicomSeries", "group"})

PAGE_SIZE: Final = 1000
BULK_LIMIT: Final = 1000  # STORAGE_BUNDLE_CREATE_LIMIT in the SDK
#: Largest patch-bulk body sent (bytes of JSON): a request is split by size as well as by count. 1000 files
#: with a 4096-d embedding each are ~85 MB (about 200 fit in one request). Encord's own limit is unconfirmed;
#: a 413 answer halves the request again, down to single files.
PATCH_MAX_BYTES: Final = 16 * 1024 * 1024
#: JSON bytes of one ``"<uuid>": {"clientMetadata": ...}, `` entry beyond the metadata itself.
_PATCH_ENTRY_OVERHEAD: Final = 64

#: ``json.dumps(value, allow_nan=False)``, the SDK's request bytes (one encoder, not one per call).
_sdk_json: Final = json.JSONEncoder(allow_nan=False).encode

_SCHEMA_ROUTE: Final = "organisation/client-metadata-schema-v2"
_TOP_FOLDERS: Final = "storage/folders"
_FOLDER: Final = "storage/folders/{uuid}"
_SUBFOLDERS: Final = "storage/folders/{uuid}/folders"
_ITEMS: Final = "storage/folders/{uuid}/items"
_CHILD_ITEMS: Final = "storage/folders/{uuid}/items/{uuid}/child-items"
_GET_BULK: Final = "storage/items/get-bulk"
_PATCH_BULK: Final = "storage/items/patch-bulk"


def _folder_params(*, search: str | None = None, recursive: bool = False) -> QueryParams:
    """``ListFoldersParams`` in the SDK's wire order."""
    params: list[tuple[str, str | int | bool]] = [("search", search)] if search is not None else []
    params += [
        ("isRecursive", recursive),
        ("order", "name"),
        ("desc", False),
        (PAGE_TOKEN, ""),
        ("pageSize", PAGE_SIZE),
    ]
    return params


def _item_params(*, recursive: bool) -> QueryParams:
    """``ListItemsParams`` in the SDK's wire order, as ``StorageFolder.list_items`` sends them."""
    return [
        ("isRecursive", recursive),
        ("order", "name"),
        ("desc", False),
        (PAGE_TOKEN, ""),
        ("pageSize", PAGE_SIZE),
        ("signUrls", False),
        ("includeClientMetadata", True),
        ("clientMetadataAsSignedUrl", False),
    ]


#: A UUID already in its canonical form (``str(uuid.UUID(x)) == x``): most are, and need no parsing.
_CANONICAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _canonical(ref: str) -> str | None:
    """``str(uuid.UUID(ref))``, or ``None`` when ``ref`` is not a UUID."""
    if _CANONICAL_UUID.fullmatch(ref):
        return ref
    try:
        return str(uuid_mod.UUID(ref))
    except ValueError:
        return None


def _is_uuid(ref: str) -> bool:
    return _canonical(ref) is not None


def _chunks(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


@contextlib.contextmanager
def _answer_of(request: str) -> Iterator[None]:
    """Name the request whose answer had an unusable part (errors from parsing it do not say which)."""
    try:
        yield
    except ProviderResponseError as exc:
        if str(exc).startswith(("GET ", "POST ", "PATCH ")):
            raise
        raise ProviderResponseError(f"{request}: {exc}") from exc


class _ListedOnce:
    """The files one listing has given so far: a file it gives again (pages that overlap, a server repeating an
    item) is refused, so that nothing is planned, or written, twice from one listing."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def check(self, uuids: Sequence[str]) -> None:
        """Raises ProviderResponseError if one of ``uuids`` (a page's) was given before, or twice here."""
        seen = self._seen
        fresh = set(uuids)
        if len(fresh) == len(uuids) and seen.isdisjoint(fresh):
            seen |= fresh
            return
        here: set[str] = set()
        repeated = ""
        for repeated in uuids:  # (the first one given again, for the message)
            if repeated in seen or repeated in here:
                break
            here.add(repeated)
        raise ProviderResponseError(
            f"GET {_ITEMS}: Encord listed file {repeated} twice in one listing; nothing is planned from a "
            "listing that repeats a file (run the command again)"
        )


def _relative_paths(records: Sequence[tuple[str, str | None, str]], root: str | None) -> dict[str, str]:
    """uuid -> path relative to ``root`` (``None``: from the top level) for folders below it.

    Raises:
        ProviderResponseError: a folder whose parent chain does not lead to ``root``.
    """
    by_uuid = {u: (p, n) for u, p, n in records}
    out: dict[str, str] = {}
    for start in by_uuid:
        chain: list[str] = []
        cur: str | None = start
        while cur is not None and cur != root and cur not in out:
            if cur not in by_uuid or len(chain) > len(by_uuid):
                raise ProviderResponseError(
                    f"folder {start}: its parent chain does not lead to {root or 'the top level'}"
                )
            chain.append(cur)
            cur = by_uuid[cur][0]
        prefix = out[cur] if cur is not None and cur in out else ""
        for u in reversed(chain):
            prefix = f"{prefix}/{by_uuid[u][1]}" if prefix else by_uuid[u][1]
            out[u] = prefix
    return out


class EncordProvider:
    """Live state on Encord (or the emulator) through the v2 public API.

    ``domain`` is the API origin (``https://api.encord.com``; ``http://`` only for loopback hosts unless
    ``allow_insecure_http``). ``parallelism`` sizes the connection pool and the worker threads used for
    child-item listings and bulk reads. ``retry`` and ``transport`` are for tests.
    """

    capabilities = Capabilities(
        max_batch=BULK_LIMIT, parallel_writes=True, parallel_reads=True, paged_listing=True
    )

    def __init__(
        self,
        domain: str,
        auth: httpx.Auth,
        *,
        parallelism: int = 4,
        allow_insecure_http: bool = False,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.stats = CallStats()
        self._parallelism = max(1, parallelism)
        self._client = EncordClient(
            domain,
            auth,
            parallelism=self._parallelism,
            allow_insecure_http=allow_insecure_http,
            retry=retry,
            transport=transport,
            stats=self.stats,
        )
        self.identity = ProviderIdentity("encord", self._client.domain)

    def __repr__(self) -> str:
        return f"EncordProvider({self._client.domain!r})"

    def __enter__(self) -> EncordProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # -- schema -----------------------------------------------------------------------------------------------

    def read_schema(self) -> WireSchema:
        """``GET organisation/client-metadata-schema-v2``; null or 204 mean no schema (``{}``)."""
        return read_schema(self._client.call("GET", _SCHEMA_ROUTE), f"GET {_SCHEMA_ROUTE}")

    def write_schema(self, schema: Mapping[str, Mapping[str, Any]]) -> None:
        """``POST organisation/client-metadata-schema-v2`` with the complete map (Encord takes no diffs)."""
        self._client.call("POST", _SCHEMA_ROUTE, body={k: dict(v) for k, v in schema.items()}, write=True)

    # -- folders ----------------------------------------------------------------------------------------------

    def _list(self, route: str, *args: str, params: QueryParams) -> list[Any]:
        return [raw for page in self._client.pages(route, *args, params=params) for raw in page]

    def list_folders(self) -> list[LiveFolder]:
        """Every folder: the top level, then each top folder's subfolders (recursive listings, in parallel)."""
        with _answer_of(f"GET {_TOP_FOLDERS}"):
            tops = [read_folder(raw) for raw in self._list(_TOP_FOLDERS, params=_folder_params())]
        records: list[tuple[str, str | None, str]] = [(u, None, n) for u, _, n in tops]
        with ThreadPoolExecutor(max_workers=self._parallelism) as pool:
            listings = pool.map(
                lambda top: self._list(_SUBFOLDERS, top, params=_folder_params(recursive=True)),
                [u for u, _, _ in tops],
            )
            for listing in listings:
                with _answer_of(f"GET {_SUBFOLDERS}"):
                    records.extend(read_folder(raw) for raw in listing)
        paths = _relative_paths(records, None)
        folders = [LiveFolder(u, p, n, paths[u]) for u, p, n in records]
        return sorted(folders, key=lambda f: (f.path, f.uuid))

    def resolve_folder(self, ref: str) -> LiveFolder:
        """A folder by UUID (one GET) or by path ``a/b/c`` (one name search per level).

        Raises:
            ProviderConflictError: no such folder, no access to it, or a path that names several folders.
        """
        ref = ref.strip()
        if _is_uuid(ref):
            return self._folder_by_uuid(ref)
        names = ref.strip("/").split("/")
        if not ref.strip("/") or any(not n for n in names):
            raise ProviderConflictError(f"invalid folder path {ref!r}")
        parent: str | None = None
        grandparent: str | None = None
        for depth, name in enumerate(names):
            where = "at the top level" if parent is None else f"in {'/'.join(names[:depth])!r}"
            if parent is None:
                listing = self._list(_TOP_FOLDERS, params=_folder_params(search=name))
            else:
                listing = self._list(_SUBFOLDERS, parent, params=_folder_params(search=name))
            # The server's search is a loose match: keep exact names only.
            with _answer_of(f"GET {_TOP_FOLDERS if parent is None else _SUBFOLDERS}"):
                found = [rec for rec in map(read_folder, listing) if rec[2] == name]
            if not found:
                raise ProviderConflictError(f"no folder {ref!r}: there is no folder named {name!r} {where}")
            if len(found) > 1:
                uuids = ", ".join(sorted(u for u, _, _ in found))
                raise ProviderConflictError(
                    f"folder path {ref!r} is ambiguous: {len(found)} folders are named {name!r} {where} "
                    f"({uuids}); use the folder UUID instead"
                )
            child = found[0][0]
            if parent is not None and found[0][1] not in (None, parent):
                raise ProviderResponseError(
                    f"folder {child} was listed under {parent} but its parent differs"
                )
            grandparent, parent = parent, child
        assert parent is not None
        return LiveFolder(parent, grandparent, names[-1], "/".join(names))

    def _folder_raw(self, uuid: str) -> tuple[str, str | None, str, dict[str, tuple[str | None, str]]]:
        try:
            raw = self._client.call("GET", _FOLDER, uuid)
        except ProviderConflictError as exc:
            raise ProviderConflictError(f"no folder with UUID {uuid} (or no access to it)") from exc
        with _answer_of(f"GET {_FOLDER}"):
            u, parent, name = read_folder(raw)
        return u, parent, name, read_path_to_root(raw)

    def _folder_by_uuid(self, ref: str) -> LiveFolder:
        uuid, parent, name, known = self._folder_raw(ref)
        names = [name]
        cur = parent
        while cur is not None:
            if len(names) > 1000:
                raise ProviderResponseError(f"folder {uuid}: its parents form a cycle")
            if cur not in known:
                # pathToRoot did not cover this ancestor: ask for it.
                u, up, n, _ = self._folder_raw(cur)
                known[u] = (up, n)
            cur_parent, cur_name = known[cur]
            names.append(cur_name)
            cur = cur_parent
        return LiveFolder(uuid, parent, name, "/".join(reversed(names)))

    # -- items ------------------------------------------------------------------------------------------------

    def iter_items(self, folder: LiveFolder, *, recursive: bool, children: bool) -> Iterator[ListedItem]:
        """Items of ``folder`` (pages of 1000), named relative to it; child items follow their group.

        Recursive listings list the subfolders (one recursive folder listing, to name items ``sub/dir/name``)
        and then each folder's own items with the plain listing ``StorageFolder.list_items`` makes (in
        parallel): the SDK refuses ``isRecursive=True`` item listings without ``search`` or ``itemTypes``, so a
        server may as well. With ``children``, the child items of image groups, image sequences, DICOM series
        and groups are fetched in parallel and yielded right after their group as ``GROUP/CHILD``; an item that
        the folder listing shows as well as a child of a group is yielded once, as the child.
        """
        sub_paths: dict[str, str] = {folder.uuid: ""}
        if recursive:
            with _answer_of(f"GET {_SUBFOLDERS}"):
                records = [
                    read_folder(raw)
                    for raw in self._list(_SUBFOLDERS, folder.uuid, params=_folder_params(recursive=True))
                ]
            sub_paths.update(_relative_paths(records, folder.uuid))
        listed = self._listed(folder, sub_paths)
        if not children:
            for rel_name, item in listed:
                yield ListedItem(rel_name, item)
            return
        # A child that the folder listing shows as well must be known before anything is yielded.
        everything = list(listed)
        groups = [item for _, item in everything if item.item_type in GROUP_ITEM_TYPES]
        kids: dict[str, list[LiveItem]] = {}
        if groups:
            with ThreadPoolExecutor(max_workers=self._parallelism) as pool:
                kids = dict(zip((g.uuid for g in groups), pool.map(self._child_items, groups), strict=True))
        child_ids = {c.uuid for cs in kids.values() for c in cs}
        for rel_name, item in everything:
            if item.uuid in child_ids:
                continue
            yield ListedItem(rel_name, item)
            for child in kids.get(item.uuid, ()):
                yield ListedItem(f"{rel_name}/{child.name}", child)

    def iter_listed_pages(
        self, folder: LiveFolder, *, recursive: bool, children: bool, unchecked: list[bool] | None = None
    ) -> Iterator[list[PlainRow]]:
        """:meth:`iter_items` in pages, each file as ``(rel_name, uuid, folder uuid, metadata)`` (the server's
        text, or the item's dict where it came without text: ``LiveIndex.metadata_raw``). A page of a plain
        listing whose items all take the fast path (:func:`plain_rows`) makes no item object.

        With ``unchecked``, each page's flag is appended to it before the page is yielded: true when the
        page's metadata texts were not decoded, so that the caller owes each of them
        :meth:`check_listed_text` (or a decoder's verdict on the same text) before it stands for the file."""
        if recursive or children:
            rows: list[PlainRow] = []
            for li in self.iter_items(folder, recursive=recursive, children=children):
                it = li.item
                text = it.metadata_text
                rows.append((li.rel_name, it.uuid, it.folder, it.metadata if text is None else text))
                if len(rows) >= 1000:
                    if unchecked is not None:
                        unchecked.append(False)
                    yield rows
                    rows = []
            if rows:
                if unchecked is not None:
                    unchecked.append(False)
                yield rows
            return
        sub_paths = {folder.uuid: ""}
        # Texts left undecoded need no page to vouch for their strings (a search of every page for \u):
        # each text's own may_hold_frames() test is all that plain_rows() then asks of it.
        plain: list[bool] | None = [] if unchecked is None else None
        once = _ListedOnce()
        for page in self._client.pages(
            _ITEMS, folder.uuid, params=_item_params(recursive=False), plain_strings=plain
        ):
            with _answer_of(f"GET {_ITEMS}"):
                checked = plain[-1] if plain is not None else False
                fast = plain_rows(page, folder.uuid, checked, decode_texts=unchecked is None)
                if fast is not None:
                    once.check([row[1] for row in fast])
                    if unchecked is not None:
                        unchecked.append(True)
                    yield fast
                    continue
                items = self._resolved([read_item(raw, plain_strings=checked) for raw in page])
                once.check([item.uuid for item in items])
            if unchecked is not None:
                unchecked.append(False)
            yield [
                (rel, it.uuid, it.folder, it.metadata if it.metadata_text is None else it.metadata_text)
                for rel, it in self._named(folder, sub_paths, items)
            ]

    @staticmethod
    def check_listed_text(uuid: str, text: str) -> None:
        """What reading file ``uuid`` of a listing makes of its metadata text that :meth:`iter_listed_pages`
        left undecoded: nothing, or the listing's error (``GET storage/folders/{uuid}/items: item ...``)."""
        if type(try_loads(text)) is not dict:  # (its first look, without the context manager's cost)
            with _answer_of(f"GET {_ITEMS}"):
                check_listed_text(uuid, text)

    def _listed(self, root: LiveFolder, sub_paths: dict[str, str]) -> Iterator[tuple[str, LiveItem]]:
        """(relative name, item) for the top-level items of every folder in ``sub_paths``, in path order."""
        order = sorted(sub_paths, key=lambda u: (sub_paths[u], u))
        if len(order) == 1:
            pages: Iterator[list[LiveItem]] = self._item_pages(order[0])
        else:
            pool = ThreadPoolExecutor(max_workers=self._parallelism)
            try:
                listings = pool.map(lambda u: [i for page in self._item_pages(u) for i in page], order)
                pages = iter(list(listings))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        once = _ListedOnce()
        for page in pages:
            once.check([item.uuid for item in page])
            yield from self._named(root, sub_paths, page)

    def _named(
        self, root: LiveFolder, sub_paths: dict[str, str], items: Iterable[LiveItem]
    ) -> Iterator[tuple[str, LiveItem]]:
        """(relative name, item) for ``items`` of folders below ``root`` (``sub_paths`` learns their paths)."""
        for item in items:
            prefix = sub_paths.get(item.folder)
            if prefix is None:
                prefix = self._relative_folder_path(root, item.folder)
                sub_paths[item.folder] = prefix
            yield (f"{prefix}/{item.name}" if prefix else item.name), item

    def _item_pages(self, folder_uuid: str) -> Iterator[list[LiveItem]]:
        plain: list[bool] = []
        for page in self._client.pages(
            _ITEMS, folder_uuid, params=_item_params(recursive=False), plain_strings=plain
        ):
            with _answer_of(f"GET {_ITEMS}"):
                checked = plain[-1]
                wires = [read_item(raw, plain_strings=checked) for raw in page]
                yield self._resolved(wires)

    def _resolved(self, wires: Sequence[WireItem]) -> list[LiveItem]:
        """The items, with metadata the server sent as ``clientMetadataSignedUrl`` fetched (in parallel)."""
        pending = [w for w in wires if w.metadata_url is not None]
        if len(pending) == 1:
            pending[0].item.metadata = self._signed_metadata(pending[0])
        elif pending:
            with ThreadPoolExecutor(max_workers=self._parallelism) as pool:
                for w, md in zip(pending, pool.map(self._signed_metadata, pending), strict=True):
                    w.item.metadata = md
        return [w.item for w in wires]

    def _signed_metadata(self, wire: WireItem) -> dict[str, JsonValue]:
        assert wire.metadata_url is not None
        uuid = wire.item.uuid
        data = self._client.fetch_signed_json(wire.metadata_url, f"item {uuid}: clientMetadataSignedUrl")
        return to_keys(parse_metadata(data, uuid))

    def _relative_folder_path(self, root: LiveFolder, uuid: str) -> str:
        """The path of folder ``uuid`` relative to ``root`` (for an item in a folder the listing missed)."""
        full = self._folder_by_uuid(uuid)
        if root.path and not full.path.startswith(root.path + "/"):
            raise ProviderResponseError(
                f"GET {_ITEMS}: item in folder {uuid}, which is not below {root.path!r}"
            )
        return full.path[len(root.path) + 1 :] if root.path else full.path

    def _child_items(self, group: LiveItem) -> list[LiveItem]:
        listing = self._list(
            _CHILD_ITEMS, group.folder, group.uuid, params=[("signUrls", False), (PAGE_TOKEN, "")]
        )
        with _answer_of(f"GET {_CHILD_ITEMS}"):
            return self._resolved(
                [read_item(raw, parent_item=group.uuid, folder=group.folder) for raw in listing]
            )

    def get_items(self, uuids: Sequence[str]) -> dict[str, LiveItem]:
        """Fresh copies by uuid (``POST storage/items/get-bulk``, 1000 per request, chunks in parallel).

        A 403 on a chunk means some item is gone or inaccessible: the chunk is split in halves until the
        missing items are isolated, and they are left out of the result. A 200 answer that leaves requested
        items out is asked again for those; left out twice, it is an error naming them (a missing item would
        have been a 403, so the answer is incomplete, not a sign the files are gone). ``parent_item`` is not
        known here (the API does not say) and is ``None``; keys are the uuids as given.

        Raises:
            ProviderResponseError: an answer without some requested items, twice in a row.
        """
        given: dict[str, str] = {}
        for u in uuids:
            canon = _canonical(u)
            if canon is not None:
                given.setdefault(canon, u)
        wanted = list(given)
        chunks = _chunks(wanted, BULK_LIMIT)
        found: dict[str, LiveItem] = {}
        if len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=self._parallelism) as pool:
                for part in pool.map(self._get_bulk, chunks):
                    found.update(part)
        elif chunks:
            found.update(self._get_bulk(chunks[0]))
        return {given[u]: found[u] for u in wanted if u in found}

    def _get_bulk(self, chunk: Sequence[str], *, again: bool = True) -> dict[str, LiveItem]:
        try:
            plain: list[bool] = []
            data = self._client.call(
                "POST", _GET_BULK, body={"itemUuids": list(chunk), "signUrls": False}, plain_strings=plain
            )
        except ProviderConflictError:
            if len(chunk) == 1:
                logger.debug("item %s no longer exists (or is not accessible)", chunk[0])
                return {}
            mid = len(chunk) // 2
            return {**self._get_bulk(chunk[:mid]), **self._get_bulk(chunk[mid:])}
        request = f"POST {_GET_BULK}"
        with _answer_of(request):
            checked = bool(plain and plain[0])
            results = read_results(data, request)
            for raw in results:
                # A write starts from this dict: an item without its metadata text would read as {} and the
                # write would drop every key no manifest owns (the SDK's StorageItem requires the text too).
                text = raw.get("clientMetadata") if isinstance(raw, dict) else None
                signed = isinstance(raw, dict) and bool(raw.get("clientMetadataSignedUrl"))
                if not signed and (not isinstance(text, str) or not text):
                    uuid = raw.get("uuid") if isinstance(raw, dict) else None
                    raise ProviderResponseError(
                        f"{request}: Encord answered item {uuid!r} without its clientMetadata text "
                        f"({'missing' if not isinstance(raw, dict) or 'clientMetadata' not in raw else repr(text)}); "
                        "its metadata is unknown, so nothing is concluded from this answer"
                    )
            items = self._resolved([read_item(raw, plain_strings=checked) for raw in results])
        requested = set(chunk)
        found: dict[str, LiveItem] = {}
        for item in items:
            if item.uuid not in requested:
                continue
            if item.uuid in found:
                # Two copies of one file: which one is live cannot be told, and a write would start from one.
                raise ProviderResponseError(
                    f"{request}: Encord answered item {item.uuid} twice; an inconsistent answer, so nothing is "
                    "concluded from it"
                )
            found[item.uuid] = item
        missing = [u for u in chunk if u not in found]
        if missing and again:
            found.update(self._get_bulk(missing, again=False))
        elif missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ProviderResponseError(
                f"{request}: Encord answered 200 without {len(missing)} of the {len(chunk)} requested file(s), "
                f"twice ({shown}); an incomplete answer, so nothing was concluded about them"
            )
        return found

    def patch_items(self, patches: Mapping[str, Mapping[str, JsonValue]]) -> dict[str, str | None]:
        """Replace each item's whole metadata (``PATCH storage/items/patch-bulk``).

        Requests hold at most 1000 items and about ``PATCH_MAX_BYTES`` of JSON; one answered 413 is halved
        and sent again, down to single files. Each answer is checked against what was sent: a file the answer
        leaves out, or answers with other metadata, is failed with the reason (a server that merges patches
        into the stored dict instead of replacing it is named as such: removing keys would never converge).
        Returns uuid -> ``None`` (written) or the reason it was not; a failed request marks every item in it.
        Whole-dict writes make retried requests idempotent.

        Raises:
            ProviderAuthError: the credentials were refused (nothing further would succeed).
        """
        out: dict[str, str | None] = {}
        entries: list[_Patch] = []
        for u, md in patches.items():
            canon = _canonical(u)
            if canon is None:
                out[u] = f"{u!r} is not a UUID"
                continue
            try:  # engine keys -> wire: per-frame keys go under $encord (reconciler.frames)
                sent = to_wire(md)
            except ValueError as exc:
                out[u] = str(exc)
                continue
            try:
                text = _sdk_json(sent)
            except (TypeError, ValueError) as exc:
                out[u] = f"the metadata is not valid JSON: {exc}"
                continue
            entries.append(_Patch(u, canon, sent, text))
        for chunk in _patch_chunks(entries):
            out.update(self._patch_chunk(chunk))
        return out

    def _patch_chunk(self, chunk: Sequence[_Patch]) -> dict[str, str | None]:
        # json.dumps({"itemPatches": {canon: {"clientMetadata": sent}, ...}}) from each file's text, already
        # made with the same settings (the bytes are the same; every dict is not encoded a second time).
        parts = ", ".join(f'"{p.canon}": {{"clientMetadata": {p.text}}}' for p in chunk)
        body = EncodedBody(('{"itemPatches": {' + parts + "}}").encode("ascii"))
        try:
            data = self._client.call("PATCH", _PATCH_BULK, body=body, write=True)
        except ProviderAuthError:
            raise
        except PayloadTooLargeError as exc:
            if len(chunk) == 1:
                return {chunk[0].given: f"{exc}; the file's metadata alone is too large for Encord"}
            mid = len(chunk) // 2
            logger.info("patch-bulk of %d files answered 413; sending halves of %d", len(chunk), mid)
            return {**self._patch_chunk(chunk[:mid]), **self._patch_chunk(chunk[mid:])}
        except ProviderError as exc:
            return {p.given: str(exc) for p in chunk}
        return self._check_patch_answer(chunk, data)

    def _check_patch_answer(self, chunk: Sequence[_Patch], data: object) -> dict[str, str | None]:
        """uuid -> ``None`` where the answer holds exactly the metadata sent, else why the file failed."""
        request = f"PATCH {_PATCH_BULK}"
        try:
            results = read_results(data, request)
        except ProviderResponseError as exc:
            return {p.given: f"{exc}: the files may or may not have been written" for p in chunk}
        by_uuid: dict[str, Mapping[str, Any]] = {}
        for raw in results:
            if isinstance(raw, Mapping) and isinstance(raw.get("uuid"), str):
                by_uuid[raw["uuid"].lower()] = raw
        out: dict[str, str | None] = {}
        for p in chunk:
            raw = by_uuid.get(p.canon)
            if raw is None:
                out[p.given] = (
                    f"{request}: Encord's answer (200) left this file out, so it may not have been written; "
                    "run apply again"
                )
                continue
            got = raw["clientMetadata"] if "clientMetadata" in raw else raw.get("client_metadata")
            if got == p.text:  # the common case: the server echoes the bytes sent
                out[p.given] = None
                continue
            try:
                with _answer_of(request):
                    url = raw.get("clientMetadataSignedUrl")
                    if isinstance(url, str) and url:
                        where = f"item {p.canon}: clientMetadataSignedUrl"
                        answered = parse_metadata(self._client.fetch_signed_json(url, where), p.canon)
                    else:
                        answered = parse_metadata(got, p.canon)
            except ProviderError as exc:
                out[p.given] = f"{exc}: the file may or may not have been written"
                continue
            out[p.given] = _compare_written(p.sent, answered, request)
        return out

    # -- datasets (the legacy v1 querier) ---------------------------------------------------------------------

    def list_datasets(self) -> list[tuple[str, str]]:
        """Not available: the v1 dataset querier reads a dataset by hash only (``capabilities.lists_datasets``
        is false, so the engine asks for datasets by hash)."""
        raise ProviderError(
            "the Encord provider cannot list datasets; name each one by its hash (--dataset HASH)"
        )

    def read_dataset(self, dataset_hash: str) -> LiveDataset:
        """A dataset's rows with their custom metadata, in one v1 call (``dataset`` with ``fetch_client_metadata``).

        A row with a backing item carries that item's metadata (write it through :meth:`patch_items`); only
        rows without one need :meth:`write_data_rows`.

        Raises:
            ProviderConflictError: no such dataset, or no access to it.
        """
        payload = {"dataset_access_settings": {"fetch_client_metadata": True, "fetch_rows": True}}
        data = self._client.call_v1(dataset_hash, "dataset", "GET", payload=payload)
        return read_dataset(data, f"v1 dataset {dataset_hash}")

    def write_data_rows(
        self, dataset_hash: str, patches: Mapping[str, Mapping[str, JsonValue]]
    ) -> dict[str, str | None]:
        """Replace the metadata of data rows **without** a backing item: one legacy ``datarow`` POST per row
        (there is no bulk form), in parallel, each counted as ``POST public datarow``.

        Returns data hash -> ``None`` (written, and the answer holds what was sent) or the reason it was not.

        Raises:
            ProviderAuthError: the credentials were refused.
        """

        def one(item: tuple[str, Mapping[str, JsonValue]]) -> tuple[str, str | None]:
            data_hash, md = item
            request = f"v1 datarow {data_hash}"
            try:
                sent = to_wire(md)
            except ValueError as exc:
                return data_hash, str(exc)
            try:
                data = self._client.call_v1(
                    dataset_hash,
                    "datarow",
                    "POST",
                    uid=data_hash,
                    payload={"client_metadata": sent},
                    write=True,
                )
                row, updated = read_written_row(data, request)
            except ProviderAuthError:
                raise
            except ProviderError as exc:
                return data_hash, str(exc)
            if updated is not None and "client_metadata" not in updated:
                return data_hash, f"{request}: Encord did not update client_metadata (updated: {updated})"
            return data_hash, _compare_written(sent, to_wire(row.metadata), request)

        items = list(patches.items())
        if len(items) <= 1:
            return dict(map(one, items))
        with ThreadPoolExecutor(max_workers=self._parallelism) as pool:
            return dict(pool.map(one, items))


@dataclass(frozen=True)
class _Patch:
    """One file of a patch-bulk: the uuid as given and canonical, the dict sent and its JSON text."""

    given: str
    canon: str
    sent: dict[str, JsonValue]
    text: str


def _patch_chunks(entries: Sequence[_Patch]) -> list[Sequence[_Patch]]:
    """Consecutive runs of at most ``BULK_LIMIT`` files and about ``PATCH_MAX_BYTES`` of JSON each."""
    chunks: list[Sequence[_Patch]] = []
    start, size = 0, 0
    for i, p in enumerate(entries):
        cost = len(p.text) + _PATCH_ENTRY_OVERHEAD
        if i > start and (i - start >= BULK_LIMIT or size + cost > PATCH_MAX_BYTES):
            chunks.append(entries[start:i])
            start, size = i, 0
        size += cost
    if start < len(entries):
        chunks.append(entries[start:])
    return chunks


def _same_json(a: object, b: object) -> bool:
    """JSON equality: booleans are not numbers, ``1 == 1.0``, dict key order does not matter."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _compare_written(
    sent: Mapping[str, JsonValue], answered: Mapping[str, JsonValue], request: str
) -> str | None:
    """``None`` if the answer holds what was sent; otherwise why the file is failed."""
    if _same_json(dict(sent), dict(answered)):
        return None
    kept_all = all(k in answered and _same_json(v, answered[k]) for k, v in sent.items())
    extra = sorted(set(answered) - set(sent))
    if kept_all and extra:
        return (
            f"{request}: Encord kept key(s) that were not sent ({', '.join(map(repr, extra[:5]))}): the server "
            "merges patches into the stored metadata instead of replacing it, so keys cannot be removed this "
            "way and applying again would not converge"
        )
    differ = sorted(k for k in set(sent) | set(answered) if k not in sent or k not in answered
                    or not _same_json(sent[k], answered[k]))  # fmt: skip
    return (
        f"{request}: Encord answered metadata other than what was sent (key(s) {', '.join(map(repr, differ[:5]))}); "
        "the file may not hold what the plan says"
    )


def encord_provider_from_config(
    domain: str | None,
    env: Mapping[str, str],
    *,
    parallelism: int,
    allow_insecure_http: bool,
) -> EncordProvider:
    """The provider for a configured domain (``None``: https://api.encord.com), credentials from ``env``
    (and ``RECONCILER_REQUEST_DEADLINE``, the deadline per request).

    Raises:
        UsageError: an unusable domain or deadline.
        ProviderAuthError: missing or unusable credentials (see :func:`auth_from_env`).
    """
    origin = normalize_domain(domain or DEFAULT_DOMAIN, allow_insecure_http=allow_insecure_http)
    return EncordProvider(
        origin,
        auth_from_env(env),
        parallelism=parallelism,
        allow_insecure_http=allow_insecure_http,
        retry=retry_policy_from_env(env),
    )
