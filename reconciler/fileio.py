"""Writing a file reconciler produces (a saved plan, a snapshot, manifests): one rule, in one place.

* A symlink is followed: its target is what gets written (as ``> file`` does in a shell), and the link stays.
* A regular file (or a new one) is written whole or not at all: the text goes to a temporary file made with
  ``mkstemp`` beside the target (a fresh name, opened with ``O_EXCL``, so nothing planted in advance can
  redirect it), is fsynced, then renamed over the target. The target keeps its mode; a new file gets the
  usual ``0666`` minus the umask.
* Anything else that exists (a device such as ``/dev/stdout``, a FIFO) is written in place and never replaced
  by a regular file; a directory is refused.
* The directory must exist: nothing is created. Every failure is an :class:`~reconciler.errors.OutputError`
  naming the path, and leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from reconciler.errors import OutputError

__all__ = ["new_temp_file", "write_file"]


def write_file(path: str | os.PathLike[str], content: str | Callable[[IO[str]], None], *, what: str) -> None:
    """Write ``content`` (text, or a function writing to the open file) to ``path`` by the module's rule.

    ``what`` names the file in messages (``plan``, ``snapshot``, ``manifest``). Raises OutputError.
    """
    p = Path(path)
    write = _writer(content)
    try:
        st: os.stat_result | None = os.stat(p)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"{p}: cannot write the {what}: {exc.strerror}") from exc
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{p}: cannot write the {what}: it is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            with open(p, "w", encoding="utf-8") as fh:
                write(fh)
        except OSError as exc:
            raise OutputError(f"{p}: cannot write the {what}: {exc.strerror}") from exc
        return
    target = Path(os.path.realpath(p))
    if not target.parent.is_dir():
        raise OutputError(f"{p}: cannot write the {what}: the directory {p.parent} does not exist")
    try:
        fd, tmp = new_temp_file(target)
    except OSError as exc:
        raise OutputError(f"{p}: cannot write the {what}: {exc.strerror}") from exc
    try:
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                os.fchmod(fd, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
                if st is not None:
                    with contextlib.suppress(OSError):  # only root may give a file to another owner
                        os.fchown(fd, st.st_uid, st.st_gid)
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"{p}: cannot write the {what}: {exc.strerror}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def new_temp_file(beside: Path) -> tuple[int, str]:
    """A new, empty, private (``0600``) temporary file in ``beside``'s directory, hidden and named after it.

    ``mkstemp`` picks an unpredictable name and creates it with ``O_EXCL``, so a symlink or file planted in
    advance can never be what gets written. Returns the open descriptor and the path. Raises OSError.
    """
    return tempfile.mkstemp(dir=beside.parent, prefix=f".{beside.name}.", suffix=".tmp")


def _writer(content: str | Callable[[IO[str]], None]) -> Callable[[IO[str]], None]:
    if not isinstance(content, str):
        return content

    def write(fh: IO[str]) -> None:
        fh.write(content)

    return write


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
