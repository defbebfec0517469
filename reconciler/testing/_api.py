"""The emulated Encord v2 public API: routing, query and body parsing, JSON shapes, paging.

Everything here is transport-free: ``Api.route`` finds the handler for a method and path (404/405),
and the handler turns parsed input into a ``Response``. The HTTP server (``emulator.py``) does sockets,
authentication, fault injection and counting. Wire shapes follow encord-api.md §3-§5.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, astuple, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Final
from urllib.parse import parse_qs

from reconciler.jsoncodec import UNDECIDED, try_loads
from reconciler.schema import parse_wire_schema
from reconciler.snapshot import ITEM_TYPES, Snapshot
from reconciler.testing._state import ItemRecord, ListingKey, State, canonical_uuid, dumps_metadata

__all__ = [
    "API_PREFIX",
    "BULK_LIMIT",
    "NO_BODY",
    "OWNER",
    "Api",
    "ApiError",
    "Modes",
    "Request",
    "Response",
    "parse_query",
    "route_name",
]

API_PREFIX: Final = "/v2/public/"
#: At most this many uuids per get-bulk and patches per patch-bulk (Encord's bundle limit); more is a 413.
BULK_LIMIT: Final = 1000
PAGE_SIZE_MAX: Final = 1000
OWNER: Final = "emulator@reconciler.invalid"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_RE = re.compile(_UUID)
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class _NoBody:
    def __repr__(self) -> str:
        return "NO_BODY"


#: Marks a response without a body (204).
NO_BODY: Final = _NoBody()


class ApiError(Exception):
    """An error answer: ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Modes:
    """Server behaviours that Encord may have but that are unconfirmed (reconciler/testing/README.md).

    The defaults are the emulator's best guess; each switch turns on the other answer, so tests can show that
    a client is correct under either.
    """

    #: patch-bulk (and the v1 data-row write) merges the sent metadata into the stored dict instead of
    #: replacing it.
    patch_merges: bool = False
    #: patch-bulk leaves the last N patches of a request unwritten and out of its ``results``.
    patch_drop_results: int = 0
    #: get-bulk answers 200 without the last N requested items (instead of 403 for the whole request).
    get_bulk_drop_results: int = 0
    #: item listings with ``isRecursive=True`` need ``search`` or ``itemTypes`` (400 otherwise), as the SDK
    #: demands on the client side.
    refuse_recursive: bool = False
    #: child items of image groups, sequences and DICOM series are listed in their folder as well.
    children_in_listings: bool = False
    #: request bodies larger than this many bytes are answered 413 (``None``: only the 256 MiB cap).
    max_body_bytes: int | None = None
    #: listings and get-bulk serve metadata only through ``clientMetadataSignedUrl`` (``clientMetadata``
    #: is ``"{}"``), whatever ``clientMetadataAsSignedUrl`` asks.
    metadata_as_signed_url: bool = False

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Modes:
        """Validate a ``PUT /_emulator/modes`` body. Raises ``ValueError`` naming the bad field."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown mode {unknown[0]!r} (known: {', '.join(sorted(known))})")
        out: dict[str, Any] = {}
        for name, value in data.items():
            default = known[name].default
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif name == "max_body_bytes":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                    raise ValueError(f"{name} must be a positive integer or null")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
            out[name] = value
        return cls(**out)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Request:
    """What a handler gets: the method, path parameters, parsed query, raw body, and who is calling."""

    method: str
    path: str  # after /v2/public/, percent-decoded
    args: tuple[str, ...]
    query: dict[str, list[str]]
    body: bytes
    base_url: str
    auth_kind: str = "signature"  # "signature" | "bearer"


@dataclass
class Response:
    status: int
    body: Any = NO_BODY
    headers: dict[str, str] = field(default_factory=dict)


def route_name(method: str, sub_path: str) -> str:
    """``"<METHOD> <path after /v2/public/ with uuids as {uuid}>"``, the key of request counts."""
    return f"{method} {_UUID_RE.sub('{uuid}', sub_path)}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


# ---- query and body parsing ------------------------------------------------------------------------


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _bool(query: Mapping[str, list[str]], name: str, default: bool | None) -> bool | None:
    raw = _one(query, name)
    if raw is None:
        return default
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ApiError(400, f"query parameter {name!r}: expected True or False, got {raw!r}")


def _flag(query: Mapping[str, list[str]], name: str, default: bool) -> bool:
    value = _bool(query, name, default)
    assert value is not None
    return value


def _page_size(query: Mapping[str, list[str]]) -> int:
    raw = _one(query, "pageSize")
    if raw is None:
        return 100
    try:
        size = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter 'pageSize': expected an integer, got {raw!r}") from None
    if not 1 <= size <= PAGE_SIZE_MAX:
        raise ApiError(400, f"query parameter 'pageSize' must be between 1 and {PAGE_SIZE_MAX}, got {size}")
    return size


def _order(query: Mapping[str, list[str]]) -> str:
    order = _one(query, "order") or "name"
    if order not in ("name", "createdAt"):
        raise ApiError(400, f"query parameter 'order' must be 'name' or 'createdAt', got {order!r}")
    return order


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_body(body: bytes) -> Any:
    if not body:
        raise ApiError(400, "a JSON body is required")
    value = try_loads(body)  # orjson where its value is json.loads'; else json.loads decides, with its error
    if value is not UNDECIDED:
        return value
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"malformed JSON body: {exc}") from exc


def _uuid_arg(text: object, what: str) -> str:
    try:
        return canonical_uuid(text)  # type: ignore[arg-type]  # non-strings are rejected inside
    except ValueError:
        raise ApiError(400, f"{what}: not a UUID: {text!r}") from None


# ---- paging ----------------------------------------------------------------------------------------


def _fingerprint(parts: Sequence[object]) -> str:
    return hashlib.sha256(json.dumps(list(parts), default=str).encode()).hexdigest()[:16]


def _encode_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_token(token: str, fingerprint: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
        offset = doc["o"]
        fp = doc["f"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise ApiError(400, "invalid pageToken") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 1 or fp != fingerprint:
        raise ApiError(
            400, "invalid pageToken: it does not belong to this listing (or the state was reloaded)"
        )
    return offset


def _page(
    ids: Sequence[str], query: Mapping[str, list[str]], fingerprint: str, render: Callable[[str], Any]
) -> dict[str, Any]:
    size = _page_size(query)
    token = _one(query, "pageToken")
    offset = 0 if token is None else _decode_token(token, fingerprint)
    chunk = ids[offset : offset + size]
    end = offset + len(chunk)
    next_token = _encode_token(end, fingerprint) if end < len(ids) else None
    return {"results": [render(i) for i in chunk], "nextPageToken": next_token}


# ---- the API ---------------------------------------------------------------------------------------

_Handler = Callable[["Api", Request], Response]


class Api:
    """The emulated API over one State. ``lock`` guards ``state`` and ``epoch``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.state = State()
        #: Bumped by every load; page tokens from an earlier state are refused.
        self.epoch = 0
        #: Called to mint a bearer token for ``GET user/bearer-token`` (set by the emulator).
        self.mint_token: Callable[[], str] | None = None
        #: The unconfirmed behaviours in force (replaced whole by the emulator's ``set_modes``).
        self.modes = Modes()

    # -- state in and out --

    def load(self, snapshot: Snapshot) -> None:
        new_state = State.from_snapshot(snapshot)
        with self.lock:
            self.state = new_state
            self.epoch += 1

    def snapshot(self) -> Snapshot:
        with self.lock:
            return self.state.to_snapshot()

    def state_json(self) -> dict[str, Any]:
        with self.lock:
            return self.state.to_json()

    # -- routing --

    def route(self, method: str, sub_path: str) -> tuple[_Handler, tuple[str, ...]]:
        """The handler for a method and a path after ``/v2/public/``. Raises ApiError 404 or 405."""
        for pattern, methods in _ROUTES:
            m = pattern.fullmatch(sub_path)
            if m is None:
                continue
            handler = methods.get(method)
            if handler is None:
                raise ApiError(
                    405, f"method {method} not allowed here", {"Allow": ", ".join(sorted(methods))}
                )
            return handler, tuple(g.lower() for g in m.groups())
        raise ApiError(404, f"no such endpoint: {sub_path}")

    # -- JSON shapes --

    def _folder_json(self, folder_id: str) -> dict[str, Any]:
        f = self.state.folders[folder_id]
        return {
            "uuid": f.uuid,
            "parent": f.parent,
            "name": f.name,
            "description": "",
            "clientMetadata": None,
            "owner": OWNER,
            "createdAt": self.state.created_at(f.seq),
            "lastEditedAt": self.state.created_at(f.seq),
            "userRole": "admin",
            "syncedDatasetHash": None,
            "pathToRoot": [
                {"uuid": p.uuid, "parentUuid": p.parent, "name": p.name, "syncedDatasetHash": None}
                for p in self.state.path_to_root(folder_id)
            ],
            "folderType": "generic",
            "integrationHash": None,
            "remoteUrl": None,
        }

    def _item_json(
        self, rec: ItemRecord, *, include_metadata: bool = True, metadata_url: str | None = None
    ) -> dict[str, Any]:
        created = self.state.created_at(rec.seq)
        out: dict[str, Any] = {
            "uuid": rec.uuid,
            "parent": rec.folder,
            "itemType": rec.item_type,
            "name": rec.name,
            "description": rec.description,
            "clientMetadata": rec.metadata_json if include_metadata and metadata_url is None else "{}",
            "owner": OWNER,
            "createdAt": created,
            "lastEditedAt": rec.edited_at or created,
            "isTombstone": False,
            "isPlaceholder": False,
            "backedDataUnitsCount": self.state.backed.get(rec.uuid, 0),
            "storageLocation": "encord",
            "integrationHash": None,
            "url": None,
            "signedUrl": None,
            "fileSize": None,
            "mimeType": None,
            "duration": None,
            "fps": None,
            "height": None,
            "width": None,
            "dicomInstanceUid": None,
            "dicomStudyUid": None,
            "dicomSeriesUid": None,
            "frameCount": None,
            "audioSampleRate": None,
            "audioBitDepth": None,
            "audioCodec": None,
            "audioNumChannels": None,
        }
        if metadata_url is not None:
            out["clientMetadataSignedUrl"] = metadata_url
        return out

    def item_metadata_json(self, item_id: str) -> str | None:
        """The metadata string of an item (for the emulated signed metadata URLs), or None if unknown."""
        with self.lock:
            rec = self.state.items.get(item_id)
            return rec.metadata_json if rec else None

    # -- schema --

    def get_schema(self, req: Request) -> Response:
        with self.lock:
            return Response(200, self.state.schema)

    def post_schema(self, req: Request) -> Response:
        body = _json_body(req.body)
        if not isinstance(body, dict):
            raise ApiError(400, "the schema must be a JSON object mapping keys to type objects")
        for key, value in body.items():
            if not isinstance(value, dict):
                raise ApiError(422, f"schema key {key!r}: expected a type object")
        try:
            parse_wire_schema(body)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        with self.lock:
            self.state.set_schema(body)
        return Response(204)

    # -- folders --

    def _folder_listing(self, req: Request, parent: str | None, *, force_recursive: bool = False) -> Response:
        q = req.query
        recursive = force_recursive or _flag(q, "isRecursive", False)
        search = _one(q, "search") or None
        order = _order(q)
        desc = _flag(q, "desc", False)
        synced = _bool(q, "datasetSynced", None)
        _page_size(q)
        with self.lock:
            if parent is not None and parent not in self.state.folders:
                raise ApiError(403, f"folder {parent} does not exist or you have no access to it")
            ids = self.state.list_folders(
                parent, recursive=recursive, search=search, order=order, desc=desc, dataset_synced=synced
            )
            fp = _fingerprint([req.path, self.epoch, recursive, search, order, desc, synced])
            return Response(200, _page(ids, q, fp, self._folder_json))

    def list_top_folders(self, req: Request) -> Response:
        return self._folder_listing(req, None)

    def search_folders(self, req: Request) -> Response:
        return self._folder_listing(req, None, force_recursive=True)

    def list_subfolders(self, req: Request) -> Response:
        return self._folder_listing(req, req.args[0])

    def get_folder(self, req: Request) -> Response:
        with self.lock:
            if req.args[0] not in self.state.folders:
                raise ApiError(403, f"folder {req.args[0]} does not exist or you have no access to it")
            return Response(200, self._folder_json(req.args[0]))

    # -- items --

    def _item_listing(self, req: Request, folder: str | None, *, force_recursive: bool = False) -> Response:
        q = req.query
        item_types = tuple(q.get("itemTypes", ()))
        for t in item_types:
            if t not in ITEM_TYPES:
                raise ApiError(400, f"query parameter 'itemTypes': unknown item type {t!r}")
        key = ListingKey(
            folder=folder,
            recursive=force_recursive or _flag(q, "isRecursive", False),
            search=_one(q, "search") or None,
            item_types=tuple(sorted(set(item_types))),
            in_dataset=_bool(q, "isInDataset", None),
            order=_order(q),
            desc=_flag(q, "desc", False),
        )
        modes = self.modes
        if modes.refuse_recursive and key.recursive and not key.search and not key.item_types:
            raise ApiError(400, "isRecursive=True requires 'search' or 'itemTypes'")
        include = _flag(q, "includeClientMetadata", True)
        as_url = include and (modes.metadata_as_signed_url or _flag(q, "clientMetadataAsSignedUrl", False))
        _flag(q, "signUrls", False)
        _page_size(q)
        base = req.base_url
        with self.lock:
            if folder is not None and folder not in self.state.folders:
                raise ApiError(403, f"folder {folder} does not exist or you have no access to it")
            ids = self.state.list_items(key)
            if modes.children_in_listings:
                ids = self.state.with_children(ids)
            fp = _fingerprint([req.path, self.epoch, modes.children_in_listings, *astuple(key)])
            items = self.state.items

            def render(i: str) -> dict[str, Any]:
                url = f"{base}/_emulator/client-metadata/{i}" if as_url else None
                return self._item_json(items[i], include_metadata=include, metadata_url=url)

            return Response(200, _page(ids, q, fp, render))

    def list_items(self, req: Request) -> Response:
        return self._item_listing(req, req.args[0])

    def search_items(self, req: Request) -> Response:
        return self._item_listing(req, None, force_recursive=True)

    def get_item(self, req: Request) -> Response:
        _bool(req.query, "signUrl", False)
        with self.lock:
            rec = self.state.items.get(req.args[0])
            if rec is None:
                raise ApiError(403, f"item {req.args[0]} does not exist or you have no access to it")
            return Response(200, self._item_json(rec))

    def get_bulk(self, req: Request) -> Response:
        body = _json_body(req.body)
        if not isinstance(body, dict) or not isinstance(body.get("itemUuids", body.get("item_uuids")), list):
            raise ApiError(400, 'body must be {"itemUuids": [...], "signUrls": false}')
        raw = body.get("itemUuids", body.get("item_uuids"))
        assert isinstance(raw, list)
        if len(raw) > BULK_LIMIT:
            raise ApiError(413, f"at most {BULK_LIMIT} item uuids per get-bulk request, got {len(raw)}")
        ids = [_uuid_arg(u, "itemUuids") for u in raw]
        with self.lock:
            missing = self.state.unknown_items(ids)
            if missing:
                raise ApiError(403, f"item {missing[0]} does not exist or you have no access to it")
            drop = self.modes.get_bulk_drop_results
            answered = ids[: max(0, len(ids) - drop)] if drop else ids
            as_url = self.modes.metadata_as_signed_url
            base = req.base_url
            return Response(
                200,
                {
                    "results": [
                        self._item_json(
                            self.state.items[i],
                            metadata_url=f"{base}/_emulator/client-metadata/{i}" if as_url else None,
                        )
                        for i in answered
                    ]
                },
            )

    def _parse_patch(self, item_id: str, patch: object) -> tuple[str | None, str | None, str | None]:
        if not isinstance(patch, dict):
            raise ApiError(400, f"patch for item {item_id} must be an object")
        md = patch.get("clientMetadata", patch.get("client_metadata"))
        name = patch.get("name")
        description = patch.get("description")
        if md is not None and not isinstance(md, dict):
            raise ApiError(400, f"item {item_id}: clientMetadata must be an object")
        if name is not None and (not isinstance(name, str) or not name):
            raise ApiError(400, f"item {item_id}: name must be a non-empty string")
        if description is not None and not isinstance(description, str):
            raise ApiError(400, f"item {item_id}: description must be a string")
        try:
            md_json = dumps_metadata(md) if md is not None else None
        except ValueError as exc:
            raise ApiError(400, f"item {item_id}: {exc}") from None
        return md_json, name, description

    def patch_bulk(self, req: Request) -> Response:
        body = _json_body(req.body)
        patches = body.get("itemPatches", body.get("item_patches")) if isinstance(body, dict) else None
        if not isinstance(patches, dict):
            raise ApiError(400, 'body must be {"itemPatches": {"<uuid>": {"clientMetadata": {...}}}}')
        if len(patches) > BULK_LIMIT:
            raise ApiError(
                413, f"at most {BULK_LIMIT} item patches per patch-bulk request, got {len(patches)}"
            )
        parsed: dict[str, tuple[str | None, str | None, str | None]] = {}
        for raw_id, patch in patches.items():
            item_id = _uuid_arg(raw_id, "itemPatches")
            parsed[item_id] = self._parse_patch(item_id, patch)
        now = _now()
        with self.lock:
            missing = self.state.unknown_items(parsed)
            if missing:  # refuse the whole request: nothing is written
                raise ApiError(403, f"item {missing[0]} does not exist or you have no access to it")
            modes = self.modes
            if modes.patch_drop_results:
                kept = list(parsed)[: max(0, len(parsed) - modes.patch_drop_results)]
                parsed = {i: parsed[i] for i in kept}
            if modes.patch_merges:
                parsed = {
                    i: (self.state.merged_metadata(i, md) if md is not None else None, name, desc)
                    for i, (md, name, desc) in parsed.items()
                }
            results = [
                self._item_json(
                    self.state.update_item(i, metadata_json=md, name=name, description=desc, now=now)
                )
                for i, (md, name, desc) in parsed.items()
            ]
        return Response(200, {"results": results})

    def _item_in_folder(self, folder_id: str, item_id: str) -> ItemRecord:
        rec = self.state.items.get(item_id)
        if rec is None or rec.folder != folder_id:
            raise ApiError(
                403, f"item {item_id} does not exist in folder {folder_id} or you have no access to it"
            )
        return rec

    def patch_item(self, req: Request) -> Response:
        folder_id, item_id = req.args
        md, name, desc = self._parse_patch(item_id, _json_body(req.body))
        now = _now()
        with self.lock:
            self._item_in_folder(folder_id, item_id)
            rec = self.state.update_item(item_id, metadata_json=md, name=name, description=desc, now=now)
            return Response(200, self._item_json(rec))

    def child_items(self, req: Request) -> Response:
        folder_id, item_id = req.args
        _bool(req.query, "signUrls", False)
        with self.lock:
            self._item_in_folder(folder_id, item_id)
            kids = [self._item_json(self.state.items[c]) for c in self.state.child_items(item_id)]
            return Response(200, {"results": kids, "nextPageToken": None})

    def bearer_token(self, req: Request) -> Response:
        if req.auth_kind != "signature" or self.mint_token is None:
            raise ApiError(403, "a bearer token can only be obtained with a signed request")
        return Response(200, {"token": self.mint_token()})


def _routes() -> list[tuple[re.Pattern[str], dict[str, _Handler]]]:
    u = f"({_UUID})"
    table: list[tuple[str, dict[str, _Handler]]] = [
        ("organisation/client-metadata-schema-v2", {"GET": Api.get_schema, "POST": Api.post_schema}),
        ("storage/folders", {"GET": Api.list_top_folders}),
        ("storage/search/folders", {"GET": Api.search_folders}),
        ("storage/search/items", {"GET": Api.search_items}),
        (f"storage/folders/{u}", {"GET": Api.get_folder}),
        (f"storage/folders/{u}/folders", {"GET": Api.list_subfolders}),
        (f"storage/folders/{u}/items", {"GET": Api.list_items}),
        (f"storage/folders/{u}/items/{u}", {"PATCH": Api.patch_item}),
        (f"storage/folders/{u}/items/{u}/child-items", {"GET": Api.child_items}),
        ("storage/items/get-bulk", {"POST": Api.get_bulk}),
        ("storage/items/patch-bulk", {"PATCH": Api.patch_bulk}),
        (f"storage/items/{u}", {"GET": Api.get_item}),
        ("user/bearer-token", {"GET": Api.bearer_token}),
    ]
    return [(re.compile(p), m) for p, m in table]


_ROUTES = _routes()


def parse_query(raw_query: str) -> dict[str, list[str]]:
    """Parse a query string; repeated keys become lists, blank values are kept."""
    return parse_qs(raw_query, keep_blank_values=True)
