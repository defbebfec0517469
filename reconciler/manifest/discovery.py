"""Which files make up a manifest directory, and the digest that pins their exact bytes.

A manifest file is any ``*.yaml`` / ``*.yml`` under the directory, recursively; hidden files and hidden
directories (``.git``, ``.reconciler``, ...) are skipped. The digest is SHA-256 over each file's path (relative,
posix) and the SHA-256 of its bytes, in path order: the same directory gives the same digest on every machine,
and any change to any byte of a manifest or source file gives another one. Nothing here parses YAML.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

__all__ = ["MANIFEST_SUFFIXES", "DigestBuilder", "discover_manifests", "file_sha256"]

MANIFEST_SUFFIXES: Final = (".yaml", ".yml")


def discover_manifests(root: Path) -> list[Path]:
    """Every manifest file under ``root``, sorted by path relative to ``root`` (posix)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(MANIFEST_SUFFIXES):
                found.append(Path(dirpath, name))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


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
