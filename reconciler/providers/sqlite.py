"""The embedded provider: live state in a local SQLite database (WAL; a batch is re-read and written in one transaction).

Layout version 1::

    meta(key PRIMARY KEY, value)              -- layout_version, created_by
    schema_wire(id = 1, wire TEXT)            -- the whole wire schema as JSON, in order
    folders(uuid PRIMARY KEY, parent, name, path UNIQUE)
    items(uuid PRIMARY KEY, folder, name, item_type, parent_item, metadata TEXT)
    datasets(hash PRIMARY KEY, title, position)                    -- Encord's legacy datasets (SPEC §7b)
    data_rows(data_hash PRIMARY KEY, dataset, position, title, data_type, backing_item, metadata TEXT)

A data row with a ``backing_item`` has no metadata of its own (``metadata`` is NULL): its custom metadata is
the backing item's, one value read and written through either API, as on Encord. A database made before the
dataset tables existed simply has no datasets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from reconciler.errors import ProviderConflictError, ProviderError, ProviderResponseError, UsageError
from reconciler.frames import raw_to_keys, to_keys, to_wire
from reconciler.jsonio import loads
from reconciler.model import LiveDataRow, LiveDataset, LiveFolder, LiveItem, ProviderConfig
from reconciler.progress import Progress, no_progress, seeding
from reconciler.providers.base import (
    CallStats,
    Capabilities,
    ListedItem,
    ProviderIdentity,
    ProviderRequest,
    StoreKind,
)
from reconciler.schema import WireSchema
from reconciler.snapshot import Snapshot, read_snapshot
from reconciler.types import JsonValue

__all__ = ["DEFAULT_PATH", "LAYOUT_VERSION", "SQLITE", "SqliteConfig", "SqliteKind", "SqliteProvider"]

log = logging.getLogger(__name__)

LAYOUT_VERSION = "1"
_CHUNK = 1000

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schema_wire (id INTEGER PRIMARY KEY CHECK (id = 1), wire TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS folders (
    uuid TEXT PRIMARY KEY, parent TEXT, name TEXT NOT NULL, path TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS items (
    uuid TEXT PRIMARY KEY, folder TEXT NOT NULL, name TEXT NOT NULL, item_type TEXT NOT NULL,
    parent_item TEXT, metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_folder ON items (folder, parent_item, name);
CREATE INDEX IF NOT EXISTS items_by_parent ON items (parent_item);
CREATE TABLE IF NOT EXISTS datasets (hash TEXT PRIMARY KEY, title TEXT NOT NULL, position INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS data_rows (
    data_hash TEXT PRIMARY KEY, dataset TEXT NOT NULL, position INTEGER NOT NULL, title TEXT NOT NULL,
    data_type TEXT NOT NULL, backing_item TEXT, metadata TEXT
);
CREATE INDEX IF NOT EXISTS data_rows_by_dataset ON data_rows (dataset, position);
"""

#: How often (in files) seeding reports progress.
SEED_PROGRESS_EVERY = 10_000


def _counted(items: Sequence[LiveItem], stage: str | None, on_progress: Progress) -> Iterable[LiveItem]:
    """``items``, reporting ``stage`` every :data:`SEED_PROGRESS_EVERY` items and at the end (if a stage)."""
    if stage is None:
        return items
    total = len(items)

    def walk() -> Iterator[LiveItem]:
        on_progress(stage, 0, total)
        for n, item in enumerate(items, 1):
            yield item
            if n % SEED_PROGRESS_EVERY == 0 and n != total:
                on_progress(stage, n, total)
        on_progress(stage, total, total)

    return walk()


_CHILD_PARENT_TYPES = ("group", "imageGroup", "imageSequence", "dicomSeries")


def _translate(exc: sqlite3.Error, path: Path) -> ProviderError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return ProviderConflictError(
            f"{path}: the database is locked by another process (another apply running?); try again when it ends"
        )
    if "not a database" in text or "malformed" in text:
        return ProviderError(f"{path}: not a reconciler SQLite database ({text})")
    return ProviderError(f"{path}: SQLite error: {text}")


class SqliteProvider:
    """Live state in one SQLite file. Thread-safe (one connection behind a lock).

    A missing database is created only from ``seed`` or when ``create`` is true, and then atomically: it is
    built in a temporary file beside ``path`` and linked into place once complete, so a bad seed or a kill
    leaves no database (and no directory it had to make) behind. Otherwise a missing database is a
    ProviderError and nothing is created (read-only commands pass ``create=False``).
    """

    capabilities = Capabilities(
        max_batch=_CHUNK,
        parallel_writes=False,
        raw_listing=True,
        digest_listing=True,
        atomic_batches=True,
        lock_beside_store=True,
        lists_datasets=True,
    )

    def __init__(
        self,
        path: str | Path,
        *,
        seed: str | Path | None = None,
        timeout: float = 5.0,
        create: bool = True,
        on_progress: Progress = no_progress,
    ) -> None:
        self.path = Path(path)
        self.identity = ProviderIdentity("sqlite", str(self.path))
        self.stats = CallStats()
        self._lock = threading.RLock()
        self._depth = 0  # open transactions on the connection (nested ones join the outer)
        if not self.path.exists():
            if seed is None and not create:
                raise ProviderError(f"no SQLite database at {self.path}")
            self._create(Path(seed) if seed is not None else None, on_progress)
        try:
            # mode=rw: a database that vanished since is an error, never a new empty one.
            self._db = sqlite3.connect(
                self.path.absolute().as_uri() + "?mode=rw",
                uri=True,
                timeout=timeout,
                check_same_thread=False,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        try:
            self._check_layout()
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            self._db.close()
            raise _translate(exc, self.path) from exc
        except BaseException:
            self._db.close()
            raise

    # -- set-up -------------------------------------------------------------------------------------------
    def _create(self, seed: Path | None, on_progress: Progress = no_progress) -> None:
        """Build the database (empty, or from ``seed``, reporting :func:`~reconciler.progress.seeding`)
        beside ``path`` and link it into place."""
        made: list[Path] = []  # directories this creates, removed again if it fails
        parent = self.path.absolute().parent
        while not parent.exists():
            made.append(parent)
            parent = parent.parent
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProviderError(
                f"{self.path}: cannot create the database's directory: {exc.strerror}"
            ) from exc
        tmp: Path | None = None
        try:
            snapshot, stage = Snapshot(), None
            if seed is not None:
                stage = seeding(self.path, seed)
                on_progress(stage, 0, None)
                snapshot = read_snapshot(seed)
            fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".seeding", dir=self.path.parent)
            os.close(fd)
            tmp = Path(name)
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                db.execute("BEGIN IMMEDIATE")
                for stmt in _DDL.strip().split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                db.execute("INSERT INTO meta (key, value) VALUES ('layout_version', ?)", (LAYOUT_VERSION,))
                self._load(snapshot, db, stage=stage, on_progress=on_progress)
                db.execute("COMMIT")
            finally:
                db.close()
            try:
                os.link(tmp, self.path)  # never replaces a database another process created meanwhile
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                if not self.path.exists():
                    os.replace(tmp, self.path)
            if seed is not None:
                log.info("created %s from seed %s", self.path, seed)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        except BaseException:
            for d in made:
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def _check_layout(self) -> None:
        db = self._db
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if tables:
                raise ProviderError(f"{self.path}: not a reconciler database (no layout version table)")
            # An empty file (nothing written yet): give it the layout, like a new database.
            with self._transaction():
                for stmt in _DDL.strip().split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                db.execute("INSERT INTO meta (key, value) VALUES ('layout_version', ?)", (LAYOUT_VERSION,))
                self._load(Snapshot(), db)
            return
        row = db.execute("SELECT value FROM meta WHERE key = 'layout_version'").fetchone()
        version = row[0] if row else None
        if version != LAYOUT_VERSION:
            raise ProviderError(
                f"{self.path}: unknown database layout version {version!r} "
                f"(this reconciler knows {LAYOUT_VERSION!r}); upgrade reconciler or recreate the database"
            )

    def _load(
        self,
        snap: Snapshot,
        db: sqlite3.Connection | None = None,
        *,
        stage: str | None = None,
        on_progress: Progress = no_progress,
    ) -> None:
        """Replace everything with ``snap`` (reporting ``stage`` as the files go in, when given)."""
        db = db or self._db
        db.execute("DELETE FROM schema_wire")
        db.execute("DELETE FROM folders")
        db.execute("DELETE FROM items")
        db.execute("INSERT INTO schema_wire (id, wire) VALUES (1, ?)", (json.dumps(snap.schema),))
        db.executemany(
            "INSERT INTO folders (uuid, parent, name, path) VALUES (?, ?, ?, ?)",
            [(f.uuid, f.parent, f.name, f.path) for f in snap.folders],
        )
        db.executemany(
            "INSERT INTO items (uuid, folder, name, item_type, parent_item, metadata) VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    i.uuid,
                    i.folder,
                    i.name,
                    i.item_type,
                    i.parent_item,
                    json.dumps(i.metadata, ensure_ascii=False),
                )
                for i in _counted(snap.items, stage, on_progress)
            ),
        )
        if self._has_datasets(db):
            db.execute("DELETE FROM datasets")
            db.execute("DELETE FROM data_rows")
        elif snap.datasets:
            raise ProviderError(
                f"{self.path}: this database predates datasets; recreate it from a snapshot to hold them"
            )
        for n, ds in enumerate(snap.datasets):
            db.execute(
                "INSERT INTO datasets (hash, title, position) VALUES (?, ?, ?)", (ds.hash, ds.title, n)
            )
            db.executemany(
                "INSERT INTO data_rows (data_hash, dataset, position, title, data_type, backing_item, metadata) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.data_hash,
                        ds.hash,
                        j,
                        r.title,
                        r.data_type,
                        r.backing_item,
                        None if r.backing_item else json.dumps(r.metadata, ensure_ascii=False),
                    )
                    for j, r in enumerate(ds.rows)
                ],
            )

    @staticmethod
    def _has_datasets(db: sqlite3.Connection) -> bool:
        row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'data_rows'").fetchone()
        return row is not None

    class _Tx:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) holding the connection's lock; nested
        inside another on the same thread it joins the outer transaction."""

        def __init__(self, provider: SqliteProvider) -> None:
            self.p = provider
            self.outer = False

        def __enter__(self) -> None:
            self.p._lock.acquire()
            if self.p._depth:
                self.p._depth += 1
                return
            try:
                self.p._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.p._lock.release()
                raise
            self.p._depth = 1
            self.outer = True

        def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
            try:
                self.p._depth -= 1
                if self.outer:
                    self.p._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.p._lock.release()

    def _transaction(self) -> SqliteProvider._Tx:
        return SqliteProvider._Tx(self)

    @contextlib.contextmanager
    def batch_transaction(self) -> Iterator[None]:
        """One write transaction around a batch's re-read and write (``BEGIN IMMEDIATE``): no other writer
        of the database can change the batch's files between the two, so no update is lost."""
        try:
            with self._transaction():
                yield
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc

    # -- StateProvider --------------------------------------------------------------------------------------
    def read_schema(self) -> WireSchema:
        self.stats.count("GET schema", write=False)
        rows = self._query("SELECT wire FROM schema_wire WHERE id = 1")
        data = loads(rows[0][0]) if rows else {}
        return dict(data or {})

    def write_schema(self, schema: Mapping[str, Mapping[str, Any]]) -> None:
        self.stats.count("POST schema", write=True)
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT OR REPLACE INTO schema_wire (id, wire) VALUES (1, ?)", (json.dumps(dict(schema)),)
                )
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def list_folders(self) -> list[LiveFolder]:
        self.stats.count("GET folders", write=False)
        rows = self._query("SELECT uuid, parent, name, path FROM folders ORDER BY path")
        return [LiveFolder(*r) for r in rows]

    def resolve_folder(self, ref: str) -> LiveFolder:
        self.stats.count("GET folder", write=False)
        ref = ref.strip("/")
        rows = self._query(
            "SELECT uuid, parent, name, path FROM folders WHERE uuid = ? OR path = ?", (ref, ref)
        )
        if not rows:
            raise ProviderConflictError(f"folder {ref!r} not found")
        return LiveFolder(*rows[0])

    def _listed_folders(
        self, folder: LiveFolder, recursive: bool
    ) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """The folders a listing of ``folder`` reads (it alone, or with every folder below it when
        ``recursive``), and each one's path prefix relative to ``folder`` ("" for ``folder`` itself)."""
        if recursive:
            folder_rows: list[tuple[str, str]] = self._query(
                "SELECT uuid, path FROM folders WHERE uuid = ? OR path LIKE ? ESCAPE '\\'",
                (folder.uuid, _like_prefix(folder.path) + "/%"),
            )
        else:
            folder_rows = [(folder.uuid, folder.path)]
        prefixes = {u: ("" if p == folder.path else p[len(folder.path) + 1 :] + "/") for u, p in folder_rows}
        return folder_rows, prefixes

    def iter_items(self, folder: LiveFolder, *, recursive: bool, children: bool) -> Iterator[ListedItem]:
        self.stats.count("GET folder items", write=False)
        folder_rows, prefixes = self._listed_folders(folder, recursive)
        out: list[ListedItem] = []
        for i in range(0, len(folder_rows), 500):
            chunk = [u for u, _ in folder_rows[i : i + 500]]
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT uuid, folder, name, item_type, parent_item, metadata FROM items WHERE folder IN ({marks})"
                + ("" if children else " AND parent_item IS NULL"),
                chunk,
            )
            top: dict[str, str] = {}
            kids: list[LiveItem] = []
            for r in rows:
                item = LiveItem(r[0], r[1], r[2], r[3], to_keys(_metadata(r[0], r[5])), r[4])
                if item.parent_item is None:
                    rel = prefixes[item.folder] + item.name
                    top[item.uuid] = rel
                    out.append(ListedItem(rel, item))
                else:
                    kids.append(item)
            for kid in kids:
                parent_rel = top.get(kid.parent_item or "")
                if parent_rel is not None:
                    out.append(ListedItem(parent_rel + "/" + kid.name, kid))
        out.sort(key=lambda li: li.rel_name)
        return iter(out)

    def iter_raw_items(
        self, folder: LiveFolder, *, recursive: bool, children: bool
    ) -> Iterator[tuple[str, str, str, str | dict[str, JsonValue]]]:
        """The items of :meth:`iter_items` as ``(rel_name, uuid, folder_uuid, metadata_json)``, streamed.

        Metadata that holds per-frame values comes decoded, as engine keys (:func:`reconciler.frames.raw_to_keys`).

        The metadata stays JSON text (the planner parses it only for the files it diffs), rows are fetched
        in pages, and nothing is sorted in Python: top-level items come in (folder, name) order from the
        ``items_by_folder`` index, then child items (``GROUP/CHILD``) when ``children``.
        """
        self.stats.count("GET folder items", write=False)
        folder_rows, prefixes = self._listed_folders(folder, recursive)
        for i in range(0, len(folder_rows), 500):
            chunk = [u for u, _ in folder_rows[i : i + 500]]
            marks = ",".join("?" * len(chunk))
            top = (
                "SELECT name, uuid, folder, metadata FROM items INDEXED BY items_by_folder "
                f"WHERE folder IN ({marks}) AND parent_item IS NULL ORDER BY folder, name"
            )
            for name, uuid, item_folder, raw in self._stream(top, chunk):
                yield prefixes[item_folder] + name, uuid, item_folder, raw_to_keys(raw)
            if children:
                kids = (
                    "SELECT p.name, c.name, c.uuid, p.folder, c.metadata FROM items AS c "
                    "JOIN items AS p ON p.uuid = c.parent_item "
                    f"WHERE c.folder IN ({marks}) AND p.folder IN ({marks}) AND p.parent_item IS NULL "
                    "ORDER BY p.folder, p.name, c.name"
                )
                for parent_name, name, uuid, parent_folder, raw in self._stream(kids, chunk + chunk):
                    yield (
                        f"{prefixes[parent_folder]}{parent_name}/{name}",
                        uuid,
                        parent_folder,
                        raw_to_keys(raw),
                    )

    def iter_raw_pages(
        self, folder: LiveFolder, *, recursive: bool, children: bool
    ) -> Iterator[tuple[str, list[tuple[str, str, bytes, int]]]]:
        """The items of :meth:`iter_raw_items`, in the same order, as pages of
        ``(folder_uuid, [(rel_name, uuid, metadata_utf8, rowid), ...])`` (the rowid makes a re-read cheap,
        :meth:`read_raw_metadata`).

        The metadata is the stored JSON text as UTF-8 bytes, as it is: not decoded (a listing that keeps only
        a digest of it never needs it as text), and not mapped to engine keys (the caller decodes the texts
        that may hold per-frame values, :func:`reconciler.frames.may_hold_frames`). Top-level rows come from
        SQLite as they are, with no per-row Python work here.
        """
        self.stats.count("GET folder items", write=False)
        folder_rows, prefixes = self._listed_folders(folder, recursive)
        top = (
            "SELECT ? || name, uuid, CAST(metadata AS BLOB), rowid FROM items "
            "INDEXED BY items_by_folder WHERE folder = ? AND parent_item IS NULL ORDER BY name"
        )
        for i in range(0, len(folder_rows), 500):  # the chunks and order of iter_raw_items
            chunk = [u for u, _ in folder_rows[i : i + 500]]
            for uuid in sorted(chunk):  # ORDER BY folder, name
                for page in self._pages(top, (prefixes[uuid], uuid)):
                    yield uuid, page
            if children:
                marks = ",".join("?" * len(chunk))
                kids = (
                    "SELECT p.folder, p.name || '/' || c.name, c.uuid, CAST(c.metadata AS BLOB), c.rowid "
                    "FROM items AS c JOIN items AS p ON p.uuid = c.parent_item "
                    f"WHERE c.folder IN ({marks}) AND p.folder IN ({marks}) AND p.parent_item IS NULL "
                    "ORDER BY p.folder, p.name, c.name"
                )
                for page in self._pages(kids, chunk + chunk):
                    for parent_folder, rel, uuid, blob, rowid in page:
                        yield parent_folder, [(prefixes[parent_folder] + rel, uuid, blob, rowid)]

    def read_raw_metadata(self, uuids: Sequence[str], rowids: Sequence[int] = ()) -> dict[str, str]:
        """The stored metadata JSON text of each of ``uuids`` that still exists (what a listing that kept only
        a digest re-reads, for the files the planner compares value by value). Not an API call: a listing's
        second look, not counted.

        ``rowids`` (as listed, one per uuid) are looked up first, several times faster than uuids; a row whose
        uuid is not the one expected (the table was rebuilt meanwhile) is looked up by its uuid instead.
        """
        out: dict[str, str] = {}
        missing = list(uuids)
        if rowids:
            want = dict(zip(rowids, uuids, strict=True))
            ids = list(want)
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for rowid, uuid, text in self._query(
                    f"SELECT rowid, uuid, metadata FROM items WHERE rowid IN ({marks})", chunk
                ):
                    if want.get(rowid) == uuid:
                        out[uuid] = text
            missing = [u for u in uuids if u not in out]
        for i in range(0, len(missing), 500):
            names = missing[i : i + 500]
            marks = ",".join("?" * len(names))
            out.update(self._query(f"SELECT uuid, metadata FROM items WHERE uuid IN ({marks})", names))
        return out

    def _pages(self, sql: str, params: Sequence[Any], page: int = 5000) -> Iterator[list[Any]]:
        """A query's rows a list of up to ``page`` at a time (the lock is held per page, not across yields)."""
        with self._lock:
            try:
                cur = self._db.execute(sql, params)
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc
        while True:
            with self._lock:
                try:
                    rows = cur.fetchmany(page)
                except sqlite3.Error as exc:
                    raise _translate(exc, self.path) from exc
            if not rows:
                return
            yield rows

    def _stream(self, sql: str, params: Sequence[Any], page: int = 5000) -> Iterator[Any]:
        """Rows of a query, fetched ``page`` at a time (the lock is held per page, not across yields)."""
        for rows in self._pages(sql, params, page):
            yield from rows

    def get_items(self, uuids: Sequence[str]) -> dict[str, LiveItem]:
        out: dict[str, LiveItem] = {}
        for i in range(0, len(uuids), _CHUNK):
            chunk = list(uuids[i : i + _CHUNK])
            self.stats.count("POST items/get-bulk", write=False)
            marks = ",".join("?" * len(chunk))
            for r in self._query(
                f"SELECT uuid, folder, name, item_type, parent_item, metadata FROM items WHERE uuid IN ({marks})",
                chunk,
            ):
                out[r[0]] = LiveItem(r[0], r[1], r[2], r[3], to_keys(_metadata(r[0], r[5])), r[4])
        return out

    def patch_items(self, patches: Mapping[str, Mapping[str, JsonValue]]) -> dict[str, str | None]:
        if len(patches) > _CHUNK:
            raise ProviderError(f"at most {_CHUNK} files per write batch, got {len(patches)}")
        self.stats.count("PATCH items/patch-bulk", write=True)
        result: dict[str, str | None] = {}
        texts: dict[str, str] = {}
        for uuid, md in patches.items():
            try:  # engine keys -> the stored (wire) form; per-frame keys go under $encord (reconciler.frames)
                texts[uuid] = json.dumps(to_wire(md), ensure_ascii=False)
            except ValueError as exc:
                result[uuid] = str(exc)
        try:
            with self._transaction():
                for uuid, text in texts.items():
                    cur = self._db.execute("UPDATE items SET metadata = ? WHERE uuid = ?", (text, uuid))
                    result[uuid] = None if cur.rowcount == 1 else "file no longer exists"
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        return result

    # -- datasets (Encord's legacy data units) ----------------------------------------------------------------
    def list_datasets(self) -> list[tuple[str, str]]:
        """Every dataset as ``(hash, title)``, in the order they were loaded."""
        self.stats.count("GET datasets", write=False)
        with self._lock:
            if not self._has_datasets(self._db):
                return []
        return [(h, t) for h, t in self._query("SELECT hash, title FROM datasets ORDER BY position")]

    def read_dataset(self, dataset_hash: str) -> LiveDataset:
        """A dataset's rows with their custom metadata (a backed row's is its backing item's), in order.

        Raises:
            ProviderConflictError: no such dataset.
        """
        self.stats.count("POST public dataset", write=False)
        with self._lock:
            has = self._has_datasets(self._db)
        head = self._query("SELECT hash, title FROM datasets WHERE hash = ?", (dataset_hash,)) if has else []
        if not head:
            raise ProviderConflictError(f"dataset {dataset_hash!r} not found")
        rows = self._query(
            "SELECT r.data_hash, r.title, r.data_type, r.backing_item, COALESCE(i.metadata, r.metadata, '{}') "
            "FROM data_rows AS r LEFT JOIN items AS i ON i.uuid = r.backing_item "
            "WHERE r.dataset = ? ORDER BY r.position",
            (dataset_hash,),
        )
        return LiveDataset(
            head[0][0],
            head[0][1],
            [LiveDataRow(h, t, d, b, _metadata(b or h, md)) for h, t, d, b, md in rows],
        )

    def write_data_rows(
        self, dataset_hash: str, patches: Mapping[str, Mapping[str, JsonValue]]
    ) -> dict[str, str | None]:
        """Replace the metadata of data rows without a backing item, one statement per row (counted as the
        legacy per-row call is on Encord). Returns data hash -> ``None`` (written) or the reason it was not."""
        result: dict[str, str | None] = {}
        try:
            with self._transaction():
                has = self._has_datasets(self._db)
                for data_hash, md in patches.items():
                    self.stats.count("POST public datarow", write=True)
                    cur = (
                        self._db.execute(
                            "UPDATE data_rows SET metadata = ? "
                            "WHERE data_hash = ? AND dataset = ? AND backing_item IS NULL",
                            (json.dumps(dict(md), ensure_ascii=False), data_hash, dataset_hash),
                        )
                        if has
                        else None
                    )
                    result[data_hash] = (
                        None
                        if cur is not None and cur.rowcount == 1
                        else f"no data row {data_hash!r} without a backing item in dataset {dataset_hash!r}"
                    )
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc
        return result

    def replace_state(self, snapshot: Snapshot) -> None:
        """Replace the whole live state (used by tests and ``reconciler snapshot`` round trips)."""
        try:
            with self._transaction():
                self._load(snapshot)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- the store kind: config, identity and opening (see reconciler.providers.registry) --------------------------

#: Where a Workspace's SQLite database is when it names no ``path`` (relative to the manifest directory).
DEFAULT_PATH = ".reconciler/live.db"


@dataclass(frozen=True)
class SqliteConfig(ProviderConfig):
    """``type: sqlite``: the database ``path`` and an optional ``seed`` snapshot (relative to the manifests)."""

    type: ClassVar[str] = "sqlite"
    path: str = DEFAULT_PATH
    seed: str | None = None


def _resolve(path: str, root: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


class SqliteKind:
    """The embedded store: a location is the database's path."""

    name = "sqlite"
    record_key = "path"
    workspace_keys = frozenset({"path", "seed"})
    url_forms = "sqlite:PATH"

    def from_url(self, rest: str, base: ProviderConfig | None) -> SqliteConfig:
        if not rest:
            raise UsageError("--provider sqlite:PATH needs a path")
        return SqliteConfig(path=str(Path(rest).absolute()))

    def from_workspace(self, raw: Mapping[str, JsonValue]) -> SqliteConfig:
        path, seed = raw.get("path"), raw.get("seed")
        return SqliteConfig(
            path=path if isinstance(path, str) and path.strip() else DEFAULT_PATH,
            seed=seed if isinstance(seed, str) and seed.strip() else None,
        )

    def identity(self, config: ProviderConfig, root: Path) -> ProviderIdentity:
        assert isinstance(config, SqliteConfig)
        return ProviderIdentity(self.name, str(_resolve(config.path, root)))

    def same_location(self, a: str, b: str) -> bool:
        return Path(a).resolve() == Path(b).resolve()

    def safe_location(self, location: str) -> str:
        return location  # a path carries no credentials

    def workspace_entries(self, config: ProviderConfig, root: Path, out: Path) -> dict[str, JsonValue]:
        assert isinstance(config, SqliteConfig)
        return {"path": _relative_path(str(_resolve(config.path, root).absolute()), out)}

    def open(self, request: ProviderRequest) -> SqliteProvider:
        config = request.config
        assert isinstance(config, SqliteConfig)
        seed = _resolve(config.seed, request.root) if config.seed and request.seed else None
        return SqliteProvider(
            _resolve(config.path, request.root),
            seed=seed,
            create=request.create,
            on_progress=request.on_progress,
        )


def _relative_path(path: str, out: Path) -> str:
    """``path`` as a Workspace in ``out`` names it: relative to ``out`` when they share more than ``/``."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    target = out.resolve()
    source = p.resolve()
    common = os.path.commonpath([str(target), str(source)])
    if Path(common) == Path(common).parent:  # only the filesystem root in common: keep it absolute
        return source.as_posix()
    return Path(os.path.relpath(source, target)).as_posix()


SQLITE: StoreKind = SqliteKind()


def _metadata(uuid: str, text: str) -> dict[str, JsonValue]:
    """A file's stored metadata; a row that is not a JSON object (or is nested too deeply) names the file."""
    try:
        value = loads(text)
    except ValueError as exc:
        raise ProviderResponseError(f"file {uuid}: its stored metadata is not usable JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ProviderResponseError(f"file {uuid}: its stored metadata is not a JSON object")
    return value
