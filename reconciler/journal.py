"""The apply journal: before/after images of every written file, on disk before each batch is sent.

``<journal_dir>/<UTC timestamp>-<plan id>.jsonl``::

    {"record": "header", "plan_id": ..., "provider": {...}, "tool_version": ..., "started_at": ...}
    {"record": "file", "uuid": ..., "folder": ..., "name": ..., "before": {...}, "after": {...}, "status": "pending"}
    {"record": "result", "uuid": ..., "status": "written" | "failed", "reason": ...}

A file's status is its last line; a ``pending`` with no result means the batch was in flight when the
process stopped (it may or may not have been written). Metadata only: never credentials.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from reconciler import __version__

if TYPE_CHECKING:
    from reconciler.apply import FileResult
    from reconciler.plan.model import FileChange, Plan
    from reconciler.types import MetadataView

__all__ = ["JournalWriter", "plan_id"]


def plan_id(plan: Plan) -> str:
    """A short stable id of a plan (from its content)."""
    import hashlib

    from reconciler.render.json import plan_to_dict

    data = plan_to_dict(plan)
    data.pop("created_at", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class JournalWriter:
    """Appends journal lines and fsyncs them before the batch they describe is sent."""

    def __init__(self, directory: Path, plan: Plan, *, now: dt.datetime | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
        pid = plan_id(plan)
        self.path = directory / f"{stamp}-{pid}.jsonl"
        self._fh: IO[str] = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._write(
            [
                {
                    "record": "header",
                    "plan_id": pid,
                    "provider": plan.provider.to_json(),
                    "tool_version": __version__,
                    "started_at": stamp,
                }
            ]
        )

    def _write(self, records: Sequence[dict[str, object]]) -> None:
        with self._lock:
            self._write_locked(records)

    def _write_locked(self, records: Sequence[dict[str, object]]) -> None:
        self._fh.write("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records))
        self._fh.flush()
        os.fsync(self._fh.fileno())

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
                    "status": "pending",
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
        self._fh.close()
