"""The live-state snapshot file: one format for seeding, emulator state, fixtures and ``reconciler snapshot``.

JSON form::

    {"format_version": "1", "schema": {...wire...}, "folders": [...], "items": [...]}

JSONL form (for large states), one object per line, each with a ``record`` field::

    {"record": "header", "format_version": "1"}
    {"record": "schema", "schema": {...wire...}}
    {"record": "folder", "uuid": ..., "parent": ..., "name": ...}
    {"record": "item", "uuid": ..., "folder": ..., "name": ..., "item_type": ..., "client_metadata": {...}}

An item may carry ``"parent_item": "<uuid>"``: it is a child of that image group, image sequence or DICOM series.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from reconciler.errors import ReconcilerError, SourceLocation
from reconciler.model import LiveFolder, LiveItem
from reconciler.schema import WireSchema, parse_wire_schema

__all__ = [
    "MAX_JSONL_LINE_BYTES",
    "MAX_JSON_SNAPSHOT_BYTES",
    "SNAPSHOT_FORMAT_VERSION",
    "Snapshot",
    "SnapshotError",
    "folder_paths",
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


class SnapshotError(ReconcilerError):
    """A snapshot file that cannot be read; the message starts with ``path:line``."""

    def __init__(self, message: str, location: SourceLocation) -> None:
        self.location = location
        super().__init__(f"{location}: {message}")


@dataclass
class Snapshot:
    """A whole live state in memory (schema in wire shape, folders, items)."""

    schema: WireSchema = field(default_factory=dict)
    folders: list[LiveFolder] = field(default_factory=list)
    items: list[LiveItem] = field(default_factory=list)


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
                obj = json.loads(line)
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
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(
            f"invalid JSON: {exc.msg}", SourceLocation(str(path), exc.lineno, exc.colno)
        ) from exc
    if not isinstance(doc, dict):
        raise SnapshotError("a snapshot must be a JSON object", SourceLocation(str(path), 1, 1))
    unknown = sorted(set(doc) - {"format_version", "schema", "folders", "items"})
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


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read a snapshot (``.json`` or ``.jsonl``). Raises SnapshotError with the location of the first problem."""
    p = Path(path)
    snap = Snapshot()
    raw_folders: list[tuple[str, str | None, str]] = []
    seen_header = False
    try:
        fh = p.open(encoding="utf-8")
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot: {exc.strerror}", SourceLocation(str(p))) from exc
    with fh:
        try:
            for lineno, rec in _records(p, fh):
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
    return snap


def _item_record(item: LiveItem) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "uuid": item.uuid,
        "folder": item.folder,
        "name": item.name,
        "item_type": item.item_type,
        "client_metadata": item.metadata,
    }
    if item.parent_item:
        rec["parent_item"] = item.parent_item
    return rec


def write_snapshot(
    path: str | os.PathLike[str],
    schema: WireSchema,
    folders: Iterable[LiveFolder],
    items: Iterable[LiveItem],
) -> None:
    """Write a snapshot; ``.jsonl`` paths get the JSONL form. Written to a temporary file, then renamed."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    folder_recs = [{"uuid": f.uuid, "parent": f.parent, "name": f.name} for f in folders]
    with tmp.open("w", encoding="utf-8") as fh:
        if p.suffix == ".jsonl":
            fh.write(json.dumps({"record": "header", "format_version": SNAPSHOT_FORMAT_VERSION}) + "\n")
            fh.write(json.dumps({"record": "schema", "schema": schema}, ensure_ascii=False) + "\n")
            for f in folder_recs:
                fh.write(json.dumps({"record": "folder", **f}, ensure_ascii=False) + "\n")
            for item in items:
                fh.write(json.dumps({"record": "item", **_item_record(item)}, ensure_ascii=False) + "\n")
        else:
            doc = {
                "format_version": SNAPSHOT_FORMAT_VERSION,
                "schema": schema,
                "folders": folder_recs,
                "items": [_item_record(i) for i in items],
            }
            json.dump(doc, fh, indent=1, ensure_ascii=False)
            fh.write("\n")
    os.replace(tmp, p)
