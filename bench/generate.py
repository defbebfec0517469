"""Synthetic workloads for the benchmarks: a live-state snapshot, a bulk source and the manifests that use it.

``N`` files in one folder (or spread over ``--folders F``, one manifest and source per folder), ``K`` metadata keys cycling through every schema type, and a deterministic share
of the files whose desired value differs from the live one (one key each). Everything is a pure function
of the arguments, so two runs write identical files.

Run (from the repository root): ``.venv/bin/python -m bench.generate --files 100000 --out /tmp/bench-100k`` writes::

    OUT/live.jsonl                   the live state (snapshot, JSONL form; ``--snapshot-format json`` too)
    OUT/manifests/workspace.yaml     sqlite provider at OUT/manifests/.reconciler/live.db
    OUT/manifests/schema.yaml        the K keys
    OUT/manifests/files.yaml         FileMetadata (merge) over the folder, ``source: data/desired.jsonl``
    OUT/manifests/data/desired.jsonl one row per file with all K keys (``--source-format csv``: desired.csv)
"""

from __future__ import annotations

import argparse
import csv
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "TYPES",
    "BenchSpec",
    "Generated",
    "desired_metadata",
    "file_name",
    "file_uuid",
    "folder_name",
    "folder_of",
    "folder_uuid",
    "generate",
    "is_changed",
    "key_names",
    "live_metadata",
    "main",
]

#: The schema types the keys cycle through (every type a manifest can declare).
TYPES: tuple[str, ...] = (
    "varchar",
    "number",
    "boolean",
    "datetime",
    "uuid",
    "text",
    "enum",
    "embedding",
    "geospatial",
)
ENUM_VALUES = ("alpha", "beta", "gamma", "delta")
EMBEDDING_SIZE = 8
_NS = uuid.UUID("b3c1f6a0-5d7e-4c2b-9a81-2f0e6d4c8b17")


@dataclass(frozen=True)
class BenchSpec:
    """What to generate: ``files`` files with ``keys`` keys each; ``changed`` is the share to change (0..1)."""

    files: int
    keys: int = 10
    changed: float = 0.01
    folder: str = "bench"
    seed: int = 7
    #: Folders the files are spread over (file ``i`` in folder ``i % folders``); 1: one folder named ``folder``.
    folders: int = 1
    source_format: str = "jsonl"  # jsonl | csv
    snapshot_format: str = "jsonl"  # jsonl | json
    #: JSONL rows as Python's ``json.dumps`` writes them (``python``: ``", "`` and ``": "``) or ``compact``.
    source_style: str = "python"


@dataclass(frozen=True)
class Generated:
    """Paths written by :func:`generate`, and how many files the desired state changes."""

    root: Path
    snapshot: Path
    manifests: Path
    source: Path
    database: Path
    changed_files: int


def key_names(k: int) -> list[tuple[str, str]]:
    """``(key name, type)`` for ``k`` keys: ``bench.00.varchar``, ``bench.01.number``, ..."""
    return [(f"bench.{i:02d}.{TYPES[i % len(TYPES)]}", TYPES[i % len(TYPES)]) for i in range(k)]


def folder_name(spec: BenchSpec, f: int = 0) -> str:
    """Folder ``f``'s name: ``spec.folder`` with one folder, ``bench-00``, ``bench-01``, ... with several."""
    return spec.folder if spec.folders <= 1 else f"{spec.folder}-{f:02d}"


def folder_uuid(spec: BenchSpec, f: int = 0) -> str:
    return str(uuid.uuid5(_NS, f"folder:{folder_name(spec, f)}:{spec.seed}"))


def folder_of(spec: BenchSpec, i: int) -> int:
    """The folder (0-based) file ``i`` is in."""
    return i % spec.folders if spec.folders > 1 else 0


def file_uuid(spec: BenchSpec, i: int) -> str:
    """A stable, random-looking UUID for file ``i`` (cheaper than uuid5 for a million files)."""
    high = uuid.uuid5(_NS, f"file:{spec.seed}").int >> 64
    mixed = (i * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
    return str(uuid.UUID(int=(high << 64) | mixed))


def file_name(i: int) -> str:
    return f"f{i:07d}.jpg"


def is_changed(spec: BenchSpec, i: int) -> bool:
    """Whether file ``i`` gets a new value: a deterministic, evenly spread ``spec.changed`` share."""
    if spec.changed <= 0:
        return False
    if spec.changed >= 1:
        return True
    return (i * 2654435761 + spec.seed) % 1_000_003 < spec.changed * 1_000_003


def _value(ty: str, i: int, k: int, version: int) -> Any:
    """The value of key ``k`` of type ``ty`` on file ``i``; ``version`` 1 is the changed value."""
    n = i * 31 + k * 7 + version * 1_000_003
    if ty == "varchar":
        return f"value-{n % 100_000:05d}" + ("-new" if version else "")
    if ty == "number":
        return (n % 100_000) / 8 if k % 2 else n % 1_000_000
    if ty == "boolean":
        return (i + k + version) % 2 == 0
    if ty == "datetime":
        return f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z"
    if ty == "uuid":
        return str(uuid.UUID(int=(n * 0x9E3779B97F4A7C15) & ((1 << 128) - 1)))
    if ty == "text":
        return f"Frame {n} of camera {k}: clear road, light traffic" + (" (revised)" if version else "")
    if ty == "enum":
        return ENUM_VALUES[(i + k + version) % len(ENUM_VALUES)]
    if ty == "embedding":
        return [((n + j) % 256) / 64 for j in range(EMBEDDING_SIZE)]
    if ty == "geospatial":
        return {"latitude": (n % 18_000) / 200 - 45, "longitude": (n % 36_000) / 200 - 90}
    raise AssertionError(ty)


def live_metadata(spec: BenchSpec, i: int, keys: list[tuple[str, str]]) -> dict[str, Any]:
    return {name: _value(ty, i, k, 0) for k, (name, ty) in enumerate(keys)}


def desired_metadata(spec: BenchSpec, i: int, keys: list[tuple[str, str]]) -> dict[str, Any]:
    """The live dict, with key ``i % K`` changed when file ``i`` is in the changed share."""
    md = live_metadata(spec, i, keys)
    if is_changed(spec, i) and keys:
        k = i % len(keys)
        name, ty = keys[k]
        md[name] = _value(ty, i, k, 1)
    return md


def _schema_wire(keys: list[tuple[str, str]]) -> dict[str, Any]:
    wire: dict[str, Any] = {}
    for name, ty in keys:
        if ty == "enum":
            wire[name] = {"ty": "enum", "values": sorted(ENUM_VALUES)}
        elif ty == "embedding":
            wire[name] = {"ty": "embedding", "size": EMBEDDING_SIZE, "api": None}
        elif ty == "geospatial":
            wire[name] = {"ty": "geospatial"}
        else:
            wire[name] = {"ty": "variant", "hint": ty}
    return wire


def _items(spec: BenchSpec, keys: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    folders = [folder_uuid(spec, f) for f in range(max(1, spec.folders))]
    for i in range(spec.files):
        yield {
            "uuid": file_uuid(spec, i),
            "folder": folders[folder_of(spec, i)],
            "name": file_name(i),
            "item_type": "image",
            "client_metadata": live_metadata(spec, i, keys),
        }


def write_snapshot(path: Path, spec: BenchSpec) -> None:
    """The live state: the schema, one folder, ``spec.files`` items (JSONL streams; JSON for small ones)."""
    keys = key_names(spec.keys)
    folders = [
        {"uuid": folder_uuid(spec, f), "parent": None, "name": folder_name(spec, f)}
        for f in range(max(1, spec.folders))
    ]
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with path.open("w", encoding="utf-8") as fh:
        if spec.snapshot_format == "json":
            doc = {
                "format_version": "1",
                "schema": _schema_wire(keys),
                "folders": folders,
                "items": list(_items(spec, keys)),
            }
            fh.write(dumps(doc) + "\n")
            return
        fh.write(dumps({"record": "header", "format_version": "1"}) + "\n")
        fh.write(dumps({"record": "schema", "schema": _schema_wire(keys)}) + "\n")
        for folder in folders:
            fh.write(dumps({"record": "folder", **folder}) + "\n")
        for item in _items(spec, keys):
            fh.write(dumps({"record": "item", **item}) + "\n")


def _csv_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value) if not isinstance(value, float) else repr(value)


def write_source(path: Path, spec: BenchSpec, folder: int | None = None) -> int:
    """One desired row per file (all keys) of ``folder`` (``None``: every file); returns how many change."""
    keys = key_names(spec.keys)
    changed = 0
    separators = (",", ":") if spec.source_style == "compact" else (", ", ": ")
    dumps = json.JSONEncoder(ensure_ascii=False, separators=separators).encode
    step = max(1, spec.folders) if folder is not None else 1
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n") if spec.source_format == "csv" else None
        if writer is not None:
            writer.writerow(["name", *(name for name, _ in keys)])
        for i in range(folder or 0, spec.files, step):
            md = desired_metadata(spec, i, keys)
            changed += is_changed(spec, i) and bool(keys)
            if writer is not None:
                writer.writerow([file_name(i), *(_csv_cell(md[name]) for name, _ in keys)])
            else:
                fh.write(dumps({"name": file_name(i), "metadata": md}) + "\n")
    return changed


def _schema_yaml(keys: list[tuple[str, str]]) -> str:
    lines = ["apiVersion: reconciler/v1", "kind: MetadataSchema", "keys:"]
    for name, ty in keys:
        if ty == "enum":
            lines.append(f"  {name}: {{type: enum, values: [{', '.join(ENUM_VALUES)}]}}")
        elif ty == "embedding":
            lines.append(f"  {name}: {{type: embedding, size: {EMBEDDING_SIZE}}}")
        else:
            lines.append(f"  {name}: {ty}")
    return "\n".join(lines) + "\n"


def write_manifests(manifests: Path, spec: BenchSpec, source_name: str) -> None:
    """The Workspace, the schema, and one FileMetadata per folder (``files.yaml``, or ``files-NN.yaml``)."""
    (manifests / "data").mkdir(parents=True, exist_ok=True)
    (manifests / "workspace.yaml").write_text(
        "apiVersion: reconciler/v1\n"
        "kind: Workspace\n"
        "provider:\n"
        "  type: sqlite\n"
        "  path: .reconciler/live.db\n"
        "settings:\n"
        "  parallelism: 4\n"
        "  undeclared_keys: warn\n",
        encoding="utf-8",
    )
    (manifests / "schema.yaml").write_text(_schema_yaml(key_names(spec.keys)), encoding="utf-8")
    for f in range(max(1, spec.folders)):
        stem = "files" if spec.folders <= 1 else f"files-{f:02d}"
        name = source_name if spec.folders <= 1 else _per_folder(source_name, f)
        (manifests / f"{stem}.yaml").write_text(
            "apiVersion: reconciler/v1\n"
            "kind: FileMetadata\n"
            f"folder: {folder_name(spec, f)}\n"
            "mode: merge\n"
            f"source: data/{name}\n",
            encoding="utf-8",
        )


def _per_folder(source_name: str, f: int) -> str:
    stem, _, ext = source_name.rpartition(".")
    return f"{stem}-{f:02d}.{ext}"


def generate(out: Path, spec: BenchSpec) -> Generated:
    """Write the snapshot, the manifests and the source for ``spec`` under ``out``."""
    if (
        spec.source_format not in ("jsonl", "csv")
        or spec.snapshot_format not in ("jsonl", "json")
        or spec.source_style not in ("python", "compact")
    ):
        raise ValueError(
            "source_format: jsonl|csv; snapshot_format: jsonl|json; source_style: python|compact"
        )
    out.mkdir(parents=True, exist_ok=True)
    snapshot = out / f"live.{spec.snapshot_format}"
    write_snapshot(snapshot, spec)
    manifests = out / "manifests"
    source_name = f"desired.{spec.source_format}"
    write_manifests(manifests, spec, source_name)
    source = manifests / "data" / source_name
    if spec.folders <= 1:
        changed = write_source(source, spec)
    else:
        changed = sum(
            write_source(manifests / "data" / _per_folder(source_name, f), spec, f)
            for f in range(spec.folders)
        )
        # Every row in one file as well (what a floor program or an SDK script reads).
        write_source(source, spec)
    return Generated(
        root=out,
        snapshot=snapshot,
        manifests=manifests,
        source=source,
        database=manifests / ".reconciler" / "live.db",
        changed_files=changed,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, required=True, help="number of files (N)")
    p.add_argument("--keys", type=int, default=10, help="metadata keys per file (K, default 10)")
    p.add_argument("--changed", type=float, default=0.01, help="share of files to change (default 0.01)")
    p.add_argument("--folder", default="bench", help="folder name (default bench)")
    p.add_argument("--folders", type=int, default=1, help="folders the files are spread over (default 1)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--source-format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--snapshot-format", choices=("jsonl", "json"), default="jsonl")
    p.add_argument(
        "--source-style",
        choices=("python", "compact"),
        default="python",
        help="JSONL rows as json.dumps writes them by default (python) or without spaces (compact)",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    spec = BenchSpec(
        files=args.files,
        keys=args.keys,
        changed=args.changed,
        folder=args.folder,
        folders=args.folders,
        seed=args.seed,
        source_format=args.source_format,
        snapshot_format=args.snapshot_format,
        source_style=args.source_style,
    )
    g = generate(args.out, spec)
    print(
        f"wrote {spec.files:,} files x {spec.keys} keys ({g.changed_files:,} to change): "
        f"snapshot {g.snapshot}, manifests {g.manifests}, source {g.source}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
