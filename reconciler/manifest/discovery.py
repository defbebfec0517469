"""Which files make up a manifest directory, and the digest that pins their exact bytes.

A manifest file is any ``*.yaml`` / ``*.yml`` under the directory, recursively; hidden files and hidden
directories (``.git``, ``.reconciler``, ...) are skipped. The loader, ``validate``, ``fmt`` and the digest all
use :func:`find_manifest_files`. Symbolic links are followed, to files and to directories alike: a linked
directory is searched like a real one, and each real directory is searched once, so a link back to a directory
already being searched (a loop) is skipped with a warning instead of being searched forever.

The digest is SHA-256 over each file's path (relative, posix) and the SHA-256 of its bytes, in path order: the
same directory gives the same digest on every machine, and any change to any byte of a manifest or source file
gives another one. Nothing here parses YAML.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from reconciler.errors import Diagnostic, SourceLocation

__all__ = [
    "MANIFEST_SUFFIXES",
    "DigestBuilder",
    "ManifestFiles",
    "discover_manifests",
    "file_sha256",
    "find_manifest_files",
]

MANIFEST_SUFFIXES: Final = (".yaml", ".yml")


@dataclass
class ManifestFiles:
    """The manifest files found (sorted by their path relative to the root) and warnings about links."""

    files: list[Path] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)


def find_manifest_files(root: Path) -> ManifestFiles:
    """Every manifest file under ``root``, by the rule of the module docstring."""
    out = ManifestFiles()
    seen: set[tuple[int, int]] = set()

    def walk(directory: Path) -> None:
        try:
            st = directory.stat()
        except OSError:
            return
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            rel = directory.relative_to(root).as_posix()
            out.warnings.append(
                Diagnostic(
                    SourceLocation(rel),
                    f"symbolic link to a directory already searched ({os.path.realpath(directory)}); skipped",
                    "warning",
                )
            )
            return
        seen.add(ident)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = directory / entry.name
            if entry.is_dir():  # follows links
                walk(path)
            elif entry.name.lower().endswith(MANIFEST_SUFFIXES):
                out.files.append(path)  # links to files, devices and broken links too: the loader says why

    walk(root)
    out.files.sort(key=lambda p: p.relative_to(root).as_posix())
    return out


def discover_manifests(root: Path) -> list[Path]:
    """Every manifest file under ``root``, sorted by path relative to ``root`` (posix); warnings dropped."""
    return find_manifest_files(root).files


def file_sha256(file: Path) -> str | None:
    """The hex SHA-256 of a file's bytes, read in blocks; ``None`` when it cannot be read."""
    h = hashlib.sha256()
    try:
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


class DigestBuilder:
    """Collects files (each once, by relative path) and gives the directory's ``sha256:...`` digest."""

    def __init__(self) -> None:
        self._parts: dict[str, str] = {}

    def add(self, rel: str, file: Path) -> None:
        """Add ``file`` under the name ``rel``; a file that cannot be read is left out (whoever reads it reports
        the problem)."""
        if rel in self._parts:
            return
        digest = file_sha256(file)
        if digest is not None:
            self._parts[rel] = digest

    def digest(self) -> str:
        h = hashlib.sha256()
        for rel in sorted(self._parts):
            h.update(f"{rel}\0{self._parts[rel]}\n".encode())
        return "sha256:" + h.hexdigest()
