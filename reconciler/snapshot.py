"""The live-state snapshot file: one format for seeding, emulator state, fixtures and ``reconciler snapshot``.

JSON form::

    {"format_version": "1", "schema": {...wire...}, "folders": [...], "items": [...]}

JSONL form (for large states), one object per line, each with a ``record`` field::

    {"record": "header", "format_version": "1"}
    {"record": "schema", "schema": {...wire...}}
    {"record": "folder", "uuid": ..., "parent": ..., "name": ...}
    {"record": "item", "uuid": ..., "folder": ..., "name": ..., "item_type": ..., "client_metadata": {...}}

An item may carry ``"parent_item": "<uuid>"``: it is a child of that image group, image sequence or DICOM series.

Datasets (optional; Encord's legacy data units, SPEC §5)::

    "datasets": [{"hash": ..., "title": ..., "rows": [{"data_hash": ..., "title": ..., "data_type": "IMAGE",
                                                      "backing_item": "<item uuid>" | null,
                                                      "client_metadata": {...}}]}]

A row's custom metadata is its backing item's ``client_metadata`` (one value, read and written through either
API), so only a row with ``"backing_item": null`` carries ``client_metadata`` of its own. In the JSONL form a
dataset is a ``{"record": "dataset", "hash": ..., "title": ...}`` line followed by its
``{"record": "data_row", "dataset": <hash>, ...}`` lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reconciler.errors import SnapshotError, SourceLocation
from reconciler.fileio import write_file
from reconciler.frames import to_wire
from reconciler.jsonio import loads
from reconciler.model import LiveDataset, LiveFolder, LiveItem
from reconciler.schema import WireSchema, parse_wire_schema

__all__ = [
    "DATA_TYPES",
    "MAX_JSONL_LINE_BYTES",
    "MAX_JSON_SNAPSHOT_BYTES",
    "SNAPSHOT_FORMAT_VERSION",
    "Snapshot",
    "SnapshotDataRow",
    "SnapshotDataset",
    "SnapshotError",
    "folder_paths",
    "live_dataset_record",
    "read_snapshot",
    "write_snapshot",
]

SNAPSHOT_FORMAT_VERSION = "1"

#: Largest ``.json`` snapshot read (it is parsed whole); larger states belong in the streamed ``.jsonl`` form.
MAX_JSON_SNAPSHOT_BYTES = 512 * 1024 * 1024
#: Longest line of a ``.jsonl`` snapshot (one record).
MAX_JSONL_LINE_BYTES = 64 * 1024 * 1024

ITEM_TYPES = frozenset(
    {
        "video", "image", "group", "imageGroup", "imageSequence", "dicomFile", "dicomSeries",
        "audio", "timeseries", "nifti", "plainText", "pdf", "scene",
    }
)  # fmt: skip


#: The v1 ``data_type`` of a data row (upper case, as the v1 API answers it).
DATA_TYPES = frozenset(
    {
        "VIDEO", "IMG_GROUP", "DICOM", "IMAGE", "DICOM_STUDY", "NIFTI", "AUDIO", "TIME_SERIES",
        "PLAIN_TEXT", "PDF", "GROUP", "SCENE",
    }
)  # fmt: skip


@dataclass
class SnapshotDataRow:
    """One data unit of a dataset. ``metadata`` is its own only when ``backing_item`` is ``None``."""

    data_hash: str
    title: str
    data_type: str = "IMAGE"
    backing_item: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SnapshotDataset:
    """A dataset (Encord's legacy v1 grouping of data units) and its rows in order."""

    hash: str
    title: str
    rows: list[SnapshotDataRow] = field(default_factory=list)


@dataclass
class Snapshot:
    """A whole live state in memory (schema in wire shape, folders, items, datasets)."""

    schema: WireSchema = field(default_factory=dict)
    folders: list[LiveFolder] = field(default_factory=list)
    items: list[LiveItem] = field(default_factory=list)
    datasets: list[SnapshotDataset] = field(default_factory=list)


def live_dataset_record(ds: LiveDataset) -> SnapshotDataset:
    """A live dataset as a snapshot records it: a backed row's metadata is its item's, so it is left out."""
    return SnapshotDataset(
        ds.hash,
        ds.title,
        [
            SnapshotDataRow(
                r.data_hash, r.title, r.data_type, r.backing_item, {} if r.backing_item else r.metadata
            )
            for r in ds.rows
        ],
    )


def folder_paths(folders: Iterable[tuple[str, str | None, str]]) -> dict[str, str]:
    """Map folder uuid -> path from the root, given ``(uuid, parent, name)`` triples."""
    by_uuid = {u: (p, n) for u, p, n in folders}
    out: dict[str, str] = {}

    def path_of(uuid: str, depth: int = 0) -> str:
        if uuid in out:
            return out[uuid]
        if depth > 1000:
            raise ValueError("folder parents form a cycle")
        parent, name = by_uuid[uuid]
        result = name if parent is None or parent not in by_uuid else path_of(parent, depth + 1) + "/" + name
        out[uuid] = result
        return result

    for u in by_uuid:
        path_of(u)
    return out


def _str(obj: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: '{key}' must be a non-empty string")
    return value


def _records(path: Path, fh: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line, record) for both forms."""
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(iter(lambda: fh.readline(MAX_JSONL_LINE_BYTES + 1), ""), 1):
            if len(line) > MAX_JSONL_LINE_BYTES:
                raise SnapshotError(
                    f"line is longer than {MAX_JSONL_LINE_BYTES:,} characters (one record per line)",
                    SourceLocation(str(path), lineno),
                )
            if not line.strip():
                continue
            try:
                obj = loads(line)
            except json.JSONDecodeError as exc:
                raise SnapshotError(
                    f"invalid JSON: {exc.msg}", SourceLocation(str(path), lineno, exc.colno)
                ) from exc
            if not isinstance(obj, dict) or "record" not in obj:
                raise SnapshotError(
                    "each line must be an object with a 'record' field", SourceLocation(str(path), lineno)
                )
            yield lineno, obj
        return
    size = os.fstat(fh.fileno()).st_size
    if size > MAX_JSON_SNAPSHOT_BYTES:
        raise SnapshotError(
            f"snapshot is {size:,} bytes; a .json snapshot may be at most {MAX_JSON_SNAPSHOT_BYTES:,} "
            "(write large states in the streamed .jsonl form)",
            SourceLocation(str(path)),
        )
    text = fh.read(MAX_JSON_SNAPSHOT_BYTES + 1)
    if len(text) > MAX_JSON_SNAPSHOT_BYTES:  # not a regular file (a pipe, a device): its size was unknown
        raise SnapshotError(
            f"snapshot is larger than {MAX_JSON_SNAPSHOT_BYTES:,} characters", SourceLocation(str(path))
        )
    try:
        doc = loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(
            f"invalid JSON: {exc.msg}", SourceLocation(str(path), exc.lineno, exc.colno)
        ) from exc
    yield from _dict_records(doc, path)


def _dict_records(doc: object, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The records of the ``.json`` form (one object with ``schema``, ``folders``, ``items``, ``datasets``)."""
    if not isinstance(doc, dict):
        raise SnapshotError("a snapshot must be a JSON object", SourceLocation(str(path), 1, 1))
    unknown = sorted(set(doc) - {"format_version", "schema", "folders", "items", "datasets"})
    if unknown:
        raise SnapshotError(f"unknown field {unknown[0]!r}", SourceLocation(str(path), 1, 1))
    yield 1, {"record": "header", "format_version": doc.get("format_version")}
    yield 1, {"record": "schema", "schema": doc.get("schema")}
    for i, f in enumerate(doc.get("folders") or []):
        yield (
            1,
            {"record": "folder", "_index": f"folders[{i}]", **(f if isinstance(f, dict) else {"_bad": f})},
        )
    for i, it in enumerate(doc.get("items") or []):
        yield 1, {"record": "item", "_index": f"items[{i}]", **(it if isinstance(it, dict) else {"_bad": it})}
    datasets = doc.get("datasets")
    if datasets is None:
        return
    if not isinstance(datasets, list):
        raise SnapshotError("'datasets' must be a list", SourceLocation(str(path), 1, 1))
    for i, ds in enumerate(datasets):
        if not isinstance(ds, dict):
            yield 1, {"record": "dataset", "_index": f"datasets[{i}]", "_bad": ds}
            continue
        rows = ds.get("rows", [])
        head = {k: v for k, v in ds.items() if k != "rows"}
        yield 1, {"record": "dataset", "_index": f"datasets[{i}]", **head}
        if not isinstance(rows, list):
            yield 1, {"record": "data_row", "_index": f"datasets[{i}].rows", "_bad": rows}
            continue
        for j, row in enumerate(rows):
            where = f"datasets[{i}].rows[{j}]"
            body = row if isinstance(row, dict) else {"_bad": row}
            yield 1, {"record": "data_row", "_index": where, "dataset": ds.get("hash"), **body}


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read a snapshot (``.json`` or ``.jsonl``). Raises SnapshotError with the location of the first problem."""
    p = Path(path)
    try:
        fh = p.open(encoding="utf-8")
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot: {exc.strerror}", SourceLocation(str(p))) from exc
    with fh:
        return _build(p, _records(p, fh))


def snapshot_from_dict(doc: Mapping[str, Any], name: str = "<snapshot>") -> Snapshot:
    """A snapshot given as the parsed ``.json`` form (``{"format_version": "1", "schema": ..., "folders": [...],
    "items": [...]}``), checked as :func:`read_snapshot` checks a file; errors are located at ``name``."""
    return _build(Path(name), _dict_records(dict(doc), Path(name)))


def _build(p: Path, records: Iterator[tuple[int, dict[str, Any]]]) -> Snapshot:
    snap = Snapshot()
    raw_folders: list[tuple[str, str | None, str]] = []
    datasets: dict[str, SnapshotDataset] = {}
    row_hashes: set[str] = set()
    backed: list[tuple[str, int, str]] = []
    seen_header = False
    try:
        for lineno, rec in records:
            where = rec.pop("_index", f"line {lineno}")
            loc = SourceLocation(str(p), lineno)
            kind = rec.get("record")
            try:
                if "_bad" in rec:
                    raise ValueError(f"{where}: must be an object")
                if kind == "header":
                    if rec.get("format_version") != SNAPSHOT_FORMAT_VERSION:
                        raise ValueError(
                            f"unsupported snapshot format_version {rec.get('format_version')!r} "
                            f"(this reconciler reads {SNAPSHOT_FORMAT_VERSION!r})"
                        )
                    seen_header = True
                elif kind == "schema":
                    parse_wire_schema(rec.get("schema"))
                    snap.schema = dict(rec.get("schema") or {})
                elif kind == "folder":
                    uuid = _str(rec, "uuid", where)
                    name = _str(rec, "name", where)
                    parent = _str(rec, "parent", where, optional=True)
                    assert uuid is not None and name is not None
                    raw_folders.append((uuid, parent, name))
                elif kind == "item":
                    uuid = _str(rec, "uuid", where)
                    folder = _str(rec, "folder", where)
                    name = _str(rec, "name", where)
                    item_type = rec.get("item_type", "image")
                    if not isinstance(item_type, str) or item_type not in ITEM_TYPES:
                        raise ValueError(f"{where}: unknown item_type {item_type!r}")
                    md = rec.get("client_metadata") or {}
                    if not isinstance(md, dict):
                        raise ValueError(f"{where}: 'client_metadata' must be an object")
                    parent_item = _str(rec, "parent_item", where, optional=True)
                    assert uuid is not None and folder is not None and name is not None
                    snap.items.append(LiveItem(uuid, folder, name, item_type, md, parent_item))
                elif kind == "dataset":
                    _unknown_fields(rec, {"record", "hash", "title", "rows"}, where)
                    ds_hash = _str(rec, "hash", where)
                    title = _str(rec, "title", where)
                    assert ds_hash is not None and title is not None
                    if ds_hash in datasets:
                        raise ValueError(f"{where}: duplicate dataset hash {ds_hash!r}")
                    datasets[ds_hash] = SnapshotDataset(ds_hash, title)
                    snap.datasets.append(datasets[ds_hash])
                elif kind == "data_row":
                    row, ds_hash = _data_row(rec, where)
                    if ds_hash not in datasets:
                        raise ValueError(
                            f"{where}: unknown dataset {ds_hash!r} (its dataset record comes first)"
                        )
                    if row.data_hash in row_hashes:
                        raise ValueError(f"{where}: duplicate data_hash {row.data_hash!r}")
                    row_hashes.add(row.data_hash)
                    datasets[ds_hash].rows.append(row)
                    if row.backing_item is not None:
                        backed.append((where, lineno, row.backing_item))
                else:
                    raise ValueError(f"unknown record {kind!r}")
            except ValueError as exc:
                raise SnapshotError(str(exc), loc) from exc
    except UnicodeDecodeError as exc:
        raise SnapshotError("not UTF-8 text", SourceLocation(str(p))) from exc
    if not seen_header:
        raise SnapshotError("missing format_version header", SourceLocation(str(p), 1))
    try:
        paths = folder_paths(raw_folders)
    except (KeyError, ValueError) as exc:
        raise SnapshotError(f"folders: {exc}", SourceLocation(str(p))) from exc
    snap.folders = [LiveFolder(u, par, n, paths[u]) for u, par, n in raw_folders]
    known = set(paths)
    for item in snap.items:
        if item.folder not in known:
            raise SnapshotError(f"item {item.uuid}: unknown folder {item.folder}", SourceLocation(str(p)))
    item_uuids = {item.uuid.lower() for item in snap.items}
    for where, lineno, backing in backed:
        if backing.lower() not in item_uuids:
            raise SnapshotError(
                f"{where}: backing_item {backing} is not an item of this snapshot",
                SourceLocation(str(p), lineno),
            )
    return snap


def _unknown_fields(rec: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(rec) - known)
    if unknown:
        raise ValueError(
            f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known - {'record'}))})"
        )


def _data_row(rec: dict[str, Any], where: str) -> tuple[SnapshotDataRow, str]:
    """A validated data row and the hash of its dataset. Raises ValueError naming ``where``."""
    known = {"record", "dataset", "data_hash", "title", "data_type", "backing_item", "client_metadata"}
    _unknown_fields(rec, known, where)
    ds_hash = _str(rec, "dataset", where)
    data_hash = _str(rec, "data_hash", where)
    title = _str(rec, "title", where)
    assert ds_hash is not None and data_hash is not None and title is not None
    data_type = rec.get("data_type", "IMAGE")
    if not isinstance(data_type, str) or data_type not in DATA_TYPES:
        raise ValueError(f"{where}: unknown data_type {data_type!r} (one of {', '.join(sorted(DATA_TYPES))})")
    backing = _str(rec, "backing_item", where, optional=True)
    md = rec.get("client_metadata")
    if backing is not None and md is not None:
        raise ValueError(
            f"{where}: a row with a backing_item has no client_metadata of its own "
            "(its metadata is the backing item's client_metadata)"
        )
    if md is not None and not isinstance(md, dict):
        raise ValueError(f"{where}: 'client_metadata' must be an object")
    return SnapshotDataRow(data_hash, title, data_type, backing, dict(md or {})), ds_hash


def _row_record(row: SnapshotDataRow) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "data_hash": row.data_hash,
        "title": row.title,
        "data_type": row.data_type,
        "backing_item": row.backing_item,
    }
    if row.backing_item is None:
        rec["client_metadata"] = row.metadata
    return rec


def _item_record(item: LiveItem) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "uuid": item.uuid,
        "folder": item.folder,
        "name": item.name,
        "item_type": item.item_type,
        "client_metadata": to_wire(item.metadata),  # engine keys -> wire (per-frame values under $encord)
    }
    if item.parent_item:
        rec["parent_item"] = item.parent_item
    return rec


def write_snapshot(
    path: str | os.PathLike[str],
    schema: WireSchema,
    folders: Iterable[LiveFolder],
    items: Iterable[LiveItem],
    datasets: Iterable[SnapshotDataset] = (),
) -> None:
    """Write a snapshot; ``.jsonl`` paths get the JSONL form (``reconciler.fileio``). Raises OutputError.

    The ``datasets`` section is written only when there are datasets.
    """
    dataset_list = list(datasets)
    p = Path(path)
    folder_recs = [{"uuid": f.uuid, "parent": f.parent, "name": f.name} for f in folders]

    def write(fh: IO[str]) -> None:
        if p.suffix == ".jsonl":
            fh.write(json.dumps({"record": "header", "format_version": SNAPSHOT_FORMAT_VERSION}) + "\n")
            fh.write(json.dumps({"record": "schema", "schema": schema}, ensure_ascii=False) + "\n")
            for f in folder_recs:
                fh.write(json.dumps({"record": "folder", **f}, ensure_ascii=False) + "\n")
            for item in items:
                fh.write(json.dumps({"record": "item", **_item_record(item)}, ensure_ascii=False) + "\n")
            for ds in dataset_list:
                fh.write(
                    json.dumps({"record": "dataset", "hash": ds.hash, "title": ds.title}, ensure_ascii=False)
                )
                fh.write("\n")
                for row in ds.rows:
                    line = {"record": "data_row", "dataset": ds.hash, **_row_record(row)}
                    fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            doc = {
                "format_version": SNAPSHOT_FORMAT_VERSION,
                "schema": schema,
                "folders": folder_recs,
                "items": [_item_record(i) for i in items],
            }
            if dataset_list:
                doc["datasets"] = [
                    {"hash": d.hash, "title": d.title, "rows": [_row_record(r) for r in d.rows]}
                    for d in dataset_list
                ]
            json.dump(doc, fh, indent=1, ensure_ascii=False)
            fh.write("\n")

    write_file(p, write, what="snapshot")
