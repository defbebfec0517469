"""The store lock: one apply or rollback at a time per store (SPEC §7a), like Terraform's state lock.

The lock is an exclusive ``flock`` on a lock file, so the kernel releases it when the process ends, however
it ends (a crash, SIGKILL): a lock never outlives its holder. The file also records who holds it
(``{"host", "pid", "since", "command"}``), for the message a waiting run prints, and is emptied on release.
A record still present when the lock is free was left by a holder that died without releasing it: the new
holder takes over and says so.

Where the lock file is: beside the SQLite database (``<db>.lock``), so every workspace writing that database
shares it; for Encord, beside the workspace's journal directory, one file per store
(``<journal_dir>.encord-<domain>-<hash>.lock``), so only runs sharing that journal directory share the lock. A lock protects only runs that
share the filesystem it is on (``flock`` over NFS depends on the server).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import LockError
from reconciler.providers.base import ProviderIdentity

__all__ = ["LockHolder", "StoreLock", "lock_path", "parse_duration"]

_POLL = 0.1


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a lock, as recorded in its file."""

    host: str
    pid: int
    since: str
    command: str

    def __str__(self) -> str:
        return f"{self.command} by pid {self.pid} on host {self.host} since {self.since}"

    @property
    def is_dead(self) -> bool:
        """Whether the holder is known to be gone (same host, no such process)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False


def lock_path(identity: ProviderIdentity, journal_dir: Path, *, beside_store: bool) -> Path:
    """The lock file of a store: beside a local store's file (``beside_store``: the SQLite database), or beside
    the journal directory for a remote store."""
    if beside_store:
        # Links resolved: every path that reaches one database (a symlink to it, say) shares its lock.
        db = Path(os.path.realpath(identity.location))
        return db.with_name(db.name + ".lock")
    # A domain's case does not name another store.
    location = identity.location.rstrip("/").lower()
    host = re.sub(r"[^A-Za-z0-9.-]+", "_", location.split("://", 1)[-1]).strip("_")[:60]
    digest = hashlib.sha256(f"{identity.type}\0{location}".encode()).hexdigest()[:12]
    journals = Path(os.path.realpath(journal_dir))
    return journals.parent / f"{journals.name}.{identity.type}-{host}-{digest}.lock"


def parse_duration(text: str) -> float:
    """``30s``, ``2m``, ``1h``, ``1m30s`` or plain seconds (``45``, ``0.5``) as seconds; ValueError if not."""
    t = text.strip().lower()
    try:
        value = float(t)
    except ValueError:
        m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", t)
        if not t or m is None:
            raise ValueError(f"{text!r} is not a duration (examples: 30s, 2m, 1h, 45)") from None
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        value = h * 3600 + mi * 60 + s
    if value < 0 or value != value or value == float("inf"):
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 2m, 1h, 45)")
    return value


class StoreLock:
    """An exclusive lock on one store, held from :meth:`acquire` until :meth:`release` or process exit."""

    def __init__(self, path: Path, store: str, command: str) -> None:
        self.path = path
        self.store = store
        self.command = command
        self._fd: int | None = None
        self.took_over: LockHolder | None = None  # a dead holder's record found on acquiring

    def acquire(
        self, timeout: float = 0.0, on_wait: Callable[[LockHolder | None], None] | None = None
    ) -> None:
        """Take the lock, waiting up to ``timeout`` seconds; LockError naming the holder if it stays taken."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Never through a link, and only a regular file: a link planted at this path (it is predictable,
            # and may be committed beside the manifests) must not make the lock truncate or create its target.
            fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LockError(
                    f"{self.path}: the lock file of {self.store} is a symbolic link; a lock is never taken "
                    "through one (remove it)"
                ) from exc
            raise LockError(
                f"{self.path}: cannot create the lock file of {self.store}: {exc.strerror}"
            ) from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LockError(
                f"{self.path}: the lock file of {self.store} is not a regular file; a lock is taken only in one "
                "(remove it)"
            )
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise LockError(f"{self.path}: cannot lock {self.store}: {exc.strerror}") from exc
            holder = _read_holder(fd)
            if time.monotonic() >= deadline:
                os.close(fd)
                who = str(holder) if holder is not None else "a process that has not recorded itself yet"
                dead = (
                    " (that process is no longer running, but a process it started still holds the lock)"
                    if holder is not None and holder.is_dead
                    else ""
                )
                waited_for = f" after waiting {timeout:g}s" if timeout else ""
                raise LockError(
                    f"{self.store} is locked by another run: {who}{dead} (lock file {self.path}). Nothing was "
                    f"written{waited_for}. Wait for it to end, or pass --lock-timeout (e.g. 5m) to wait."
                )
            if not waited and on_wait is not None:
                on_wait(holder)
            waited = True
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))
        self._fd = fd
        self.took_over = _read_holder(fd)
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": dt.datetime.now(dt.timezone.utc)
            .replace(microsecond=0)
            .isoformat()
            .replace("+00:00", "Z"),
            "command": self.command,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record, sort_keys=True) + "\n").encode(), 0)
            os.fsync(fd)
        except OSError as exc:
            self.release()
            raise LockError(f"{self.path}: cannot write the lock file: {exc.strerror}") from exc

    def release(self) -> None:
        """Empty the holder record and unlock (the kernel would unlock at exit anyway)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # the record then reads as a dead holder's, and is taken over
        finally:
            os.close(fd)

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> LockHolder | None:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    host, pid, since, command = (data.get(k) for k in ("host", "pid", "since", "command"))
    if not (
        isinstance(host, str) and isinstance(pid, int) and isinstance(since, str) and isinstance(command, str)
    ):
        return None
    return LockHolder(host, pid, since, command)
