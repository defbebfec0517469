"""Typed readers of Encord's answers: the parts of ``StorageItem``, ``StorageFolder`` and result lists we use.

Each answer is validated against a ``TypedDict`` with a pydantic ``TypeAdapter`` (strict: no coercion, unknown
keys ignored, like the SDK's DTOs), and a refusal becomes one ``ProviderResponseError`` line naming the part
that was unusable. Only the keys reconciler reads are declared (encord-api.md §5.1-§5.3); everything else an
answer carries is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, NamedTuple

from pydantic import ConfigDict, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from reconciler.errors import ProviderResponseError
from reconciler.frames import WIRE_ROOT, may_hold_frames, to_keys
from reconciler.jsoncodec import try_loads, try_loads_plain
from reconciler.jsonio import loads
from reconciler.model import LiveDataRow, LiveDataset, LiveItem
from reconciler.types import JsonValue

__all__ = [
    "PlainRow",
    "WireItem",
    "check_listed_text",
    "checked_item",
    "parse_metadata",
    "plain_rows",
    "read_dataset",
    "read_folder",
    "read_item",
    "read_path_to_root",
    "read_results",
    "read_schema",
    "read_written_row",
]

_NonEmpty = Annotated[str, StringConstraints(min_length=1)]
_STRICT = ConfigDict(strict=True, extra="ignore")


class _Item(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    uuid: _NonEmpty
    parent: NotRequired[_NonEmpty | None]
    name: _NonEmpty
    itemType: _NonEmpty
    clientMetadata: NotRequired[str | dict[str, Any] | None]
    client_metadata: NotRequired[str | dict[str, Any] | None]
    clientMetadataSignedUrl: NotRequired[str | None]


class _Folder(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    uuid: _NonEmpty
    parent: NotRequired[_NonEmpty | None]
    name: _NonEmpty


class _PathEntry(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    uuid: str
    name: str
    parentUuid: NotRequired[str | None]
    parent_uuid: NotRequired[str | None]


class _Results(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    results: list[Any]


_ITEM: TypeAdapter[_Item] = TypeAdapter(_Item)
_FOLDER: TypeAdapter[_Folder] = TypeAdapter(_Folder)
_PATH_ENTRY: TypeAdapter[_PathEntry] = TypeAdapter(_PathEntry)
_RESULTS: TypeAdapter[_Results] = TypeAdapter(_Results)
_SCHEMA: TypeAdapter[dict[str, dict[str, Any]] | None] = TypeAdapter(
    dict[str, dict[str, Any]] | None, config=ConfigDict(strict=True)
)


class WireItem(NamedTuple):
    """A storage item as answered, and the signed URL its metadata must be fetched from (if the server sent
    one: then ``item.metadata`` is a placeholder until it is fetched)."""

    item: LiveItem
    metadata_url: str | None


def _first_key(exc: ValidationError) -> str | None:
    for err in exc.errors():
        loc = err.get("loc") or ()
        if loc and isinstance(loc[0], str):
            return loc[0]
    return None


def parse_metadata(value: object, uuid: str) -> dict[str, JsonValue]:
    """``clientMetadata`` (a JSON-encoded string on the wire; null or ``""`` mean none) as a dict."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = loads(value)
        except ValueError as exc:
            raise ProviderResponseError(f"item {uuid}: clientMetadata is not valid JSON") from exc
    if not isinstance(value, dict):
        raise ProviderResponseError(f"item {uuid}: clientMetadata is not a JSON object")
    return value


_MISSING: Any = object()


def _plain_item(
    raw: object, parent_item: str | None, folder: str | None, plain_strings: bool
) -> WireItem | None:
    """:func:`read_item` of an item whose every declared key has the plain type JSON decoding gives (exact
    ``str``, or ``None`` where allowed) and whose ``clientMetadata`` is text without per-frame part: the same
    ``WireItem`` without the validator. ``None``: anything else, for :func:`read_item` to judge (and word)."""
    if type(raw) is not dict:
        return None
    get = raw.get
    uuid, name, kind, parent = get("uuid"), get("name"), get("itemType"), get("parent", _MISSING)
    if (
        type(uuid) is not str
        or type(name) is not str
        or type(kind) is not str
        or not (uuid and name and kind)
    ):
        return None
    if parent is _MISSING or parent is None:
        parent = folder
    elif type(parent) is not str or not parent:
        return None
    if parent is None:
        return None
    md_raw = _plain_text(raw, get, plain_strings)
    if md_raw is _MISSING:
        return None
    if md_raw == "":
        metadata: dict[str, JsonValue] = {}
        text = None
    else:
        value = try_loads_plain(md_raw) if plain_strings else try_loads(md_raw)
        if type(value) is not dict:
            return None  # not an object, undecided by orjson, or an error: parse_metadata words it
        metadata, text = value, md_raw
    return WireItem(LiveItem(uuid, parent, name, kind, metadata, parent_item, text), None)


def _plain_text(raw: dict[str, Any], get: Any, plain_strings: bool) -> Any:
    """An item's metadata as the fast paths take it: ``""`` for none, else its JSON text (not yet decoded);
    ``_MISSING`` when the careful way must judge the item (a signed URL, a value of another type than the
    wire's, a text that may hold a per-frame part)."""
    url = get("clientMetadataSignedUrl")
    if url is not None and (type(url) is not str or url):
        return _MISSING  # a signed URL (or a value pydantic would refuse): the careful way
    if "client_metadata" in raw:
        other = raw["client_metadata"]
        if other is not None and type(other) is not str:
            return _MISSING
    md_raw = raw["clientMetadata"] if "clientMetadata" in raw else get("client_metadata")
    if md_raw is None or md_raw == "":
        return ""
    if type(md_raw) is not str or (WIRE_ROOT in md_raw if plain_strings else may_hold_frames(md_raw)):
        return _MISSING  # (a vouched-for answer has no backslash-u anywhere: only the root can be there)
    return md_raw


#: One listed file as :func:`plain_rows` gives it: name, uuid, folder uuid, and the metadata (the server's
#: JSON text, or ``{}`` for none).
PlainRow = tuple[str, str, str, "str | dict[str, JsonValue]"]


def plain_rows(
    page: list[Any], folder: str, plain_strings: bool, *, decode_texts: bool = True
) -> list[PlainRow] | None:
    """What :func:`read_item` reads from each item of a page of ``folder``'s own listing (no child items, no
    ``folder`` argument), for items that all take its fast path (:func:`_plain_item`) and all have ``folder``
    as their ``parent``: ``(name, uuid, parent, metadata_text or {})`` per item, without an item object.
    ``None`` when any item is not so (the caller then reads the page item by item, for its errors and
    signed URLs).

    ``decode_texts=False`` leaves each metadata text undecoded: the caller then owes each text the test of
    :func:`check_listed_text` (what :func:`read_item` would have made of it) before it uses the text, or
    stands for it."""
    rows: list[PlainRow] = []
    append = rows.append
    decode = try_loads_plain if plain_strings else try_loads
    for raw in page:
        if type(raw) is not dict:
            return None
        get = raw.get
        uuid, name, kind = get("uuid"), get("name"), get("itemType")
        if (
            type(uuid) is not str
            or type(name) is not str
            or type(kind) is not str
            or not (uuid and name and kind)
            or get("parent") != folder
        ):
            return None
        md_raw = _plain_text(raw, get, plain_strings)
        if md_raw is _MISSING or (md_raw and decode_texts and type(decode(md_raw)) is not dict):
            return None
        append((name, uuid, folder, md_raw or {}))
    return rows


def check_listed_text(uuid: str, text: str) -> None:
    """What :func:`read_item` makes of item ``uuid``'s metadata text that :func:`plain_rows` left undecoded:
    nothing when it is a JSON object (the item's text stands, as it would have), else its error.

    Raises:
        ProviderResponseError: the text is not valid JSON, or not a JSON object (``read_item``'s message).
    """
    if type(try_loads(text)) is not dict:  # (read_item's first look, whether or not its page vouched)
        parse_metadata(text, uuid)  # its careful look: the standard library's verdict, or its error


def read_item(
    raw: object, *, parent_item: str | None = None, folder: str | None = None, plain_strings: bool = False
) -> WireItem:
    """One ``StorageItem``. ``folder`` (child items) is used when the answer has no ``parent``.
    ``plain_strings``: the answer's strings hold no long integer (``EncordClient.call(plain_strings=...)``).

    Raises:
        ProviderResponseError: not an object, or a required key missing or of the wrong type.
    """
    plain = _plain_item(raw, parent_item, folder, plain_strings)
    return plain if plain is not None else checked_item(raw, parent_item=parent_item, folder=folder)


def checked_item(raw: object, *, parent_item: str | None = None, folder: str | None = None) -> WireItem:
    """:func:`read_item` through the validator, for every item (what the fast path must agree with)."""
    if not isinstance(raw, Mapping):
        raise ProviderResponseError("Encord answered an item that is not a JSON object")
    try:
        doc = _ITEM.validate_python(raw)
    except ValidationError as exc:
        key = _first_key(exc) or "uuid"
        uuid = raw.get("uuid")
        if key == "uuid" or not isinstance(uuid, str) or not uuid:
            raise ProviderResponseError("Encord answered an item without a usable 'uuid'") from None
        if key in ("clientMetadata", "client_metadata"):
            raise ProviderResponseError(f"item {uuid}: clientMetadata is not a JSON object") from None
        raise ProviderResponseError(f"Encord answered item {uuid} without a usable {key!r}") from None
    uuid = doc["uuid"]
    item_folder = doc.get("parent") or folder
    if item_folder is None:
        raise ProviderResponseError(f"Encord answered item {uuid} without a usable 'parent'")
    url = doc.get("clientMetadataSignedUrl") or None
    md_raw = doc["clientMetadata"] if "clientMetadata" in doc else doc.get("client_metadata")
    # Engine keys: per-frame values under $encord become frames[N].KEY keys (reconciler.frames).
    metadata = {} if url is not None else to_keys(parse_metadata(md_raw, uuid))
    item = LiveItem(
        uuid=uuid,
        folder=item_folder,
        name=doc["name"],
        item_type=doc["itemType"],
        metadata=metadata,
        parent_item=parent_item,
        # The server's text stands for the metadata only when its keys are the engine keys (no per-frame part).
        metadata_text=md_raw
        if url is None and type(md_raw) is str and md_raw and not may_hold_frames(md_raw)
        else None,
    )
    return WireItem(item, url)


def read_folder(raw: object) -> tuple[str, str | None, str]:
    """``(uuid, parent, name)`` of one ``StorageFolder``."""
    if not isinstance(raw, Mapping):
        raise ProviderResponseError("Encord answered a folder that is not a JSON object")
    try:
        doc = _FOLDER.validate_python(raw)
    except ValidationError as exc:
        key = _first_key(exc) or "uuid"
        uuid = raw.get("uuid")
        if key == "uuid" or not isinstance(uuid, str) or not uuid:
            raise ProviderResponseError("Encord answered a folder without a usable 'uuid'") from None
        raise ProviderResponseError(f"Encord answered folder {uuid} without a usable {key!r}") from None
    return doc["uuid"], doc.get("parent"), doc["name"]


def read_path_to_root(raw: object) -> dict[str, tuple[str | None, str]]:
    """uuid -> (parent, name) from a folder's ``pathToRoot``; unusable entries are skipped (it is a hint)."""
    entries = raw.get("pathToRoot") if isinstance(raw, Mapping) else None
    out: dict[str, tuple[str | None, str]] = {}
    for entry in entries if isinstance(entries, list) else ():
        try:
            doc = _PATH_ENTRY.validate_python(entry)
        except ValidationError:
            continue
        up = doc["parentUuid"] if "parentUuid" in doc else doc.get("parent_uuid")
        out[doc["uuid"]] = (up, doc["name"])
    return out


def read_results(data: object, request: str) -> list[Any]:
    """The ``results`` list of a get-bulk or patch-bulk answer."""
    try:
        return _RESULTS.validate_python(data)["results"]
    except ValidationError:
        raise ProviderResponseError(f"{request}: Encord answered without a 'results' list") from None


def read_schema(data: object, request: str) -> dict[str, dict[str, Any]]:
    """The schema map (``null`` means none: ``{}``)."""
    try:
        schema = _SCHEMA.validate_python(data)
    except ValidationError:
        raise ProviderResponseError(
            f"{request}: Encord answered a schema that is not a map of key -> type object"
        ) from None
    return {} if schema is None else schema


class _DataRow(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    data_hash: _NonEmpty
    data_title: str
    data_type: _NonEmpty
    backing_item_uuid: NotRequired[str | None]
    client_metadata: NotRequired[dict[str, Any] | None]


class _Dataset(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    dataset_hash: _NonEmpty
    title: str
    data_rows: list[_DataRow]


class _WrittenRow(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    data_row: _DataRow
    updated_fields: NotRequired[list[str]]


_DATASET: TypeAdapter[_Dataset] = TypeAdapter(_Dataset)
_WRITTEN_ROW: TypeAdapter[_WrittenRow] = TypeAdapter(_WrittenRow)


def _where(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return ".".join(str(p) for p in err.get("loc") or ()) or "the answer"


def _row(doc: _DataRow) -> LiveDataRow:
    return LiveDataRow(
        data_hash=doc["data_hash"],
        title=doc["data_title"],
        data_type=doc["data_type"],
        backing_item=doc.get("backing_item_uuid") or None,
        metadata=to_keys(doc.get("client_metadata") or {}),
    )


def read_dataset(data: object, request: str) -> LiveDataset:
    """A v1 ``dataset`` answer (fetched with ``fetch_client_metadata``) as a LiveDataset."""
    try:
        doc = _DATASET.validate_python(data)
    except ValidationError as exc:
        raise ProviderResponseError(
            f"{request}: Encord answered a dataset with an unusable {_where(exc)}"
        ) from None
    return LiveDataset(doc["dataset_hash"], doc["title"], [_row(r) for r in doc["data_rows"]])


def read_written_row(data: object, request: str) -> tuple[LiveDataRow, list[str] | None]:
    """A v1 ``datarow`` POST answer: the row as written and its ``updated_fields`` (``None`` if absent)."""
    try:
        doc = _WRITTEN_ROW.validate_python(data)
    except ValidationError as exc:
        raise ProviderResponseError(
            f"{request}: Encord answered a data row with an unusable {_where(exc)}"
        ) from None
    return _row(doc["data_row"]), doc.get("updated_fields")
