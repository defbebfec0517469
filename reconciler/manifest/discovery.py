"""Which files make up a manifest directory, and the digest that pins their exact bytes.

A manifest file is any ``*.yaml`` / ``*.yml`` under the directory, recursively; hidden files and hidden
directories (``.git``, ``.reconciler``, ...) are skipped. The loader, ``validate``, ``fmt`` and the digest all
use :func:`find_manifest_files`. Symbolic links are followed, to files and to directories alike, as long as they
stay inside the repository that holds the directory (the nearest directory above it with a ``.git``; without
one, the manifest directory itself): a link that leads out of it (to ``/etc``, a home directory, a key) is an
error, and nothing behind it is read. A linked directory is searched like a real one, and each real directory is
searched once, so a link back to a directory already being searched (a loop) is skipped with a warning instead
of being searched forever.

The digest is SHA-256 over each file's path (relative, posix) and the SHA-256 of its bytes, in path order: the
same directory gives the same digest on every machine, and any change to any byte of a manifest or source file
gives another one. Nothing here parses YAML.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from reconciler import forked
from reconciler.errors import Diagnostic, SourceLocation

__all__ = [
    "MANIFEST_SUFFIXES",
    "DigestBuilder",
    "ManifestFiles",
    "discover_manifests",
    "file_sha256",
    "find_manifest_files",
    "link_boundary",
]

MANIFEST_SUFFIXES: Final = (".yaml", ".yml")


@dataclass
class ManifestFiles:
    """The manifest files found (sorted by their path relative to the root) and warnings about links."""

    files: list[Path] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    #: Links that lead out of the repository (their targets are not read).
    errors: list[Diagnostic] = field(default_factory=list)


def link_boundary(root: Path) -> Path:
    """Where the links of the manifest directory ``root`` may lead: the repository holding it (the nearest
    directory at or above it with a ``.git``), else ``root`` itself (both with links resolved)."""
    real = Path(os.path.realpath(root))
    for d in (real, *real.parents):
        if (d / ".git").exists():
            return d
    return real


def find_manifest_files(root: Path) -> ManifestFiles:
    """Every manifest file under ``root``, by the rule of the module docstring."""
    out = ManifestFiles()
    seen: set[tuple[int, int]] = set()
    boundary = link_boundary(root)

    def escapes(entry: os.DirEntry[str], path: Path) -> bool:
        if not entry.is_symlink():
            return False
        target = Path(os.path.realpath(path))
        if target == boundary or boundary in target.parents:
            return False
        out.errors.append(
            Diagnostic(
                SourceLocation(path.relative_to(root).as_posix()),
                "symbolic link out of the repository that holds the manifest directory; not read",
            )
        )
        return True

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
                if not escapes(entry, path):
                    walk(path)
            elif entry.name.lower().endswith(MANIFEST_SUFFIXES) and not escapes(entry, path):
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


#: A file this large is hashed by a forked copy of the process (Linux) while the process goes on, where a
#: :class:`DigestBuilder` is made with ``ahead=True`` (the loader: a plan needs the digest only at its end).
HASH_AHEAD_BYTES = 64 << 20


class _HashAhead:
    """The hex SHA-256 of one file, computed by a forked copy of this process from the moment it is made:
    :meth:`result` waits for it. If the copy could not say (it died, or could not read the file), the file
    is hashed here after all (:func:`file_sha256`)."""

    def __init__(self, file: Path, pid: int, answer: int) -> None:
        self.file = file
        self._pid: int | None = pid
        self._answer = answer

    @classmethod
    def start(cls, file: Path) -> _HashAhead | None:
        """A copy hashing ``file``, or ``None`` where none is made (a small file, another system than Linux,
        other threads running, no process or file to be had: then hash it here)."""
        if not sys.platform.startswith("linux") or threading.active_count() != 1:
            return None
        try:
            fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < HASH_AHEAD_BYTES:
                return None
            answer, out = os.pipe()
            try:
                pid = os.fork()
            except OSError:
                os.close(answer)
                os.close(out)
                return None
            if pid == 0:  # the copy: never returns
                try:
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    os.close(answer)
                    quiet = os.open(os.devnull, os.O_RDWR)  # (holds none of the command's pipes open)
                    for n in (0, 1, 2):
                        os.dup2(quiet, n)
                    h = hashlib.sha256()
                    buf = bytearray(1 << 20)
                    view = memoryview(buf)
                    while n := os.readv(fd, [buf]):
                        h.update(view[:n])
                    os.write(out, h.hexdigest().encode())
                finally:
                    os._exit(0)
            os.close(out)
            return cls(file, pid, answer)
        except OSError:
            return None
        finally:
            os.close(fd)

    def result(self) -> str | None:
        """The file's hex SHA-256 (``None``: it cannot be read), as :func:`file_sha256` gives it."""
        data = b""
        if self._pid is not None:
            with contextlib.suppress(OSError):
                while chunk := os.read(self._answer, 128):
                    data += chunk
            self.close()
        if len(data) == 64:
            return data.decode()
        return file_sha256(self.file)

    def close(self) -> None:
        """Stop the copy if it still runs (idempotent)."""
        pid, self._pid = self._pid, None
        if pid is None:
            return
        forked.stop(pid)
        with contextlib.suppress(OSError):
            os.close(self._answer)

    def __del__(self) -> None:
        self.close()


class DigestBuilder:
    """Collects files (each once, by relative path) and gives the directory's ``sha256:...`` digest.

    ``ahead``: files of :data:`HASH_AHEAD_BYTES` or more are hashed by another process from the moment they
    are added, and :meth:`digest` waits for them (the same digest, from the same bytes)."""

    def __init__(self, *, ahead: bool = False) -> None:
        self._parts: dict[str, str | _HashAhead] = {}
        self._ahead = ahead

    def add(self, rel: str, file: Path) -> None:
        """Add ``file`` under the name ``rel``; a file that cannot be read is left out (whoever reads it reports
        the problem)."""
        if rel in self._parts:
            return
        pending = _HashAhead.start(file) if self._ahead else None
        if pending is not None:
            self._parts[rel] = pending
            return
        digest = file_sha256(file)
        if digest is not None:
            self._parts[rel] = digest

    def digest(self) -> str:
        h = hashlib.sha256()
        for rel in sorted(self._parts):
            part = self._parts[rel]
            if isinstance(part, _HashAhead):
                got = part.result()
                if got is None:  # (it could not be read after all: left out, as file_sha256 says)
                    del self._parts[rel]
                    continue
                part = self._parts[rel] = got
            h.update(f"{rel}\0{part}\n".encode())
        return "sha256:" + h.hexdigest()
