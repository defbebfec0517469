"""Carries out a saved or fresh plan: checks it is not stale, writes the schema, then files in batches.

Apply never re-diffs manifests: it executes the plan's key operations. For every file it re-reads the live
dict right before writing and applies the planned operations onto that fresh dict, so keys the plan does not
touch (set by anyone, at any time) survive. It never prints; progress goes through ``ApplyHooks``.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.errors import PlanError, ProviderError, StalePlanError
from reconciler.model import metadata_fingerprint
from reconciler.plan.differ import values_equal
from reconciler.plan.model import FileChange, KeyAction, Plan, SchemaAction, Strategy
from reconciler.progress import PRECHECK, Progress, no_progress
from reconciler.schema import (
    Deletion,
    FieldSpec,
    WireSchema,
    parse_wire_schema,
    schema_fingerprint,
    spec_to_wire,
)

if TYPE_CHECKING:
    from reconciler.providers.base import StateProvider
    from reconciler.types import JsonValue, MetadataView

__all__ = [
    "ApplyHooks",
    "ApplyResult",
    "FileResult",
    "FileStatus",
    "Journal",
    "NullApplyHooks",
    "apply_plan",
    "check_stale",
    "file_is_current",
    "planned_dict",
]

log = logging.getLogger(__name__)

#: Consecutive failed write batches after which apply stops trying (the rest is reported not attempted).
MAX_CONSECUTIVE_FAILED_BATCHES = 3


class FileStatus(str, enum.Enum):
    WRITTEN = "written"
    UNCHANGED = "unchanged"  # already as planned (e.g. a re-run after an interrupted apply)
    STALE = "stale"
    FAILED = "failed"
    NOT_ATTEMPTED = "not-attempted"


@dataclass(frozen=True)
class FileResult:
    change: FileChange
    status: FileStatus
    reason: str = ""


@dataclass
class ApplyResult:
    """What an apply did: schema written or not, and one result per planned file."""

    schema_written: bool = False
    files: list[FileResult] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: FileStatus) -> int:
        return sum(1 for r in self.files if r.status is status)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(
            r.status in (FileStatus.WRITTEN, FileStatus.UNCHANGED) for r in self.files
        )


class ApplyHooks(Protocol):
    """Progress reports (the CLI draws a bar; tests may record). ``on_progress`` hears the pre-check
    (:data:`reconciler.progress.PRECHECK`)."""

    def on_progress(self, stage: str, done: int, total: int | None) -> None: ...

    def on_schema_written(self, changes: int) -> None: ...

    def on_batch_done(self, results: Sequence[FileResult], done: int, total: int) -> None: ...


class NullApplyHooks:
    def on_progress(self, stage: str, done: int, total: int | None) -> None:
        return None

    def on_schema_written(self, changes: int) -> None:
        return None

    def on_batch_done(self, results: Sequence[FileResult], done: int, total: int) -> None:
        return None


class Journal(Protocol):
    """Records before/after images; ``before_batch`` must reach the disk before the batch is sent."""

    def before_batch(self, entries: Sequence[tuple[FileChange, MetadataView, MetadataView]]) -> None: ...

    def after_batch(self, results: Sequence[FileResult]) -> None: ...


_ABSENT: Any = object()


def file_is_current(change: FileChange, live: MetadataView) -> tuple[bool, str]:
    """Whether a live dict still matches what the plan was made from (or already is as planned).

    Returns ``(ok, reason)``; ``reason`` names the keys that moved when not ok.
    """
    if change.strategy is Strategy.OVERWRITE:
        if metadata_fingerprint(live) == change.live_fingerprint:
            return True, ""
        if _is_planned_after(change, live):
            return True, ""
        return False, "the file's metadata changed since the plan (overwrite plans need the exact dict)"
    moved: list[str] = []
    for kc in change.changes:
        cur = live.get(kc.key, _ABSENT)
        before = _ABSENT if kc.action is KeyAction.ADD else kc.before
        after = _ABSENT if kc.action is KeyAction.REMOVE else kc.after
        if _same(cur, before) or _same(cur, after):
            continue
        moved.append(kc.key)
    if moved:
        return False, "changed since the plan: " + ", ".join(moved)
    return True, ""


def _is_planned_after(change: FileChange, live: MetadataView) -> bool:
    """Whether ``live`` is exactly the dict an overwrite plan writes (a re-run after it was written).

    The plan stores only the changed keys and the fingerprint of the whole ``before`` dict. ``live`` is the
    planned result iff every changed key holds its ``after`` value and undoing the changes on ``live`` gives
    back a dict with the planned ``before`` fingerprint; a key added by someone else since breaks the
    second test, so such a file is stale rather than silently kept with the foreign key (SPEC §4).
    """
    undone = dict(live)
    for kc in change.changes:
        cur = live.get(kc.key, _ABSENT)
        if not _same(cur, _ABSENT if kc.action is KeyAction.REMOVE else kc.after):
            return False
        if kc.action is KeyAction.ADD:
            undone.pop(kc.key, None)
        else:
            undone[kc.key] = kc.before
    return metadata_fingerprint(undone) == change.live_fingerprint


def _same(a: Any, b: Any) -> bool:
    if a is _ABSENT or b is _ABSENT:
        return a is b
    return values_equal(a, b)


def planned_dict(change: FileChange, live: MetadataView) -> dict[str, JsonValue]:
    """The planned key operations applied onto a (fresh) live dict."""
    out = dict(live)
    for kc in change.changes:
        if kc.action is KeyAction.REMOVE:
            out.pop(kc.key, None)
        else:
            out[kc.key] = kc.after
    return out


def check_stale(plan: Plan, provider: StateProvider, on_progress: Progress = no_progress) -> None:
    """Re-read the schema and every planned file; raise StalePlanError (listing them) if anything moved.

    Reports :data:`~reconciler.progress.PRECHECK` (done: planned files read again).
    """
    on_progress(PRECHECK, 0, len(plan.files))
    live_wire = provider.read_schema()
    stale: list[str] = []
    if schema_fingerprint(live_wire) != plan.schema_fingerprint:
        stale.append("schema: the metadata schema changed since the plan")
    uuids = [f.uuid for f in plan.files]
    fresh = {}
    for i in range(0, len(uuids), provider.capabilities.max_batch):
        fresh.update(provider.get_items(uuids[i : i + provider.capabilities.max_batch]))
        on_progress(PRECHECK, min(i + provider.capabilities.max_batch, len(uuids)), len(uuids))
    for f in plan.files:
        item = fresh.get(f.uuid)
        if item is None:
            stale.append(f"{f.address}: the file no longer exists")
            continue
        ok, reason = file_is_current(f, item.metadata)
        if not ok:
            stale.append(f"{f.address}: {reason}")
    if stale:
        shown = stale[:50]
        more = f"\n  ... and {len(stale) - 50} more" if len(stale) > 50 else ""
        raise StalePlanError(
            "the plan is stale: live state changed since it was made; nothing was written. "
            "Run `reconciler plan` again.\n  " + "\n  ".join(shown) + more,
            stale,
        )


def _new_schema(plan: Plan, live_wire: WireSchema) -> WireSchema:
    """The live wire schema with the plan's changes made, the way the SDK makes them."""
    out: WireSchema = dict(live_wire)
    live = parse_wire_schema(live_wire)
    for c in plan.schema_changes:
        have = live.keys.get(c.key)
        after = c.after
        assert after is not None
        if c.action is SchemaAction.RESTORE and have is not None and have.wire and have.same_type(after):
            out[c.key] = dict(have.wire.get("deleted_ty") or spec_to_wire(after.alive()))
        elif c.action is SchemaAction.DELETE and after.deleted is Deletion.SOFT and have is not None:
            prev = have.wire if have.is_live and have.wire else spec_to_wire(have.alive())
            out[c.key] = {"ty": "tombstone", "deleted_ty": dict(prev)}
        else:
            out[c.key] = spec_to_wire(FieldSpec(after.type, after.values, after.size, after.deleted))
        if c.action is SchemaAction.RENAME and c.renamed_from:
            old = live.keys.get(c.renamed_from)
            if old is not None and old.is_live:
                prev = old.wire or spec_to_wire(old)
                out[c.renamed_from] = {"ty": "tombstone", "deleted_ty": dict(prev)}
    return out


def apply_plan(
    plan: Plan,
    provider: StateProvider,
    *,
    allow_destructive: bool = False,
    precheck: bool = True,
    parallelism: int = 1,
    hooks: ApplyHooks | None = None,
    journal: Journal | None = None,
    cancel: threading.Event | None = None,
) -> ApplyResult:
    """Apply ``plan`` through ``provider``.

    ``precheck`` re-reads everything first and refuses a stale plan with nothing written (saved plans).
    Raises PlanError (destructive without permission), StalePlanError, or ProviderError for the schema;
    per-file failures are reported in the result, not raised.
    """
    hooks = hooks or NullApplyHooks()
    if plan.is_destructive and not allow_destructive:
        what = [f"schema key {c.key!r}: {c.reason}" for c in plan.schema_changes if c.destructive]
        what += list(plan.destructive_reasons)
        raise PlanError(
            "the plan has destructive changes and --allow-destructive was not given; nothing was written:\n  "
            + "\n  ".join(what)
        )
    if precheck:
        check_stale(plan, provider, hooks.on_progress)
    result = ApplyResult()

    if plan.schema_changes:
        live_wire = provider.read_schema()
        if schema_fingerprint(live_wire) != plan.schema_fingerprint:
            raise StalePlanError(
                "the plan is stale: the metadata schema changed since it was made; nothing was written. "
                "Run `reconciler plan` again.",
                ["schema"],
            )
        provider.write_schema(_new_schema(plan, live_wire))
        result.schema_written = True
        hooks.on_schema_written(len(plan.schema_changes))
        log.info("wrote schema (%d change(s))", len(plan.schema_changes))

    size = provider.capabilities.max_batch
    batches = [plan.files[i : i + size] for i in range(0, len(plan.files), size)]
    total = len(plan.files)
    lock = threading.Lock()
    state = {"done": 0, "failed_in_row": 0}
    stop = threading.Event()

    def run(batch: Sequence[FileChange]) -> list[FileResult]:
        if stop.is_set() or (cancel is not None and cancel.is_set()):
            return [FileResult(c, FileStatus.NOT_ATTEMPTED, "not attempted") for c in batch]
        out = _write_batch(batch, provider, journal)
        with lock:
            state["done"] += len(batch)
            failed = all(r.status is FileStatus.FAILED for r in out)
            state["failed_in_row"] = state["failed_in_row"] + 1 if failed else 0
            if state["failed_in_row"] >= MAX_CONSECUTIVE_FAILED_BATCHES:
                stop.set()
            hooks.on_batch_done(out, state["done"], total)
        return out

    workers = max(1, parallelism) if provider.capabilities.parallel_writes else 1
    if workers == 1 or len(batches) < 2:
        for b in batches:
            result.files.extend(run(b))
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply") as pool:
            for out in pool.map(run, batches):
                result.files.extend(out)
    result.interrupted = bool(cancel is not None and cancel.is_set())
    return result


def _write_batch(
    batch: Sequence[FileChange], provider: StateProvider, journal: Journal | None
) -> list[FileResult]:
    try:
        fresh = provider.get_items([c.uuid for c in batch])
    except ProviderError as exc:
        return [FileResult(c, FileStatus.FAILED, f"reading before write failed: {exc}") for c in batch]
    results: dict[str, FileResult] = {}
    to_write: list[tuple[FileChange, MetadataView, MetadataView]] = []
    for c in batch:
        item = fresh.get(c.uuid)
        if item is None:
            results[c.uuid] = FileResult(c, FileStatus.FAILED, "the file no longer exists")
            continue
        ok, reason = file_is_current(c, item.metadata)
        if not ok:
            results[c.uuid] = FileResult(c, FileStatus.STALE, reason)
            continue
        new = planned_dict(c, item.metadata)
        if new == item.metadata and all(
            values_equal(new[k], item.metadata[k]) for k in new
        ):  # already as planned: never written
            results[c.uuid] = FileResult(c, FileStatus.UNCHANGED)
            continue
        to_write.append((c, item.metadata, new))
    if to_write:
        if journal is not None:
            journal.before_batch(to_write)
        try:
            answers: Mapping[str, str | None] = provider.patch_items({c.uuid: new for c, _, new in to_write})
        except ProviderError as exc:
            answers = {c.uuid: str(exc) for c, _, _ in to_write}
        written = []
        for c, _, _ in to_write:
            err = answers.get(c.uuid, "no answer for this file")
            r = FileResult(c, FileStatus.WRITTEN) if err is None else FileResult(c, FileStatus.FAILED, err)
            results[c.uuid] = r
            written.append(r)
        if journal is not None:
            journal.after_batch(written)
    return [results[c.uuid] for c in batch]
