"""``EncordProvider``: live state read from and written to Encord's v2 public API (schema, folders, items).

Request shapes follow the Encord SDK 0.1.211 (encord-api.md §3-§5); request counts are the minimum the API
allows (pages of 1000, bulk reads and writes of 1000). Safe to call from several threads at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid as uuid_mod
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from reconciler.errors import (
    ProviderAuthError,
    ProviderConflictError,
    ProviderError,
    ProviderResponseError,
)
from reconciler.model import LiveFolder, LiveItem
from reconciler.providers.base import CallStats, Capabilities, ListedItem, ProviderIdentity
from reconciler.providers.encord.auth import auth_from_env
from reconciler.providers.encord.client import (
    DEFAULT_DOMAIN,
    PAGE_TOKEN,
    EncordClient,
    QueryParams,
    RetryPolicy,
    normalize_domain,
    retry_policy_from_env,
)

if TYPE_CHECKING:
    import httpx

    from reconciler.schema import WireSchema
    from reconciler.types import JsonValue

__all__ = ["GROUP_ITEM_TYPES", "EncordProvider", "encord_provider_from_config"]

logger = logging.getLogger(__name__)

#: Item types whose files are child items (fetched with ``child-items``).
GROUP_ITEM_TYPES: Final = frozenset({"imageGroup", "imageSequence", "dicomSeries", "group"})

PAGE_SIZE: Final = 1000
BULK_LIMIT: Final = 1000  # STORAGE_BUNDLE_CREATE_LIMIT in the SDK

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


def _is_uuid(ref: str) -> bool:
    try:
        uuid_mod.UUID(ref)
    except ValueError:
        return False
    return True


def _chunks(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def _field(raw: Mapping[str, Any], key: str, what: str, *, nullable: bool = False) -> Any:
    value = raw.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value:
        raise ProviderResponseError(f"Encord answered {what} without a usable {key!r}")
    return value


def _metadata(raw: Mapping[str, Any], uuid: str) -> dict[str, JsonValue]:
    """``clientMetadata`` (a JSON-encoded string on the wire; null or ``""`` mean none) as a dict."""
    value = raw.get("clientMetadata", raw.get("client_metadata"))
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ProviderResponseError(f"item {uuid}: clientMetadata is not valid JSON") from exc
    if not isinstance(value, dict):
        raise ProviderResponseError(f"item {uuid}: clientMetadata is not a JSON object")
    return value


def _live_item(raw: object, *, parent_item: str | None = None, folder: str | None = None) -> LiveItem:
    if not isinstance(raw, Mapping):
        raise ProviderResponseError("Encord answered an item that is not a JSON object")
    uuid = _field(raw, "uuid", "an item")
    item_folder = _field(raw, "parent", f"item {uuid}", nullable=folder is not None) or folder
    assert isinstance(item_folder, str)
    return LiveItem(
        uuid=uuid,
        folder=item_folder,
        name=_field(raw, "name", f"item {uuid}"),
        item_type=_field(raw, "itemType", f"item {uuid}"),
        metadata=_metadata(raw, uuid),
        parent_item=parent_item,
    )


def _folder_record(raw: object) -> tuple[str, str | None, str]:
    if not isinstance(raw, Mapping):
        raise ProviderResponseError("Encord answered a folder that is not a JSON object")
    uuid = _field(raw, "uuid", "a folder")
    return uuid, _field(raw, "parent", f"folder {uuid}", nullable=True), _field(raw, "name", f"folder {uuid}")


@contextlib.contextmanager
def _answer_of(request: str) -> Iterator[None]:
    """Name the request whose answer had an unusable part (errors from parsing it do not say which)."""
    try:
        yield
    except ProviderResponseError as exc:
        if str(exc).startswith(("GET ", "POST ", "PATCH ")):
            raise
        raise ProviderResponseError(f"{request}: {exc}") from exc


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

    capabilities = Capabilities(max_batch=BULK_LIMIT, parallel_writes=True)

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
        data = self._client.call("GET", _SCHEMA_ROUTE)
        if data is None:
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ProviderResponseError(
                f"GET {_SCHEMA_ROUTE}: Encord answered a schema that is not a map of key -> type object"
            )
        return data

    def write_schema(self, schema: Mapping[str, Mapping[str, Any]]) -> None:
        """``POST organisation/client-metadata-schema-v2`` with the complete map (Encord takes no diffs)."""
        self._client.call("POST", _SCHEMA_ROUTE, body={k: dict(v) for k, v in schema.items()}, write=True)

    # -- folders ----------------------------------------------------------------------------------------------

    def _list(self, route: str, *args: str, params: QueryParams) -> list[Any]:
        return [raw for page in self._client.pages(route, *args, params=params) for raw in page]

    def list_folders(self) -> list[LiveFolder]:
        """Every folder: the top level, then each top folder's subfolders (recursive listings, in parallel)."""
        with _answer_of(f"GET {_TOP_FOLDERS}"):
            tops = [_folder_record(raw) for raw in self._list(_TOP_FOLDERS, params=_folder_params())]
        records: list[tuple[str, str | None, str]] = [(u, None, n) for u, _, n in tops]
        with ThreadPoolExecutor(max_workers=self._parallelism) as pool:
            listings = pool.map(
                lambda top: self._list(_SUBFOLDERS, top, params=_folder_params(recursive=True)),
                [u for u, _, _ in tops],
            )
            for listing in listings:
                with _answer_of(f"GET {_SUBFOLDERS}"):
                    records.extend(_folder_record(raw) for raw in listing)
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
                found = [rec for rec in map(_folder_record, listing) if rec[2] == name]
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

    def _folder_raw(self, uuid: str) -> tuple[str, str | None, str, list[Any]]:
        try:
            raw = self._client.call("GET", _FOLDER, uuid)
        except ProviderConflictError as exc:
            raise ProviderConflictError(f"no folder with UUID {uuid} (or no access to it)") from exc
        with _answer_of(f"GET {_FOLDER}"):
            u, parent, name = _folder_record(raw)
        path_to_root = raw.get("pathToRoot") if isinstance(raw, Mapping) else None
        return u, parent, name, path_to_root if isinstance(path_to_root, list) else []

    def _folder_by_uuid(self, ref: str) -> LiveFolder:
        uuid, parent, name, path_to_root = self._folder_raw(ref)
        known: dict[str, tuple[str | None, str]] = {}
        for entry in path_to_root:
            if (
                isinstance(entry, Mapping)
                and isinstance(entry.get("uuid"), str)
                and isinstance(entry.get("name"), str)
            ):
                up = entry.get("parentUuid", entry.get("parent_uuid"))
                known[entry["uuid"]] = (up if isinstance(up, str) else None, entry["name"])
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

        Recursive listings first list the subfolders (to name items ``sub/dir/name``). With ``children``,
        the child items of image groups, image sequences, DICOM series and groups are fetched in parallel,
        a page at a time, and yielded right after their group as ``GROUP/CHILD``.
        """
        sub_paths: dict[str, str] = {folder.uuid: ""}
        if recursive:
            with _answer_of(f"GET {_SUBFOLDERS}"):
                records = [
                    _folder_record(raw)
                    for raw in self._list(_SUBFOLDERS, folder.uuid, params=_folder_params(recursive=True))
                ]
            sub_paths.update(_relative_paths(records, folder.uuid))
        pool = ThreadPoolExecutor(max_workers=self._parallelism) if children else None
        try:
            for page in self._client.pages(_ITEMS, folder.uuid, params=_item_params(recursive=recursive)):
                listed: list[tuple[str, LiveItem]] = []
                pending: dict[str, Future[list[LiveItem]]] = {}
                for raw in page:
                    with _answer_of(f"GET {_ITEMS}"):
                        item = _live_item(raw)
                    prefix = sub_paths.get(item.folder)
                    if prefix is None:
                        prefix = self._relative_folder_path(folder, item.folder)
                        sub_paths[item.folder] = prefix
                    listed.append((f"{prefix}/{item.name}" if prefix else item.name, item))
                    if pool is not None and item.item_type in GROUP_ITEM_TYPES:
                        pending[item.uuid] = pool.submit(self._child_items, item)
                for rel_name, item in listed:
                    yield ListedItem(rel_name, item)
                    if item.uuid in pending:
                        for child in pending[item.uuid].result():
                            yield ListedItem(f"{rel_name}/{child.name}", child)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

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
            return [_live_item(raw, parent_item=group.uuid, folder=group.folder) for raw in listing]

    def get_items(self, uuids: Sequence[str]) -> dict[str, LiveItem]:
        """Fresh copies by uuid (``POST storage/items/get-bulk``, 1000 per request, chunks in parallel).

        A 403 on a chunk means some item is gone or inaccessible: the chunk is split in halves until the
        missing items are isolated, and they are left out of the result. ``parent_item`` is not known here
        (the API does not say) and is ``None``; keys are the uuids as given.
        """
        given: dict[str, str] = {}
        for u in uuids:
            if _is_uuid(u):
                given.setdefault(str(uuid_mod.UUID(u)), u)
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

    def _get_bulk(self, chunk: Sequence[str]) -> dict[str, LiveItem]:
        try:
            data = self._client.call("POST", _GET_BULK, body={"itemUuids": list(chunk), "signUrls": False})
        except ProviderConflictError:
            if len(chunk) == 1:
                logger.debug("item %s no longer exists (or is not accessible)", chunk[0])
                return {}
            mid = len(chunk) // 2
            return {**self._get_bulk(chunk[:mid]), **self._get_bulk(chunk[mid:])}
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise ProviderResponseError(f"POST {_GET_BULK}: Encord answered without a 'results' list")
        requested = set(chunk)
        with _answer_of(f"POST {_GET_BULK}"):
            items = [_live_item(raw) for raw in results]
        return {item.uuid: item for item in items if item.uuid in requested}

    def patch_items(self, patches: Mapping[str, Mapping[str, JsonValue]]) -> dict[str, str | None]:
        """Replace each item's whole metadata (``PATCH storage/items/patch-bulk``, 1000 items per request).

        Returns uuid -> ``None`` (written) or the reason it was not; a failed request marks every item in it.
        Whole-dict writes make retried requests idempotent.

        Raises:
            ProviderAuthError: the credentials were refused (nothing further would succeed).
        """
        out: dict[str, str | None] = {}
        valid: list[tuple[str, str, Mapping[str, JsonValue]]] = []
        for u, md in patches.items():
            if _is_uuid(u):
                valid.append((u, str(uuid_mod.UUID(u)), md))
            else:
                out[u] = f"{u!r} is not a UUID"
        for chunk in _chunks(valid, BULK_LIMIT):
            body = {"itemPatches": {canon: {"clientMetadata": dict(md)} for _, canon, md in chunk}}
            try:
                self._client.call("PATCH", _PATCH_BULK, body=body, write=True, parse=False)
            except ProviderAuthError:
                raise
            except ProviderError as exc:
                for u, _, _ in chunk:
                    out[u] = str(exc)
            else:
                for u, _, _ in chunk:
                    out[u] = None
        return out


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
