"""Which files are manifests: every ``*.yaml``/``*.yml`` under the manifest directory, found one way.

The loader, ``validate`` and ``fmt`` all use :func:`find_manifest_files`. Hidden files and directories
(``.git``, ``.reconciler``) are skipped. Symbolic links are followed, to files and to directories alike:
a linked directory is searched like a real one, and each real directory is searched once, so a link back
to a directory already being searched (a loop) is skipped with a warning instead of being searched forever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import Diagnostic, SourceLocation

__all__ = ["MANIFEST_SUFFIXES", "ManifestFiles", "find_manifest_files"]

MANIFEST_SUFFIXES = (".yaml", ".yml")


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
