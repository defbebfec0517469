"""Folder listings made ahead and in parallel: up to ``parallelism`` folders at once, one request at a time per
folder (a listing's page tokens are sequential), while the planning thread plans the folders already listed.

The planning thread asks for listings in manifest order (:meth:`Prefetch.get`); while it waits for one it
reports that listing's progress and reads the first rows of the manifest's ``source:`` (so a source is
checked while its folder is still being listed). Every folder is listed exactly once, as without
prefetching, so the plan's ``api_calls`` do not change. Providers that cannot serve listings concurrently
(``capabilities.parallel_reads`` false: the embedded store, whose listing is CPU work under one lock) list
in the planning thread, on demand.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from reconciler.manifest.source import SourceRow
    from reconciler.model import LiveFolder
    from reconciler.providers.base import StateProvider

__all__ = ["PROGRESS_EVERY", "READ_AHEAD_ROWS", "Prefetch"]

#: Source rows read ahead while a folder is being listed (about 3 kB each in memory).
READ_AHEAD_ROWS = 20_000
#: How often (in files) a listing's progress is reported.
PROGRESS_EVERY = 10_000

ListingKey = tuple[str, bool, bool]  # folder uuid, recursive, children
Progress = Callable[[str, int, "int | None"], None]


class ReadIndex(Protocol):
    """How one folder is listed into an index (the planner's ``read_index``)."""

    def __call__(
        self, provider: Any, folder: LiveFolder, *, recursive: bool, children: bool, on_progress: Progress
    ) -> Any: ...


class _Stopped(Exception):
    """Raised inside a listing thread (from its progress callback) once the plan no longer needs it."""


@dataclass
class _Job:
    folder: LiveFolder
    recursive: bool
    children: bool
    done: threading.Event = field(default_factory=threading.Event)
    seen: int = 0
    index: Any = None
    error: BaseException | None = None


class Prefetch:
    """Listings started with :meth:`start` (in the order the plan needs them) and collected with :meth:`get`.

    Use as a context manager: leaving it stops listings nobody collected (at their next progress report).
    """

    def __init__(
        self, provider: StateProvider, parallelism: int, on_progress: Progress, read_index: ReadIndex
    ) -> None:
        self._provider = provider
        self._read_index = read_index
        self._on_progress = on_progress
        self._jobs: dict[ListingKey, _Job] = {}
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._stop = threading.Event()
        parallel = provider.capabilities.parallel_reads
        self._workers = max(1, parallelism) if parallel and parallelism > 1 else 0
        self._threads: list[threading.Thread] = []

    @property
    def active(self) -> bool:
        """Whether listings are made ahead, on listing threads (else :meth:`get` lists on demand)."""
        return self._workers > 0

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        for _ in self._threads:
            self._queue.put(None)

    def start(self, folder: LiveFolder, *, recursive: bool, children: bool) -> None:
        """Queue a listing (once per folder and flags); a no-op when listings are made on demand."""
        key = (folder.uuid, recursive, children)
        if key in self._jobs or not self._workers:
            return
        job = self._jobs[key] = _Job(folder, recursive, children)
        self._queue.put(job)
        if len(self._threads) < self._workers:
            t = threading.Thread(target=self._work, name="reconciler-listing", daemon=True)
            self._threads.append(t)
            t.start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None or self._stop.is_set():
                return

            def count(stage: str, n: int, total: int | None, job: _Job = job) -> None:
                if self._stop.is_set():
                    raise _Stopped
                job.seen = n

            try:
                job.index = self._read_index(
                    self._provider,
                    job.folder,
                    recursive=job.recursive,
                    children=job.children,
                    on_progress=count,
                )
            except BaseException as exc:  # handed to the planning thread, which raises it
                job.error = exc
            finally:
                job.done.set()

    def get(
        self,
        folder: LiveFolder,
        *,
        recursive: bool,
        children: bool,
        rows: Callable[[], Iterator[SourceRow]] | None = None,
    ) -> tuple[Any, Iterable[SourceRow] | None]:
        """The listing of ``folder``, and (given ``rows``, which opens the manifest's source) the source's
        rows: those read while the listing was being made, then the rest as they stream."""
        key = (folder.uuid, recursive, children)
        job = self._jobs.get(key)
        if job is None:
            self.start(folder, recursive=recursive, children=children)
            job = self._jobs.get(key)
        if job is None:  # listings on demand, in this thread
            index = self._read_index(
                self._provider, folder, recursive=recursive, children=children, on_progress=self._on_progress
            )
            return index, (rows() if rows is not None else None)
        stage = f"reading {folder.path}"
        self._on_progress(stage, 0, None)
        reported = 0
        ahead: list[SourceRow] = []
        stream: Iterator[SourceRow] | None = rows() if rows is not None else None
        if stream is not None:
            for row in stream:
                ahead.append(row)
                if job.done.is_set() or len(ahead) >= READ_AHEAD_ROWS:
                    break
                if job.seen - reported >= PROGRESS_EVERY:
                    reported = job.seen
                    self._on_progress(stage, reported, None)
        while not job.done.wait(0.2):
            if job.seen != reported:
                reported = job.seen
                self._on_progress(stage, reported, None)
        if job.error is not None:
            raise job.error
        assert job.index is not None
        self._on_progress(stage, len(job.index), len(job.index))
        return job.index, (itertools.chain(ahead, stream) if stream is not None else None)
