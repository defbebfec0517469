"""The Workspace document alone, and the manifests digest, without reading the other manifests as manifests.

What a saved plan, a journal, ``snapshot`` and ``import`` need from a manifest directory is which store it
names (and its settings) — the ``kind: Workspace`` document — and, for a saved plan, the digest of the files
it was made from. :func:`load_workspace` finds the one Workspace document and validates just it, with the
messages :func:`~reconciler.manifest.loader.load_manifests` gives; a broken FileMetadata manifest elsewhere
does not matter. :func:`manifests_digest` hashes the same bytes as ``load_manifests`` (every manifest file,
and every ``source:`` file a FileMetadata document names), without validating any document.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import (
    Diagnostic,
    ManifestParseError,
    ManifestValidationError,
    SourceLocation,
)
from reconciler.manifest.convert import workspace_record
from reconciler.manifest.crosschecks import check_singletons
from reconciler.manifest.diagnostics import Doc, bare_message
from reconciler.manifest.discovery import DigestBuilder, discover_manifests
from reconciler.manifest.loader import _Loader
from reconciler.manifest.rules import resolve_source
from reconciler.manifest.schema import WorkspaceDoc
from reconciler.manifest.yamlio import read_documents
from reconciler.model import Workspace

__all__ = ["LoadedWorkspace", "load_workspace", "manifests_digest"]

_KIND = b"Workspace"


@dataclass(frozen=True)
class LoadedWorkspace:
    """The Workspace of a manifest directory: ``root`` (resolved), the document, and its warnings."""

    root: Path
    workspace: Workspace
    warnings: tuple[Diagnostic, ...]


def load_workspace(root: str | Path) -> LoadedWorkspace:
    """The one ``kind: Workspace`` document under ``root``, validated as ``load_manifests`` validates it.

    Only files whose bytes mention ``Workspace`` are parsed, and of those only the Workspace documents are
    checked. A file that cannot be parsed is reported only if no Workspace is found elsewhere (it might
    hold it). Raises ManifestValidationError (every problem of the Workspace, sorted by location).
    """
    loader = _Loader(Path(root))
    if not loader.root.is_dir():
        loader.out.error(SourceLocation(str(loader.root)), "manifest directory does not exist")
        raise ManifestValidationError(loader.out.errors)
    unreadable: list[Diagnostic] = []
    for file in discover_manifests(loader.root):
        rel = file.relative_to(loader.root).as_posix()
        if not file.is_file():
            continue
        try:
            with file.open("rb") as fh:
                if _KIND not in fh.read():
                    continue
            docs = read_documents(file, rel)
        except OSError:
            continue  # unreadable: it cannot be where the Workspace is read from either
        except ManifestParseError as exc:
            unreadable.append(Diagnostic(exc.location or SourceLocation(rel), bare_message(exc)))
            continue
        except ManifestValidationError as exc:
            unreadable.extend(exc.issues)
            continue
        for yaml_doc in docs:
            data = yaml_doc.data
            if isinstance(data, dict) and data.get("kind") == "Workspace":
                loader._load_document(Doc(rel, yaml_doc))
    if not loader.workspaces and unreadable:
        loader.out.errors.extend(unreadable)
    check_singletons(loader.root, [w.doc for w in loader.workspaces], [], loader.out)
    if loader.out.errors:
        raise ManifestValidationError(sorted(loader.out.errors))
    first = loader.workspaces[0]
    assert isinstance(first.model, WorkspaceDoc)  # no error: it validated
    workspace = workspace_record(first.model, first.doc)
    return LoadedWorkspace(loader.root, workspace, tuple(sorted(set(loader.out.warnings))))


def manifests_digest(root: str | Path) -> str:
    """``load_manifests(root).digest`` computed from file bytes alone: every manifest file, and every
    ``source:`` file that a FileMetadata document names (checked like the loader checks the path)."""
    base = Path(root).resolve()
    digest = DigestBuilder()
    for file in discover_manifests(base):
        rel = file.relative_to(base).as_posix()
        if not file.is_file():
            continue
        digest.add(rel, file)
        for source_rel, resolved in _sources(file, rel, base):
            digest.add(source_rel, resolved)
    return digest.digest()


def _sources(file: Path, rel: str, root: Path) -> list[tuple[str, Path]]:
    """The ``source:`` files a manifest file's FileMetadata documents name, as ``(rel, resolved)``."""
    try:
        with file.open("rb") as fh:
            if b"source" not in fh.read():
                return []
        docs = read_documents(file, rel)
    except (OSError, ManifestParseError, ManifestValidationError):
        return []  # a file that does not parse contributes its bytes only, as in load_manifests
    found: list[tuple[str, Path]] = []
    for doc in docs:
        data = doc.data
        if not isinstance(data, dict) or data.get("kind") != "FileMetadata":
            continue
        raw = data.get("source")
        if not isinstance(raw, str):
            continue
        source = _source_path(raw, root)
        if source is not None:
            found.append(source)
    return found


def _source_path(raw: str, root: Path) -> tuple[str, Path] | None:
    """A ``source:`` value as the loader accepts it (relative, inside the directory, a known format, a file)."""
    resolved = resolve_source(raw, root)
    return None if isinstance(resolved, str) else resolved
