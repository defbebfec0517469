"""The Workspace document alone, and the manifests digest, without reading the other manifests as manifests.

What a saved plan, a journal, ``snapshot`` and ``import`` need from a manifest directory is which store it
names (and its settings) — the ``kind: Workspace`` document — and, for a saved plan, the digest of the files
it was made from. :func:`load_workspace` finds the one Workspace document and validates just it, with the
messages :func:`~reconciler.manifest.loader.load_manifests` gives; a broken FileMetadata manifest elsewhere
does not matter. :func:`manifests_digest` hashes the same bytes as ``load_manifests`` (every manifest file,
and every ``source:`` file a FileMetadata document names), without validating any document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from reconciler.errors import (
    Diagnostic,
    ManifestParseError,
    ManifestValidationError,
    SourceLocation,
)
from reconciler.manifest.loader import _SOURCE_FORMATS, _bare_message, _Doc, _Loader
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
    for file in loader._discover():
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
            unreadable.append(Diagnostic(exc.location or SourceLocation(rel), _bare_message(exc)))
            continue
        except ManifestValidationError as exc:
            unreadable.extend(exc.issues)
            continue
        for yaml_doc in docs:
            data = yaml_doc.data
            if isinstance(data, dict) and data.get("kind") == "Workspace":
                loader._load_document(_Doc(rel, yaml_doc))
    if not loader.workspaces and unreadable:
        loader.out.errors.extend(unreadable)
    loader._check_singletons()
    if loader.out.errors:
        raise ManifestValidationError(sorted(loader.out.errors))
    return LoadedWorkspace(loader.root, loader.workspaces[0][1], tuple(sorted(set(loader.out.warnings))))


def manifests_digest(root: str | Path) -> str:
    """``load_manifests(root).digest`` computed from file bytes alone: every manifest file, and every
    ``source:`` file that a FileMetadata document names (checked like the loader checks the path)."""
    base = Path(root).resolve()
    loader = _Loader(base)
    parts: dict[str, str] = {}
    for file in loader._discover():
        rel = file.relative_to(base).as_posix()
        if not file.is_file():
            continue
        digest = _file_digest(file)
        if digest is None:
            continue
        parts[rel] = digest
        for source_rel, resolved in _sources(file, rel, base):
            if source_rel not in parts:
                source_digest = _file_digest(resolved)
                if source_digest is not None:
                    parts[source_rel] = source_digest
    h = hashlib.sha256()
    for rel in sorted(parts):
        h.update(f"{rel}\0{parts[rel]}\n".encode())
    return "sha256:" + h.hexdigest()


def _file_digest(file: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


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
    """A ``source:`` value as the loader accepts it (relative, inside the directory, .jsonl/.csv, a file)."""
    text = raw.strip()
    if not text:
        return None
    if (
        PurePosixPath(text).is_absolute()
        or PureWindowsPath(text).is_absolute()
        or PureWindowsPath(text).drive
        or text.startswith("~")
    ):
        return None
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if ".." in parts:
        return None
    rel = PurePosixPath(*parts).as_posix()
    if PurePosixPath(rel).suffix.lower() not in _SOURCE_FORMATS:
        return None
    try:
        resolved = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root) or not resolved.is_file():
        return None
    return rel, resolved
