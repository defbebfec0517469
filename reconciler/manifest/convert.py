"""The records of :mod:`reconciler.model`, built from the validated pydantic models of
:mod:`reconciler.manifest.schema`.

Nothing here reads the raw YAML except through :class:`~reconciler.manifest.diagnostics.Doc`'s positions (a
record says where each of its parts was written). Defaults and choices come with the validated models, so
this module states none of its own; it only runs on documents that are valid in every respect.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import TYPE_CHECKING

from reconciler.frames import frame_key
from reconciler.manifest.schema import FileEntryDoc, KeyDoc, TypeName
from reconciler.model import (
    Assignment,
    DesiredKey,
    FileManifest,
    FileSelector,
    Limits,
    SchemaManifest,
    SelectorKind,
    Workspace,
    WorkspaceSettings,
)
from reconciler.providers import registry
from reconciler.schema import TYPE_ALIASES, FieldSpec, KeyType

if TYPE_CHECKING:
    from pydantic import JsonValue as PydanticJsonValue

    from reconciler.manifest.diagnostics import Doc
    from reconciler.manifest.schema import FileMetadataDoc, MetadataSchemaDoc, WorkspaceDoc
    from reconciler.manifest.yamlio import YamlPath
    from reconciler.model import SourceSpec

__all__ = [
    "canonical_uuid",
    "field_spec",
    "file_manifest_record",
    "schema_record",
    "workspace_record",
]


def canonical_uuid(text: str) -> str | None:
    """The lower-case 8-4-4-4-12 form of a UUID written in that form (any case), else ``None``."""
    try:
        parsed = uuidlib.UUID(text)
    except ValueError:
        return None
    canonical = str(parsed)
    return canonical if canonical == text.lower() else None


# --------------------------------------------------------------------------------------------- Workspace


def workspace_record(model: WorkspaceDoc, doc: Doc) -> Workspace:
    s = model.settings
    share = s.limits.max_removed_share
    return Workspace(
        # Each store reads its own fields and states its own defaults (reconciler.providers).
        provider=registry.config_from_workspace(model.provider.model_dump()),
        settings=WorkspaceSettings(
            parallelism=s.parallelism,
            journal_dir=s.journal_dir,
            undeclared_keys=s.undeclared_keys,
            limits=Limits(
                max_files=s.limits.max_files,
                max_removed_keys=s.limits.max_removed_keys,
                max_removed_share=float(share) if share is not None else None,
            ),
        ),
        location=doc.location,
    )


# --------------------------------------------------------------------------------------------- MetadataSchema


def field_spec(entry: TypeName | KeyDoc) -> FieldSpec:
    """The FieldSpec of one well-formed ``keys:`` entry (a type name, or a full key definition)."""
    body = entry if isinstance(entry, KeyDoc) else KeyDoc(type=entry)
    ktype = TYPE_ALIASES.get(body.type) or KeyType(body.type)
    return FieldSpec(
        ktype,
        values=tuple(body.values or ()) if ktype is KeyType.ENUM else (),
        size=body.size if ktype is KeyType.EMBEDDING else None,
        deleted=body.deleted,
    )


def schema_record(model: MetadataSchemaDoc, doc: Doc) -> SchemaManifest:
    keys: dict[str, DesiredKey] = {}
    for key, entry in (model.keys or {}).items():
        renamed_from = entry.renamed_from if isinstance(entry, KeyDoc) else None
        keys[key] = DesiredKey(field_spec(entry), doc.key_at(("keys", key)), renamed_from=renamed_from)
    return SchemaManifest(keys=keys, location=doc.location, prune=model.prune)


# --------------------------------------------------------------------------------------------- FileMetadata


def _assignments(
    doc: Doc, values: dict[str, PydanticJsonValue] | None, path: YamlPath
) -> dict[str, Assignment]:
    return {key: Assignment(value, doc.at((*path, key))) for key, value in (values or {}).items()}


def _selector(doc: Doc, entry: FileEntryDoc, path: YamlPath) -> FileSelector:
    if entry.glob is not None:
        kind, pattern = SelectorKind.GLOB, entry.glob
    elif entry.name is not None:
        kind, pattern = SelectorKind.NAME, entry.name
    else:
        assert entry.uuid is not None
        kind, pattern = SelectorKind.UUID, canonical_uuid(entry.uuid) or entry.uuid
    metadata = _assignments(doc, entry.metadata, (*path, "metadata"))
    for name, values in (entry.frames or {}).items():
        assert isinstance(values, dict)  # checked by the rules (reconciler.reserved.check_frames)
        for key, value in values.items():
            # A per-frame value is the plan key frames[N].KEY (reconciler.frames).
            metadata[frame_key(int(name), key)] = Assignment(value, doc.at((*path, "frames", name, key)))
    return FileSelector(
        kind=kind,
        pattern=pattern,
        metadata=metadata,
        location=doc.at((*path, kind.value)),
    )


def file_manifest_record(model: FileMetadataDoc, doc: Doc, source: SourceSpec | None) -> FileManifest:
    """The FileManifest of a valid document; ``source`` is its ``source:`` file as the rules resolved it."""
    return FileManifest(
        path=doc.rel,
        folder=model.folder or "",
        dataset=model.dataset.strip() if model.dataset is not None else None,
        mode=model.mode,
        files=tuple(_selector(doc, e, ("files", i)) for i, e in enumerate(model.files or ())),
        location=doc.location,
        recursive=model.recursive,
        children=model.children,
        owns=tuple(model.owns or ()),
        on_missing=model.on_missing,
        defaults=_assignments(doc, model.defaults, ("defaults",)),
        source=source,
        target_location=doc.at(("dataset",) if model.dataset is not None else ("folder",)),
    )
