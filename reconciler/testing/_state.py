"""The emulator's in-memory live state: schema, folders, items, and cached sorted listings.

Not thread-safe on its own: the emulator holds one lock around every call. Items are kept in a dict by
uuid; each folder keeps the uuids of its top-level items (``parent_item`` is null) and each image group,
image sequence or DICOM series keeps its children in snapshot order. Sorted listings are computed once per
(folder, filters, order) and cached until a write changes names or membership; metadata writes never do.
"""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from reconciler.model import LiveFolder, LiveItem
from reconciler.schema import WireSchema, parse_wire_schema
from reconciler.snapshot import ITEM_TYPES, Snapshot, SnapshotDataRow, SnapshotDataset, folder_paths

__all__ = ["DataRowRecord", "DatasetRecord", "ItemRecord", "ListingKey", "State", "canonical_uuid"]

#: How many distinct sorted listings are kept (least recently used are dropped first).
_LISTING_CACHE_SIZE = 64


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ENCODER = json.JSONEncoder(allow_nan=False)


def canonical_uuid(text: str) -> str:
    """``str(UUID(text))``: lowercase and hyphenated. Raises ``ValueError`` for anything else."""
    if not isinstance(text, str):
        raise ValueError(f"not a UUID: {text!r}")
    if _CANONICAL_UUID.fullmatch(text):
        return text
    return str(uuidlib.UUID(text))


@dataclass
class FolderRecord:
    """One storage folder; ``seq`` is its position in the loaded snapshot (the createdAt order)."""

    uuid: str
    parent: str | None
    name: str
    seq: int


@dataclass
class ItemRecord:
    """One storage item. ``metadata_json`` is the wire string (``json.dumps`` of the metadata dict).

    ``seq`` is its position in the loaded snapshot (the createdAt order); ``edited_at`` is the ISO time of
    the last write, or None when never written (lastEditedAt is then createdAt).
    """

    uuid: str
    folder: str
    name: str
    item_type: str
    metadata_json: str
    parent_item: str | None
    seq: int
    edited_at: str | None = None
    description: str = ""


@dataclass
class DataRowRecord:
    """One data unit of a dataset. With a ``backing_item`` its metadata IS that item's (one shared value);
    ``metadata_json`` is used only for rows without one. ``seq`` orders ``created_at``."""

    data_hash: str
    title: str
    data_type: str
    backing_item: str | None
    metadata_json: str
    seq: int
    edited_at: str | None = None


@dataclass
class DatasetRecord:
    hash: str
    title: str
    rows: list[DataRowRecord]


@dataclass(frozen=True)
class ListingKey:
    """What identifies a sorted, filtered listing of items (everything but the page)."""

    folder: str | None  # None: every folder (org-wide search)
    recursive: bool
    search: str | None
    item_types: tuple[str, ...]
    in_dataset: bool | None
    order: str  # "name" | "createdAt"
    desc: bool


def dumps_metadata(metadata: Mapping[str, Any]) -> str:
    """The wire string of a metadata dict. Raises ``ValueError`` for NaN/Infinity or non-JSON values."""
    try:
        return _ENCODER.encode(metadata)
    except TypeError as exc:
        raise ValueError(f"metadata is not JSON: {exc}") from exc


class State:
    """The whole live state of one emulated organisation."""

    def __init__(self, created_base: datetime | None = None) -> None:
        #: createdAt of the first folder; each later folder or item is one millisecond later.
        self.created_base = (created_base or datetime.now(timezone.utc)).replace(microsecond=0)
        self._created_at: dict[int, str] = {}
        #: The wire schema, or ``None`` when none was ever set (the GET answers ``null``).
        self.schema: WireSchema | None = None
        self.folders: dict[str, FolderRecord] = {}
        self.subfolders: dict[str | None, list[str]] = {None: []}
        self.items: dict[str, ItemRecord] = {}
        self.top_items: dict[str, list[str]] = {}
        self.children: dict[str, list[str]] = {}
        self.datasets: dict[str, DatasetRecord] = {}
        #: data hash -> (dataset hash, row)
        self.rows: dict[str, tuple[str, DataRowRecord]] = {}
        #: item uuid -> how many data rows it backs (``backedDataUnitsCount``)
        self.backed: dict[str, int] = {}
        self._listings: OrderedDict[ListingKey, list[str]] = OrderedDict()
        self._folder_listings: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()

    # ---- loading and dumping -------------------------------------------------------------------------

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, *, now: datetime | None = None) -> State:
        """Build a state from a snapshot. UUIDs are normalised to lowercase.

        ``createdAt`` is ``now`` plus one millisecond per position in the snapshot, so ordering by
        ``createdAt`` is snapshot order.

        Raises:
            ValueError: duplicate or malformed UUIDs, unknown parents, cycles, unknown item types,
                non-object or non-JSON metadata, an invalid schema.
        """
        state = cls(now)
        if snapshot.schema:
            parse_wire_schema(snapshot.schema)
            try:  # NaN and infinities refused, as in metadata: no answer can hold them
                state.schema = json.loads(_ENCODER.encode(snapshot.schema))
            except ValueError as exc:
                raise ValueError(f"schema: {exc}") from None
        pending: list[tuple[str, str | None, str]] = []
        for seq, folder in enumerate(snapshot.folders):
            fid = canonical_uuid(folder.uuid)
            if fid in state.folders:
                raise ValueError(f"duplicate folder uuid {fid}")
            parent = canonical_uuid(folder.parent) if folder.parent is not None else None
            if not isinstance(folder.name, str) or not folder.name:
                raise ValueError(f"folder {fid}: name must be a non-empty string")
            state.folders[fid] = FolderRecord(fid, parent, folder.name, seq)
            pending.append((fid, parent, folder.name))
        for fid, parent, _ in pending:
            if parent is not None and parent not in state.folders:
                raise ValueError(f"folder {fid}: unknown parent folder {parent}")
            state.subfolders.setdefault(parent, []).append(fid)
            state.top_items.setdefault(fid, [])
        for fid in state.folders:
            seen = {fid}
            cur = state.folders[fid].parent
            while cur is not None:
                if cur in seen:
                    raise ValueError(f"folder {fid}: parents form a cycle")
                seen.add(cur)
                cur = state.folders[cur].parent
        offset = len(snapshot.folders)
        for seq, item in enumerate(snapshot.items, start=offset):
            iid = canonical_uuid(item.uuid)
            if iid in state.items:
                raise ValueError(f"duplicate item uuid {iid}")
            folder_id = item.folder if item.folder in state.folders else canonical_uuid(item.folder)
            if folder_id not in state.folders:
                raise ValueError(f"item {iid}: unknown folder {folder_id}")
            if item.item_type not in ITEM_TYPES:
                raise ValueError(f"item {iid}: unknown item_type {item.item_type!r}")
            if not isinstance(item.name, str) or not item.name:
                raise ValueError(f"item {iid}: name must be a non-empty string")
            if not isinstance(item.metadata, dict):
                raise ValueError(f"item {iid}: client_metadata must be an object")
            parent_item = canonical_uuid(item.parent_item) if item.parent_item else None
            if parent_item == iid:
                raise ValueError(f"item {iid}: an item cannot be its own parent_item")
            state.items[iid] = ItemRecord(
                iid, folder_id, item.name, item.item_type, dumps_metadata(item.metadata), parent_item, seq
            )
        for rec in state.items.values():
            if rec.parent_item is None:
                state.top_items[rec.folder].append(rec.uuid)
            elif rec.parent_item not in state.items:
                raise ValueError(f"item {rec.uuid}: unknown parent_item {rec.parent_item}")
            else:
                state.children.setdefault(rec.parent_item, []).append(rec.uuid)
        seq = offset + len(snapshot.items)
        for ds in snapshot.datasets:
            if not isinstance(ds.hash, str) or not ds.hash or ds.hash in state.datasets:
                raise ValueError(f"dataset {ds.hash!r}: missing or duplicate hash")
            record = DatasetRecord(ds.hash, ds.title, [])
            state.datasets[ds.hash] = record
            for row in ds.rows:
                if row.data_hash in state.rows:
                    raise ValueError(f"dataset {ds.hash}: duplicate data_hash {row.data_hash!r}")
                backing = canonical_uuid(row.backing_item) if row.backing_item else None
                if backing is not None and backing not in state.items:
                    raise ValueError(f"data row {row.data_hash}: unknown backing_item {backing}")
                if backing is not None:
                    state.backed[backing] = state.backed.get(backing, 0) + 1
                own = dumps_metadata(row.metadata) if backing is None else "{}"
                rec_row = DataRowRecord(row.data_hash, row.title, row.data_type, backing, own, seq)
                seq += 1
                record.rows.append(rec_row)
                state.rows[row.data_hash] = (ds.hash, rec_row)
        return state

    def _snapshot_datasets(self) -> list[SnapshotDataset]:
        return [
            SnapshotDataset(
                d.hash,
                d.title,
                [
                    SnapshotDataRow(
                        r.data_hash,
                        r.title,
                        r.data_type,
                        r.backing_item,
                        json.loads(r.metadata_json) if r.backing_item is None else {},
                    )
                    for r in d.rows
                ],
            )
            for d in self.datasets.values()
        ]

    def row_metadata_json(self, row: DataRowRecord) -> str:
        """The one metadata value of a row: its backing item's, or its own."""
        if row.backing_item is not None:
            return self.items[row.backing_item].metadata_json
        return row.metadata_json

    def update_row_metadata(self, row: DataRowRecord, metadata_json: str, now: str) -> None:
        """Replace a row's metadata wholesale; with a backing item, that item's metadata is written."""
        if row.backing_item is not None:
            self.update_item(
                row.backing_item, metadata_json=metadata_json, name=None, description=None, now=now
            )
        else:
            row.metadata_json = metadata_json
        row.edited_at = now

    def to_snapshot(self) -> Snapshot:
        """A deep copy of the state as a Snapshot (folders and items in insertion order)."""
        paths = folder_paths((f.uuid, f.parent, f.name) for f in self.folders.values())
        return Snapshot(
            schema=json.loads(json.dumps(self.schema)) if self.schema else {},
            folders=[LiveFolder(f.uuid, f.parent, f.name, paths[f.uuid]) for f in self.folders.values()],
            items=[
                LiveItem(i.uuid, i.folder, i.name, i.item_type, json.loads(i.metadata_json), i.parent_item)
                for i in self.items.values()
            ],
            datasets=self._snapshot_datasets(),
        )

    def to_json(self) -> dict[str, Any]:
        """The state in the snapshot file's JSON form (SPEC §5)."""
        items: list[dict[str, Any]] = []
        for i in self.items.values():
            rec: dict[str, Any] = {
                "uuid": i.uuid,
                "folder": i.folder,
                "name": i.name,
                "item_type": i.item_type,
                "client_metadata": json.loads(i.metadata_json),
            }
            if i.parent_item:
                rec["parent_item"] = i.parent_item
            items.append(rec)
        doc: dict[str, Any] = {
            "format_version": "1",
            "schema": self.schema or {},
            "folders": [{"uuid": f.uuid, "parent": f.parent, "name": f.name} for f in self.folders.values()],
            "items": items,
        }
        if self.datasets:
            doc["datasets"] = [
                {
                    "hash": d.hash,
                    "title": d.title,
                    "rows": [
                        {
                            "data_hash": r.data_hash,
                            "title": r.title,
                            "data_type": r.data_type,
                            "backing_item": r.backing_item,
                            **(
                                {"client_metadata": json.loads(r.metadata_json)}
                                if r.backing_item is None
                                else {}
                            ),
                        }
                        for r in d.rows
                    ],
                }
                for d in self.datasets.values()
            ]
        return doc

    def created_at(self, seq: int) -> str:
        """The ISO 8601 createdAt of the folder or item at position ``seq`` (each written once: every answer
        that holds an item repeats it)."""
        text = self._created_at.get(seq)
        if text is None:
            text = self._created_at[seq] = (self.created_base + timedelta(milliseconds=seq)).isoformat()
        return text

    # ---- folders -------------------------------------------------------------------------------------

    def path_to_root(self, folder_id: str) -> list[FolderRecord]:
        """The folder itself, then its parent, up to the top-level folder."""
        out: list[FolderRecord] = []
        cur: str | None = folder_id
        while cur is not None:
            rec = self.folders[cur]
            out.append(rec)
            cur = rec.parent
        return out

    def descendants(self, folder_id: str | None) -> list[str]:
        """Every folder below ``folder_id`` (``None``: every folder), depth first, in insertion order."""
        out: list[str] = []
        stack = list(reversed(self.subfolders.get(folder_id, [])))
        while stack:
            fid = stack.pop()
            out.append(fid)
            stack.extend(reversed(self.subfolders.get(fid, [])))
        return out

    def list_folders(
        self, parent: str | None, *, recursive: bool, search: str | None, order: str, desc: bool,
        dataset_synced: bool | None,
    ) -> list[str]:  # fmt: skip
        """Folder uuids under ``parent`` (direct children, or all descendants), filtered and sorted."""
        key = (parent, recursive, search, order, desc, dataset_synced)
        cached = self._folder_listings.get(key)
        if cached is not None:
            self._folder_listings.move_to_end(key)
            return cached
        ids = self.descendants(parent) if recursive else list(self.subfolders.get(parent, []))
        if search:
            needle = search.casefold()
            ids = [f for f in ids if needle in self.folders[f].name.casefold()]
        if dataset_synced:  # no emulated folder is mirrored by a dataset
            ids = []
        if order == "createdAt":
            ids.sort(key=lambda f: (self.folders[f].seq, f), reverse=desc)
        else:
            ids.sort(key=lambda f: (self.folders[f].name, f), reverse=desc)
        self._folder_listings[key] = ids
        if len(self._folder_listings) > _LISTING_CACHE_SIZE:
            self._folder_listings.popitem(last=False)
        return ids

    # ---- items ---------------------------------------------------------------------------------------

    def list_items(self, key: ListingKey) -> list[str]:
        """Top-level item uuids for a listing, sorted; cached until names or membership change."""
        cached = self._listings.get(key)
        if cached is not None:
            self._listings.move_to_end(key)
            return cached
        if key.folder is None:
            folders = list(self.folders)
        elif key.recursive:
            folders = [key.folder, *self.descendants(key.folder)]
        else:
            folders = [key.folder]
        ids: list[str] = []
        for fid in folders:
            ids.extend(self.top_items.get(fid, ()))
        items = self.items
        if key.search:
            needle = key.search.casefold()
            ids = [i for i in ids if needle in items[i].name.casefold()]
        if key.item_types:
            wanted = frozenset(key.item_types)
            ids = [i for i in ids if items[i].item_type in wanted]
        if key.in_dataset is not None:  # items that back a data row are "in a dataset"
            ids = [i for i in ids if (self.backed.get(i, 0) > 0) == key.in_dataset]
        if key.order == "createdAt":
            ids.sort(key=lambda i: (items[i].seq, i), reverse=key.desc)
        else:
            ids.sort(key=lambda i: (items[i].name, i), reverse=key.desc)
        self._listings[key] = ids
        if len(self._listings) > _LISTING_CACHE_SIZE:
            self._listings.popitem(last=False)
        return ids

    def with_children(self, ids: Sequence[str]) -> list[str]:
        """A listing with each group's child items right after the group (the ``children_in_listings`` mode)."""
        out: list[str] = []
        for i in ids:
            out.append(i)
            out.extend(self.children.get(i, ()))
        return out

    def merged_metadata(self, item_id: str, metadata_json: str) -> str:
        """The stored metadata with ``metadata_json``'s keys merged in (the ``patch_merges`` mode)."""
        merged = {**json.loads(self.items[item_id].metadata_json), **json.loads(metadata_json)}
        return dumps_metadata(merged)

    def unknown_items(self, uuids: Iterable[str]) -> list[str]:
        return [u for u in uuids if u not in self.items]

    def update_item(
        self, item_id: str, *, metadata_json: str | None, name: str | None, description: str | None,
        now: str,
    ) -> ItemRecord:  # fmt: skip
        """Apply one validated patch: metadata replaced wholesale; a new name drops the cached listings."""
        rec = self.items[item_id]
        if metadata_json is not None:
            rec.metadata_json = metadata_json
        if description is not None:
            rec.description = description
        if name is not None and name != rec.name:
            rec.name = name
            self._listings.clear()
        rec.edited_at = now
        return rec

    def set_schema(self, schema: WireSchema) -> None:
        self.schema = schema

    def child_items(self, item_id: str) -> Sequence[str]:
        return self.children.get(item_id, ())
