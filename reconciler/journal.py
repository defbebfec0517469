"""The apply journal: before/after images of every written file, on disk before each batch is sent.

``<journal_dir>/<UTC timestamp>-<plan id>.jsonl`` (one JSON object per line, SPEC §7)::

    {"record": "header", "format_version": "1", "kind": "apply" | "rollback", "plan_id": ...,
     "provider": {"type": ..., "path" | "domain": ...}, "tool_version": ..., "started_at": ...,
     "plan_checksum": ...}      (plan_checksum: only when a saved plan is applied)
    {"record": "file", "uuid": ..., "folder": ..., "name": ..., "before": {...}, "after": {...},
     "status": "pending"}

A data unit of a dataset also carries ``"dataset": {"hash", "title", "data_hash", "backing_item"}`` (as in the
plan JSON), so that rollback writes it back through the same API.
    {"record": "result", "uuid": ..., "status": "written" | "failed", "reason": ...}

The ``file`` lines of a batch are written and fsynced before the batch is sent; its ``result`` lines after
the answer. A file's status is its last line: a ``pending`` with no result means the batch was in flight
when the process stopped (it may or may not have been written). Only files that are actually sent are
journaled (stale and already-as-planned files are not). Metadata only: never credentials.

:func:`read_journal` reads a journal back, tolerating a torn last line (a process killed mid-write) and
reporting real corruption as ``path:line: message``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar, cast

from pydantic import SkipValidation, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from reconciler import jsoncodec
from reconciler._version import __version__
from reconciler.errors import JournalError
from reconciler.fileio import new_temp_file
from reconciler.jsonio import loads
from reconciler.providers import registry
from reconciler.providers.base import ProviderIdentity
from reconciler.providers.registry import identity_from_json, identity_to_json

if TYPE_CHECKING:
    from reconciler.apply import FileResult
    from reconciler.plan.model import DatasetRef, FileChange, Plan
    from reconciler.types import MetadataDict, MetadataView

__all__ = [
    "JOURNAL_FORMAT_VERSION",
    "EntryStatus",
    "JournalEntry",
    "JournalFile",
    "JournalHeader",
    "JournalWriter",
    "plan_id",
    "read_journal",
    "safe_identity",
]

JOURNAL_FORMAT_VERSION = "1"


class EntryStatus(str, enum.Enum):
    """Where a journaled file's write got to."""

    PENDING = "pending"  # journaled, batch sent or about to be; no answer recorded
    WRITTEN = "written"
    FAILED = "failed"


def plan_id(plan: Plan) -> str:
    """A short stable id of a plan's content: the store, the manifests digest, and every change it makes.

    Every schema change and every key change (key, action, ``before`` and ``after``) of every planned file
    contributes, so two plans that write anything differently (two ``--target`` plans of the same files, say)
    get different ids. The creation time does not count: planning the same thing twice gives the same id.
    """
    h = hashlib.sha256()
    for part in (plan.provider.type, plan.provider.location, plan.manifests_digest, plan.schema_fingerprint):
        h.update(part.encode() + b"\0")
    for c in plan.schema_changes:
        after = c.after.to_json() if c.after else None
        h.update(f"{c.key}\0{c.action.value}\0{c.renamed_from or ''}\0{_canonical(after)}\n".encode())
    # One pass of the encoder over every file's changes (a Python loop per value costs ten times more); the
    # codec's text is the standard library's byte for byte (``_canonical``, NaN allowed). ``_value_`` is
    # ``.value`` without the enum property's cost (most of this function's time, at 10,000 files).
    files = [
        (
            f.uuid,
            f.live_fingerprint,
            f.strategy._value_,
            [(k.key, k.action._value_, k.before, k.after) for k in f.changes],
        )
        for f in plan.files
    ]
    h.update(jsoncodec.checksum_text(files))
    return h.hexdigest()[:12]


_canonical = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode


def safe_identity(identity: ProviderIdentity) -> ProviderIdentity:
    """The identity with anything secret (``user:password@``, a query string) removed (never journaled)."""
    return registry.safe_identity(identity)


class JournalWriter:
    """Appends journal lines and fsyncs them before the batch they describe is sent (apply's ``Journal``).

    The file is created with the first batch, so an apply that writes nothing (a stale plan, nothing to do)
    leaves no journal; ``path`` is ``None`` until then. ``kind`` is ``apply`` or ``rollback``;
    ``rolls_back`` names the journal a rollback restores.
    """

    def __init__(
        self,
        directory: Path,
        plan: Plan,
        *,
        now: dt.datetime | None = None,
        kind: str = "apply",
        rolls_back: str | None = None,
        plan_checksum: str | None = None,
    ) -> None:
        stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
        pid = plan_id(plan)
        self.directory = directory
        self.path: Path | None = None
        self._stem = f"{stamp}-{pid}"
        self._fh: IO[str] | None = None
        self._size = 0  # bytes of the journal written so far (checked against the file on disk)
        self._lock = threading.Lock()
        self._header: dict[str, object] = {
            "record": "header",
            "format_version": JOURNAL_FORMAT_VERSION,
            "kind": kind,
            "plan_id": pid,
            "provider": identity_to_json(safe_identity(plan.provider)),
            "tool_version": __version__,
            "started_at": stamp,
        }
        if rolls_back is not None:
            self._header["rolls_back"] = rolls_back
        if plan_checksum:  # a saved plan's: an apply of the same file again is recognised as a replay
            self._header["plan_checksum"] = plan_checksum

    def _open(self) -> IO[str]:
        """Create the journal with its header in place, atomically: a process killed at any moment leaves
        either no journal or one whose first line is a complete header (a hidden temporary file at worst)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"{self.directory}: cannot create the journal directory: {exc.strerror}"
            ) from exc
        fh: IO[str] | None = None
        try:
            fd, name = new_temp_file(self.directory / self._stem)
        except OSError as exc:
            raise JournalError(f"{self.directory}: cannot create the journal: {exc.strerror}") from exc
        tmp = Path(name)
        try:
            fh = os.fdopen(fd, "a", encoding="utf-8")
            fh.write(_line(self._header))
            fh.flush()
            os.fsync(fh.fileno())
            self.path = self._link(tmp, self.directory, self._stem)
            # Keep appending to the very file that got the name (a hard link: the same inode), so a file
            # put in its place at any moment is detected (``_check_same_file``).
            if os.stat(self.path).st_ino != os.fstat(fh.fileno()).st_ino:  # copied (no hard links here)
                fh.close()
                fh = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            if fh is not None:
                fh.close()
            if self.path is not None and isinstance(exc, FileNotFoundError):
                raise JournalError(f"{self.path}: the journal was deleted during the apply") from exc
            raise JournalError(f"{self.directory}: cannot create the journal: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        return fh

    @staticmethod
    def _link(tmp: Path, directory: Path, stem: str) -> Path:
        """Give ``tmp`` a new journal name (never another run's journal, even within the same second)."""
        for n in range(1, 1000):
            path = directory / (f"{stem}.jsonl" if n == 1 else f"{stem}-{n}.jsonl")
            try:
                os.link(tmp, path)
            except FileExistsError:
                continue
            except OSError:  # no hard links here (some network filesystems): exclusive create + copy
                try:
                    with path.open("x", encoding="utf-8") as fh:
                        fh.write(tmp.read_text(encoding="utf-8"))
                        fh.flush()
                        os.fsync(fh.fileno())
                except FileExistsError:
                    continue
            return path
        raise JournalError(f"{directory}: too many journals named {stem}")

    def prepare(self) -> None:
        """apply's ``Journal.prepare``: :meth:`probe`."""
        self.probe()

    def probe(self) -> None:
        """Create the journal directory and prove it takes a write (write, fsync and remove a probe file).

        Called before the first write of any kind (the schema's too), so a journal that cannot be written
        stops an apply before anything changes. Raises JournalError.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"{self.directory}: cannot create the journal directory: {exc.strerror}; nothing was written"
            ) from exc
        probe = self.directory / f".probe-{os.getpid()}-{threading.get_ident()}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, b"reconciler journal probe\n" * 64)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise JournalError(
                f"{self.directory}: the journal directory cannot be written: {exc.strerror}; nothing was written"
            ) from exc
        finally:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)

    def _check_same_file(self, fh: IO[str]) -> None:
        """The journal on disk must still be the file this writer appends to, as long as it wrote it: a journal
        deleted, replaced or cut meanwhile would hide the writes it recorded."""
        try:
            on_disk = os.stat(self.path) if self.path is not None else None
        except FileNotFoundError:
            on_disk = None
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot check the journal: {exc.strerror}") from exc
        mine = os.fstat(fh.fileno())
        if on_disk is None:
            raise JournalError(f"{self.path}: the journal was deleted during the apply")
        if (on_disk.st_dev, on_disk.st_ino) != (mine.st_dev, mine.st_ino):
            raise JournalError(f"{self.path}: the journal was replaced by another file during the apply")
        if on_disk.st_size != self._size:
            raise JournalError(
                f"{self.path}: the journal was changed by someone else during the apply "
                f"({on_disk.st_size} bytes on disk, {self._size} written)"
            )

    def _write(self, records: Sequence[dict[str, object]]) -> None:
        text = "".join(map(_line, records))
        with self._lock:
            try:
                if self._fh is None:
                    self._fh = self._open()
                    self._size = os.fstat(self._fh.fileno()).st_size
                self._check_same_file(self._fh)
                self._fh.write(text)
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._size = os.fstat(self._fh.fileno()).st_size
            except OSError as exc:
                raise JournalError(f"{self.path}: cannot write the journal: {exc.strerror}") from exc

    def before_batch(self, entries: Sequence[tuple[FileChange, MetadataView, MetadataView]]) -> None:
        self._write(
            [
                {
                    "record": "file",
                    "uuid": c.uuid,
                    "folder": c.folder,
                    "name": c.name,
                    "before": dict(before),
                    "after": dict(after),
                    "status": EntryStatus.PENDING.value,
                    **_dataset_field(c),
                }
                for c, before, after in entries
            ]
        )

    def after_batch(self, results: Sequence[FileResult]) -> None:
        self._write(
            [
                {"record": "result", "uuid": r.change.uuid, "status": r.status.value, "reason": r.reason}
                for r in results
            ]
        )

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                # A failed final flush: the write error was already reported.
                with contextlib.suppress(OSError):
                    self._fh.close()


def _line(record: Mapping[str, object]) -> str:
    """One journal line: sorted keys, no spaces, UTF-8 kept (:func:`jsoncodec.checksum_text`)."""
    return jsoncodec.checksum_text(record).decode() + "\n"


def _fsync_dir(directory: Path) -> None:
    """Make the new file's directory entry durable too (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class JournalHeader:
    """The first line of a journal."""

    plan_id: str
    provider: ProviderIdentity
    tool_version: str
    started_at: str
    kind: str = "apply"
    rolls_back: str | None = None


@dataclass(frozen=True)
class JournalEntry:
    """One journaled file: the full dicts before and after the write, and how far the write got.

    ``line`` is the line of its ``file`` record (1-based), for messages that point into the journal.
    """

    uuid: str
    folder: str
    name: str
    before: MetadataDict
    after: MetadataDict
    status: EntryStatus
    reason: str
    line: int
    dataset: DatasetRef | None = None  # a data unit of a dataset (SPEC §7b)

    @property
    def address(self) -> str:
        return f"{self.folder}/{self.name}"


@dataclass(frozen=True)
class JournalFile:
    """A journal read back: its header and one entry per journaled file, in journal order.

    ``torn`` says that an incomplete last line (a process killed while writing it) was left out.
    """

    path: Path
    header: JournalHeader
    entries: tuple[JournalEntry, ...]
    torn: bool = False
    digest: str = ""  # sha256 of the file's bytes (names the journal in a rollback plan)

    def count(self, status: EntryStatus) -> int:
        return sum(1 for e in self.entries if e.status is status)


_RESULT_STATUSES = {"written": EntryStatus.WRITTEN, "failed": EntryStatus.FAILED}


def read_journal(path: str | os.PathLike[str]) -> JournalFile:
    """Read a journal written by :class:`JournalWriter`.

    A last line without its newline that is not valid JSON is the mark of a process killed mid-write: it is
    left out (``torn``). Anything else that is wrong is corruption and raises ``JournalError`` with
    ``path:line: message``.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise JournalError(f"{p}: cannot read the journal: {exc.strerror}") from exc
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A kill can cut a multi-byte character only in the torn last line.
        last_nl = raw.rfind(b"\n")
        if exc.start <= last_nl:
            bad_line = raw.count(b"\n", 0, exc.start) + 1
            raise JournalError(f"{p}:{bad_line}: not a journal (not UTF-8 text)") from exc
        text = raw[: last_nl + 1].decode("utf-8")
        text += "\ufffd"  # keeps the torn tail visible as torn
    lines = text.split("\n")
    torn = False
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        try:
            loads(lines[-1])
        except json.JSONDecodeError:
            lines.pop()
            torn = True
    header: JournalHeader | None = None
    entries: dict[str, _MutableEntry] = {}
    for n, line in enumerate(lines, 1):
        where = f"{p}:{n}"
        if not line.strip():
            raise JournalError(f"{where}: empty line in the journal")
        try:
            rec = loads(line)
        except json.JSONDecodeError as exc:
            raise JournalError(f"{where}: corrupt journal line (invalid JSON: {exc.msg})") from exc
        if not isinstance(rec, dict):
            raise JournalError(f"{where}: corrupt journal line (expected a JSON object)")
        kind = rec.get("record")
        if n == 1:
            if kind != "header":
                raise JournalError(f"{where}: not a reconciler journal (the first line is not a header)")
            header = _header(rec, where)
            continue
        if kind == "file":
            e = _file(rec, where, n)
            entries[e.uuid] = e  # a uuid journaled twice: the later write is the one that counts
        elif kind == "result":
            uuid, status, reason = _result_uuid(rec, where)
            if not isinstance(status, str) or status not in _RESULT_STATUSES:
                raise JournalError(f"{where}: unknown result status {status!r}")
            if uuid not in entries:
                raise JournalError(f"{where}: result for file {uuid} that the journal does not list")
            entries[uuid].status = _RESULT_STATUSES[status]
            entries[uuid].reason = reason
        elif kind == "header":
            raise JournalError(f"{where}: a second header (two journals in one file?)")
        else:
            raise JournalError(f"{where}: unknown journal record {kind!r}")
    if header is None:
        what = "its first line is incomplete" if torn else "it is empty"
        raise JournalError(f"{p}: not a usable journal ({what}: the apply stopped before writing anything)")
    return JournalFile(
        p, header, tuple(e.freeze() for e in sorted(entries.values(), key=lambda e: e.line)), torn, digest
    )


@dataclass
class _MutableEntry:
    uuid: str
    folder: str
    name: str
    before: MetadataDict
    after: MetadataDict
    status: EntryStatus
    reason: str
    line: int
    dataset: DatasetRef | None = None

    def freeze(self) -> JournalEntry:
        return JournalEntry(
            self.uuid,
            self.folder,
            self.name,
            self.before,
            self.after,
            self.status,
            self.reason,
            self.line,
            self.dataset,
        )


class _HeaderRecord(TypedDict):
    """The ``header`` line (``format_version`` and ``provider`` are checked before, for their own messages)."""

    plan_id: str
    tool_version: str
    started_at: str
    kind: NotRequired[SkipValidation[object]]
    rolls_back: NotRequired[SkipValidation[object]]


class _FileRecord(TypedDict):
    """A ``file`` line: the full dicts before and after the write (metadata values are passed on as read)."""

    uuid: str
    folder: str
    name: str
    before: dict[str, SkipValidation[object]]
    after: dict[str, SkipValidation[object]]


class _ResultRecord(TypedDict):
    uuid: str
    status: SkipValidation[object]
    reason: NotRequired[SkipValidation[object]]


_HEADER: TypeAdapter[_HeaderRecord] = TypeAdapter(_HeaderRecord)
_FILE: TypeAdapter[_FileRecord] = TypeAdapter(_FileRecord)
_RESULT: TypeAdapter[_ResultRecord] = TypeAdapter(_ResultRecord)
_T = TypeVar("_T")


def _validated(adapter: TypeAdapter[_T], rec: dict[str, object], where: str, what: str) -> _T:
    """``rec`` checked against its record type; the first problem as ``path:line: corrupt journal ...``."""
    try:
        return adapter.validate_python(rec, strict=True)
    except ValidationError as exc:
        key = exc.errors()[0]["loc"][0]
    kind = "an object" if key in ("before", "after") else "a string"
    raise JournalError(f"{where}: corrupt journal {what} ({key!r} must be {kind})")


def _result_uuid(rec: dict[str, object], where: str) -> tuple[str, object, str]:
    r = _validated(_RESULT, rec, where, "line")
    return r["uuid"], r["status"], str(r.get("reason") or "")


def _header(rec: dict[str, object], where: str) -> JournalHeader:
    version = rec.get("format_version", JOURNAL_FORMAT_VERSION)
    if version != JOURNAL_FORMAT_VERSION:
        raise JournalError(
            f"{where}: journal format_version {version!r} is not one this reconciler reads "
            f"({JOURNAL_FORMAT_VERSION!r})"
        )
    try:
        provider = identity_from_json(rec.get("provider"))
    except ValueError as exc:
        raise JournalError(f"{where}: corrupt journal header ({exc})") from exc
    h = _validated(_HEADER, rec, where, "line")
    rolls_back = h.get("rolls_back")
    return JournalHeader(
        plan_id=h["plan_id"],
        provider=provider,
        tool_version=h["tool_version"],
        started_at=h["started_at"],
        kind=str(h.get("kind") or "apply"),
        rolls_back=rolls_back if isinstance(rolls_back, str) else None,
    )


def _file(rec: dict[str, object], where: str, line: int) -> _MutableEntry:
    status = rec.get("status", "pending")
    if status != EntryStatus.PENDING.value:
        raise JournalError(f"{where}: corrupt journal line (a file record's status must be 'pending')")
    f = _validated(_FILE, rec, where, "line")
    return _MutableEntry(
        uuid=f["uuid"],
        folder=f["folder"],
        name=f["name"],
        before=cast("MetadataDict", f["before"]),
        after=cast("MetadataDict", f["after"]),
        status=EntryStatus.PENDING,
        reason="",
        line=line,
        dataset=_read_dataset_field(rec, where),
    )


def _dataset_field(c: FileChange) -> dict[str, object]:
    d = c.dataset
    if d is None:
        return {}
    return {
        "dataset": {
            "hash": d.hash,
            "title": d.title,
            "data_hash": d.data_hash,
            "backing_item": d.backing_item,
        }
    }


def _read_dataset_field(rec: dict[str, object], where: str) -> DatasetRef | None:
    from reconciler.plan.model import DatasetRef

    raw = rec.get("dataset")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise JournalError(f"{where}: corrupt journal line ('dataset' must be an object)")
    backing = raw.get("backing_item")
    if backing is not None and not isinstance(backing, str):
        raise JournalError(f"{where}: corrupt journal line ('dataset.backing_item' must be a string or null)")
    fields = [raw.get(k) for k in ("hash", "title", "data_hash")]
    for key, value in zip(("hash", "title", "data_hash"), fields, strict=True):
        if not isinstance(value, str):
            raise JournalError(f"{where}: corrupt journal line ('dataset.{key}' must be a string)")
    ref = DatasetRef(str(fields[0]), str(fields[1]), str(fields[2]), backing)
    if rec.get("uuid") != (ref.backing_item or ref.data_hash):
        raise JournalError(
            f"{where}: corrupt journal line (a data unit's uuid must be its backing_item, or its data_hash)"
        )
    return ref
