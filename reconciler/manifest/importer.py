"""``reconciler import``: write a manifest directory that describes the live state exactly.

A ``plan`` right after an import shows no changes. What is written, and why:

- ``workspace.yaml`` names the provider the state was read from (a SQLite path relative to the new directory
  when the two share a parent; an Encord domain).
- ``schema.yaml`` lists every live key, tombstones as ``deleted: soft|hard``, scalar types as shorthand, with
  ``prune: true`` so that the file is the whole truth: deleting a line soft-deletes the key (a destructive,
  reviewed change). Keys of Encord's ``user`` type cannot be declared; when there are any, they are named in
  a comment and ``prune`` stays ``false`` (it would delete them).
- ``files/<folder-slug>.yaml`` per folder with files: ``mode: merge`` with ``owns: ["*"]``. Every file of the
  folder is listed with its whole dict, and the manifest owns every key on them, so it reads as the whole
  truth, like a Terraform resource after ``terraform import``: a key deleted from the manifest is removed
  from the file, a key added is set, and a key set outside reconciler shows up in the next plan (as a
  removal) instead of being silently kept. Merge rather than overwrite keeps applies safe (merge writes
  re-read each file and apply only the planned key changes) and lets a team later narrow ``owns`` to
  share the files with other manifests, which an overwrite manifest never allows. A live ``null`` value
  cannot be written (``null`` means "remove" in a manifest); such keys are left out of ``owns``. So are the
  reserved keys (``config``, ``keyframes``, ``$encord``) on files whose live value a manifest would refuse
  (``config: {fps: 30}``, fractional keyframes without ``keyframe_mode: seconds``): those values are not
  written, and the files keep them. Per-frame values (``frames[N].KEY`` keys) are written as the entry's
  ``frames:`` (or the source row's ``"frames"``), so they round-trip too.
- Folders with more than ``source_threshold`` files get their rows in ``data/<folder-slug>.jsonl``
  (``source:``); smaller ones list ``name:`` entries. Files of image groups, image sequences and DICOM series
  are listed as ``GROUP/CHILD`` with ``children: true``. A name shared by several files is selected by ``uuid``.
- ``files/dataset-<title-slug>.yaml`` per ``--dataset HASH`` (Encord's legacy data units): the same shape with
  ``dataset: HASH``, each data unit by title (``name:``), or by data hash (``uuid:``) when two share a title.
  Datasets are imported only when named: a dataset's rows are usually backed by files of a folder, and two
  manifests owning every key of the same files would conflict (asking for both is refused).

Values are written exactly (``emit``); every YAML file is read back and compared before the import ends.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import Diagnostic, OutputError, ReconcilerError, SourceLocation, UsageError
from reconciler.fileio import write_file
from reconciler.frames import frame_key, split_frame_keys
from reconciler.jsonio import depth
from reconciler.manifest.emit import yaml_key, yaml_value
from reconciler.manifest.yamlio import load_documents
from reconciler.model import LiveDataset, LiveFolder, ProviderConfig, canonical_json
from reconciler.providers.base import ListedItem, StateProvider
from reconciler.providers.registry import workspace_entries
from reconciler.reserved import check_reserved
from reconciler.schema import Deletion, FieldSpec, KeyType, parse_wire_schema
from reconciler.types import JsonValue

__all__ = [
    "DEFAULT_SOURCE_THRESHOLD",
    "ImportResult",
    "import_live_state",
    "prepare_out_dir",
    "workspace_yaml",
]

#: Folders with more files than this get a JSONL ``source:`` instead of ``name:`` entries.
DEFAULT_SOURCE_THRESHOLD = 50

_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
_GLOB_SPECIAL = re.compile(r"([*?\[])")


@dataclass
class ImportResult:
    """What an import wrote (paths relative to the output directory, posix) and what it could not."""

    files_written: list[str] = field(default_factory=list)
    schema_keys: int = 0
    folders: int = 0
    items: int = 0
    skipped_folders: list[str] = field(default_factory=list)  # folders without files
    datasets: int = 0
    warnings: list[Diagnostic] = field(default_factory=list)


def prepare_out_dir(out: Path) -> None:
    """Create ``out``; raise UsageError if it exists and is not an empty directory."""
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a directory")
        if any(out.iterdir()):
            raise UsageError(
                f"--out {out}: the directory is not empty; import writes only into a new or empty one"
            )
    out.mkdir(parents=True, exist_ok=True)


def _header(lines: Iterable[str]) -> list[str]:
    return [f"# {line}" if line else "#" for line in lines]


def workspace_yaml(config: ProviderConfig, root: Path, out: Path) -> str:
    """The Workspace manifest naming ``config``'s store (as seen from ``root``) from directory ``out``."""
    lines = _header(
        [
            "Written by `reconciler import`: the live state the manifests in this directory were read from.",
        ]
    )
    lines += ["apiVersion: reconciler/v1", "kind: Workspace", "provider:"]
    lines += [
        f"  {name}: {yaml_value(value)}" for name, value in workspace_entries(config, root, out).items()
    ]
    return "\n".join(lines) + "\n"


def _type_entry(spec: FieldSpec) -> str:
    """A schema key's value: shorthand (``datetime``) where possible, else a flow mapping."""
    if spec.deleted is Deletion.HARD:
        # Encord forgets the type of a hard-deleted key; the manifest format still wants one.
        return "{type: " + (spec.type.value if spec.type else "varchar") + ", deleted: hard}"
    assert spec.type is not None
    parts = [f"type: {spec.type.value}"]
    if spec.type is KeyType.ENUM:
        values: list[JsonValue] = [str(v) for v in sorted(spec.values)]
        parts.append(f"values: {yaml_value(values)}")
    if spec.type is KeyType.EMBEDDING:
        parts.append(f"size: {spec.size}")
    if spec.deleted is Deletion.SOFT:
        parts.append("deleted: soft")
    if len(parts) == 1:
        return spec.type.value
    return "{" + ", ".join(parts) + "}"


def _schema_yaml(wire: object) -> tuple[str, int, list[str]]:
    schema = parse_wire_schema(wire)
    keys = sorted(schema.keys)
    user = [k for k in keys if schema.keys[k].type is KeyType.USER]
    declared = [k for k in keys if k not in user]
    lines = _header(
        [
            "Written by `reconciler import`: every key of the live metadata schema, tombstones included.",
            "prune: true makes this file the whole truth: a key deleted from it is soft-deleted in Encord",
            "(a destructive change that plan marks and apply refuses without --allow-destructive).",
        ]
    )
    if user:
        lines += _header(
            [
                "",
                "Keys of Encord's 'user' type cannot be declared in a manifest, so prune stays false (it would",
                "delete them): " + ", ".join(user),
            ]
        )
    lines += ["apiVersion: reconciler/v1", "kind: MetadataSchema", f"prune: {'false' if user else 'true'}"]
    if declared:
        lines.append("keys:")
        lines += [f"  {yaml_key(k)}: {_type_entry(schema.keys[k])}" for k in declared]
    else:
        lines.append("keys: {}")
    return "\n".join(lines) + "\n", len(declared), user


def _slug(path: str, taken: set[str]) -> str:
    base = _SLUG.sub("-", path.replace("/", "--")).strip("-.") or "root"
    slug = base
    n = 2
    while slug.lower() in taken:
        slug = f"{base}-{n}"
        n += 1
    taken.add(slug.lower())
    return slug


def _escape_glob(key: str) -> str:
    return _GLOB_SPECIAL.sub(r"[\1]", key)


@dataclass(frozen=True)
class _Row:
    selector: str  # "name" | "uuid"
    value: str
    metadata: dict[str, JsonValue]
    #: Reserved keys whose live value a manifest would refuse (``config: {fps: 30}``), left out of ``metadata``,
    #: each with the reason.
    refused: tuple[tuple[str, str], ...] = ()


def _rows(listed: Sequence[ListedItem]) -> list[_Row]:
    counts = Counter(li.rel_name for li in listed)
    rows = []
    for li in sorted(listed, key=lambda x: (x.rel_name, x.item.uuid)):
        md = {k: li.item.metadata[k] for k in sorted(li.item.metadata)}
        refused = tuple((p.key, p.message) for p in check_reserved(md))
        for key, _ in refused:
            md.pop(key, None)
        if counts[li.rel_name] > 1:
            rows.append(_Row("uuid", li.item.uuid, md, refused))
        else:
            rows.append(_Row("name", li.rel_name, md, refused))
    return rows


def _file_manifest(
    folder: LiveFolder | LiveDataset,
    folder_ref: str,
    rows: Sequence[_Row],
    *,
    children: bool,
    source: str | None,
) -> tuple[str, list[str]]:
    """The FileMetadata document of one folder (or dataset), and the keys left out of ``owns`` (live nulls)."""
    null_keys = sorted({k for r in rows for k, v in r.metadata.items() if v is None})
    refused_keys = sorted({k for r in rows for k, _ in r.refused})
    unowned = sorted({*null_keys, *refused_keys})
    what = (
        f"file in folder {folder.path}"
        if isinstance(folder, LiveFolder)
        else f"data unit of dataset {folder.title}"
    )
    lines = _header(
        [
            f"Written by `reconciler import`: the custom metadata of every {what}.",
            'mode: merge with owns: ["*"]: this manifest manages every key of these files, so it reads as',
            "the whole truth: a key deleted here is removed from the file, a key added is set, and a key set",
            'outside reconciler shows up in the next plan. Narrow `owns` (e.g. ["capture.*"]) to share these',
            "files with other manifests. Files added to the folder later are not selected by this manifest.",
        ]
    )
    if null_keys:
        lines += _header(
            [
                "",
                "These keys hold null on some files, which a manifest cannot write (null means remove), so they",
                "are not owned here: " + ", ".join(null_keys),
            ]
        )
    if refused_keys:
        lines += _header(
            [
                "",
                "These reserved keys hold values on some files that a manifest would refuse, so those values",
                "are left out and the keys are not owned here: " + ", ".join(refused_keys),
            ]
        )
    anchor = "folder" if isinstance(folder, LiveFolder) else "dataset"
    lines += ["apiVersion: reconciler/v1", "kind: FileMetadata", f"{anchor}: {yaml_value(folder_ref)}"]
    if children:
        lines.append("children: true")
    lines.append("mode: merge")
    if unowned:
        owned = sorted({k for r in rows for k in r.metadata} - set(unowned))
        lines.append(f"owns: {yaml_value([_escape_glob(k) for k in owned])}")
    else:
        lines.append('owns: ["*"]')
    if source is not None:
        lines.append(f"source: {yaml_value(source)}")
    else:
        lines.append("files:")
        for r in rows:
            lines.append(f"  - {r.selector}: {yaml_value(r.value)}")
            md, frames = split_frame_keys({k: v for k, v in r.metadata.items() if v is not None})
            if md or not frames:
                lines.append("    metadata:" if md else "    metadata: {}")
                lines += [f"      {yaml_key(k)}: {yaml_value(v)}" for k, v in md.items()]
            if frames:  # per-frame values (frames[N].KEY keys) as the files entry's frames:
                lines.append("    frames:")
                for frame, values in frames.items():
                    lines.append(f"      {frame}:")
                    lines += [f"        {yaml_key(k)}: {yaml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n", null_keys


def _refused_warning(path: Path, rows: Sequence[_Row]) -> Diagnostic | None:
    refused = [(r, key, message) for r in rows for key, message in r.refused]
    if not refused:
        return None
    row, _, message = refused[0]
    more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
    keys = ", ".join(sorted({key for _, key, _ in refused}))
    return Diagnostic(
        SourceLocation(str(path)),
        f"live values of reserved keys that a manifest would refuse were left out; these keys are not "
        f"owned: {keys} ({row.selector} {row.value!r}: {message}){more}",
        "warning",
    )


def _jsonl(rows: Sequence[_Row]) -> str:
    out = []
    for r in rows:
        md, frames = split_frame_keys({k: v for k, v in r.metadata.items() if v is not None})
        row: dict[str, JsonValue] = {r.selector: r.value, "metadata": md}
        if frames:
            row["frames"] = {str(n): dict(values) for n, values in frames.items()}
        out.append(json.dumps(row, ensure_ascii=False, allow_nan=False))
    return "\n".join(out) + "\n"


def _listed_metadata(path: Path) -> list[JsonValue] | None:
    """The ``metadata`` of each ``files:`` entry of a written manifest, as the loader's YAML reader sees it."""
    docs = load_documents(path.read_text(encoding="utf-8"), str(path))
    data = docs[0].data if docs else None
    entries = data.get("files") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return None
    return [_entry_keys(e) if isinstance(e, dict) else None for e in entries]


def _entry_keys(entry: dict[str, JsonValue]) -> JsonValue:
    """A read-back files entry's values as plan keys (its ``frames:`` as ``frames[N].KEY``)."""
    md = entry.get("metadata", {})
    frames = entry.get("frames")
    if not isinstance(md, dict) or not isinstance(frames, dict):
        return entry.get("metadata")
    out: dict[str, JsonValue] = dict(md)
    for name, values in frames.items():
        if not isinstance(values, dict):
            return None
        out.update((frame_key(int(name), k), v) for k, v in values.items())
    return out


class _Writer:
    """Writes files under ``out``, remembering them so that a failed import can take them back."""

    def __init__(self, out: Path, result: ImportResult) -> None:
        self.out = out
        self.result = result
        self.created_dirs: list[Path] = []

    def write(self, rel: str, text: str) -> Path:
        path = self.out / rel
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
            self.created_dirs.append(path.parent)
        write_file(path, text, what="manifest")
        self.result.files_written.append(rel)
        return path

    def take_back(self) -> None:
        for rel in self.result.files_written:
            (self.out / rel).unlink(missing_ok=True)
        for d in reversed(self.created_dirs):
            d.rmdir()


def _import_schema(provider: StateProvider, w: _Writer) -> None:
    text, n, user = _schema_yaml(provider.read_schema())
    path = w.write("schema.yaml", text)
    load_documents(path.read_text(encoding="utf-8"), str(path))  # reads back (raises if it does not)
    w.result.schema_keys = n
    if user:
        w.result.warnings.append(
            Diagnostic(
                SourceLocation(str(path)),
                "keys of Encord's 'user' type cannot be declared and were left out (prune stays false): "
                + ", ".join(user),
                "warning",
            )
        )


def _chosen_folders(provider: StateProvider, refs: Sequence[str]) -> tuple[list[LiveFolder], Counter[str]]:
    """The folders named (each with its subfolders), or all; and how many folders share each path."""
    all_folders = provider.list_folders()
    chosen = list(all_folders)
    if refs:
        roots = [provider.resolve_folder(f) for f in refs]
        chosen = [
            f for f in all_folders if any(f.path == r.path or f.path.startswith(r.path + "/") for r in roots)
        ]
    return sorted(chosen, key=lambda f: (f.path, f.uuid)), Counter(f.path for f in all_folders)


def _import_folder(
    provider: StateProvider,
    w: _Writer,
    folder: LiveFolder,
    *,
    ref: str,
    slug: str,
    source_threshold: int,
) -> None:
    listed = list(provider.iter_items(folder, recursive=False, children=True))
    if not listed:
        w.result.skipped_folders.append(folder.path)
        return
    try:
        _write_folder(w, folder, listed, ref=ref, slug=slug, source_threshold=source_threshold)
    except RecursionError:
        deepest = max(listed, key=lambda li: depth(li.item.metadata))
        raise OutputError(
            f"{folder.path}/{deepest.rel_name} (file {deepest.item.uuid}): its live metadata is nested "
            f"{depth(deepest.item.metadata):,} levels deep, too deeply to write as a manifest; nothing was written"
        ) from None


def _write_folder(
    w: _Writer, folder: LiveFolder, listed: list[ListedItem], *, ref: str, slug: str, source_threshold: int
) -> None:
    rows = _rows(listed)
    has_children = any(li.item.parent_item is not None for li in listed)
    _write_manifest(w, folder, ref, rows, slug, has_children, source_threshold)
    w.result.folders += 1


def _dataset_rows(ds: LiveDataset) -> list[_Row]:
    counts = Counter(r.title for r in ds.rows)
    rows = []
    for r in sorted(ds.rows, key=lambda x: (x.title, x.data_hash)):
        md = {k: r.metadata[k] for k in sorted(r.metadata)}
        refused = tuple((p.key, p.message) for p in check_reserved(md))
        for key, _ in refused:
            md.pop(key, None)
        if counts[r.title] > 1:
            rows.append(_Row("uuid", r.data_hash, md, refused))
        else:
            rows.append(_Row("name", r.title, md, refused))
    return rows


def _write_manifest(
    w: _Writer,
    folder: LiveFolder | LiveDataset,
    ref: str,
    rows: Sequence[_Row],
    slug: str,
    has_children: bool,
    source_threshold: int,
) -> None:
    source = f"data/{slug}.jsonl" if len(rows) > source_threshold else None
    if source is not None:
        w.write(source, _jsonl(rows))
    text, null_keys = _file_manifest(folder, ref, rows, children=has_children, source=source)
    path = w.write(f"files/{slug}.yaml", text)
    if source is None:
        expected = [{k: v for k, v in r.metadata.items() if v is not None} for r in rows]
        if canonical_json(_listed_metadata(path)) != canonical_json(expected):
            raise ReconcilerError(
                f"{path}: the written manifest does not read back as written; please report this"
            )
    if null_keys:
        w.result.warnings.append(
            Diagnostic(
                SourceLocation(str(path)),
                "live null values cannot be written in a manifest; these keys are not owned: "
                + ", ".join(null_keys),
                "warning",
            )
        )
    refused = _refused_warning(path, rows)
    if refused is not None:
        w.result.warnings.append(refused)
    w.result.items += len(rows)


def import_live_state(
    provider: StateProvider,
    out: Path,
    *,
    provider_config: ProviderConfig,
    provider_root: Path,
    schema: bool,
    folders: Sequence[str],
    datasets: Sequence[str] = (),
    source_threshold: int = DEFAULT_SOURCE_THRESHOLD,
) -> ImportResult:
    """Write ``workspace.yaml``, ``schema.yaml`` (when ``schema``), one manifest per folder and one per
    dataset into ``out``.

    ``folders`` selects folders by path or UUID, each with its subfolders; ``datasets`` names datasets by
    hash; with none of them and not ``schema``, the schema and every folder are imported. ``out`` must already
    be prepared (``prepare_out_dir``). On any failure the files written so far are removed again. Raises
    ProviderError, UsageError, ReconcilerError.
    """
    result = ImportResult()
    w = _Writer(out, result)
    everything = not schema and not folders and not datasets
    try:
        w.write("workspace.yaml", workspace_yaml(provider_config, provider_root, out))
        if schema or everything:
            _import_schema(provider, w)
        if folders or everything:
            chosen, path_counts = _chosen_folders(provider, folders)
            taken: set[str] = set()
            for folder in chosen:
                # A path two folders share cannot name one of them: use the UUID then.
                ref = folder.path if path_counts[folder.path] == 1 else folder.uuid
                _import_folder(
                    provider,
                    w,
                    folder,
                    ref=ref,
                    slug=_slug(folder.path, taken),
                    source_threshold=source_threshold,
                )
        _import_datasets(provider, w, datasets, source_threshold)
    except BaseException:
        # Leave the directory as it was (empty): no half-imported state to plan against by mistake.
        w.take_back()
        raise
    return result


def _import_datasets(
    provider: StateProvider, w: _Writer, hashes: Sequence[str], source_threshold: int
) -> None:
    """One dataset manifest per hash; refused when folder manifests are written too and the dataset's rows are
    backed by files (both would own every key of those files)."""
    taken: set[str] = {Path(rel).stem.lower() for rel in w.result.files_written}
    for h in dict.fromkeys(hashes):
        ds = provider.read_dataset(h)
        if w.result.folders and any(r.backing_item for r in ds.rows):
            raise UsageError(
                f"--dataset {h}: its data units are files of the storage folders imported too, and a folder "
                "manifest and a dataset manifest that both own every key of one file conflict; import the "
                "dataset and the folders into separate directories"
            )
        _write_manifest(
            w, ds, h, _dataset_rows(ds), _slug("dataset-" + ds.title, taken), False, source_threshold
        )
        w.result.datasets += 1
