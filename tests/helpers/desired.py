"""Build DesiredState records in code (for engine tests that do not exercise the YAML loader)."""

from __future__ import annotations

from reconciler.errors import SourceLocation
from reconciler.model import (
    Assignment,
    DesiredKey,
    DesiredState,
    FileManifest,
    FileSelector,
    Mode,
    OnMissing,
    SchemaManifest,
    SelectorKind,
    Workspace,
    WorkspaceSettings,
)
from reconciler.providers.sqlite import SqliteConfig
from reconciler.schema import FieldSpec


def md(path: str, **values) -> dict[str, Assignment]:
    return {k.replace("__", "."): Assignment(v, SourceLocation(path, 9, 9)) for k, v in values.items()}


def sel(kind: str, pattern: str, path: str = "m.yaml", **values) -> FileSelector:
    return FileSelector(SelectorKind(kind), pattern, md(path, **values), SourceLocation(path, 5, 5))


def manifest(
    path: str,
    folder: str,
    *selectors: FileSelector,
    mode: str = "merge",
    owns: tuple[str, ...] = (),
    children: bool = False,
    recursive: bool = False,
    on_missing: str = "error",
    defaults: dict | None = None,
) -> FileManifest:
    return FileManifest(
        path=path,
        folder=folder,
        mode=Mode(mode),
        files=tuple(selectors),
        location=SourceLocation(path, 1, 1),
        recursive=recursive,
        children=children,
        owns=owns,
        on_missing=OnMissing(on_missing),
        defaults=md(path, **(defaults or {})),
    )


def schema(prune: bool = False, **keys: FieldSpec) -> SchemaManifest:
    loc = SourceLocation("schema.yaml", 4, 3)
    return SchemaManifest({k.replace("__", "."): DesiredKey(v, loc) for k, v in keys.items()}, loc, prune)


def desired(
    *files: FileManifest, schema_manifest: SchemaManifest | None = None, root: str = "."
) -> DesiredState:
    ws = Workspace(SqliteConfig(), WorkspaceSettings(), SourceLocation("workspace.yaml", 1, 1))
    return DesiredState(
        root=root, workspace=ws, schema=schema_manifest, files=tuple(files), digest_of="sha256:test"
    )
