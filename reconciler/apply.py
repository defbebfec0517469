"""Carries out a saved or fresh plan: checks it is not stale, writes the schema, then files in batches.

Apply never re-diffs manifests: it executes the plan's key operations. For every file it re-reads the live
dict right before writing and applies the planned operations onto that fresh dict, so keys the plan does not
touch (set by anyone, at any time) survive. It never prints; progress goes through ``ApplyHooks``.

Other writers (SPEC §7a): on a store with transactions (``capabilities.atomic_batches``, SQLite) each batch's re-read
and write are one transaction, so no writer of the store loses an update. A store without conditional writes
(Encord) cannot close the window between a batch's re-read and its write; there apply reads back every file it
wrote after its last batch and marks ``changed-after-write`` each file on which another writer changed a key the
plan set, so such an apply never reports success.

The journal never hides a write: when it cannot be written (a full disk, an I/O error, the file deleted or
replaced meanwhile) no further batch is sent, and the result says what was written (``journal_error``).
"""

from __future__ import annotations

import enum
import fnmatch
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from reconciler.errors import JournalError, PlanError, ProviderConflictError, ProviderError, StalePlanError
from reconciler.frames import base_key
from reconciler.model import DesiredState, Limits, Mode, metadata_fingerprint
from reconciler.plan.differ import schema_change_destructive, values_equal
from reconciler.plan.limits import check_limits, limit_error
from reconciler.plan.live import read_planned, write_planned
from reconciler.plan.model import (
    FileChange,
    KeyAction,
    KeyChange,
    Plan,
    SchemaAction,
    SchemaChange,
    Strategy,
)
from reconciler.progress import PRECHECK, Progress, no_progress
from reconciler.providers.base import TransactionalProvider
from reconciler.reserved import CONFIG, first_problem, is_reserved, keyframe_mode
from reconciler.schema import (
    Deletion,
    FieldSpec,
    SchemaSpec,
    WireSchema,
    parse_wire_schema,
    schema_fingerprint,
    spec_to_wire,
)
from reconciler.values import UUID_SHAPE, value_checker

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
    "changed_after_write",
    "check_changes",
    "check_stale",
    "destructive_changes",
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
    # written, then another writer changed a key the plan set before apply read it back (stores without
    # conditional writes only); a re-run converges
    CHANGED_AFTER_WRITE = "changed-after-write"
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
    journal_error: str | None = None  # the journal could not be written: no batch was sent after that
    verify_reads: int = 0  # bulk reads of the read-back after the last batch (stores without transactions)

    def count(self, status: FileStatus) -> int:
        return sum(1 for r in self.files if r.status is status)

    @property
    def ok(self) -> bool:
        return (
            not self.interrupted
            and self.journal_error is None
            and all(r.status in (FileStatus.WRITTEN, FileStatus.UNCHANGED) for r in self.files)
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

    def prepare(self) -> None:
        """Called once, after every check and before the first write of any kind (the schema's too): raise
        JournalError if the journal cannot be written, so nothing is written unjournaled."""
        ...

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
    uuids = [f.uuid for f in plan.files if f.dataset is None]
    fresh = {}
    for i in range(0, len(uuids), provider.capabilities.max_batch):
        fresh.update(provider.get_items(uuids[i : i + provider.capabilities.max_batch]))
        on_progress(PRECHECK, min(i + provider.capabilities.max_batch, len(uuids)), len(uuids))
    # Data units of datasets: their storage item (or their own row) through plan/live.py; a unit's title is
    # not its item's name nor its dataset a folder, so only its metadata is compared.
    units = read_planned(provider, [f for f in plan.files if f.dataset is not None])
    folder_uuids: dict[str, str | None] = {}

    def folder_uuid(path: str) -> str | None:
        if path not in folder_uuids:
            try:
                folder_uuids[path] = provider.resolve_folder(path).uuid
            except ProviderConflictError:
                folder_uuids[path] = None
        return folder_uuids[path]

    for f in plan.files:
        if f.dataset is not None:
            unit = units.get(f.uuid)
            ok, reason = (False, "the file no longer exists") if unit is None else file_is_current(f, unit)
            if not ok:
                stale.append(f"{f.address}: {reason}")
            continue
        item = fresh.get(f.uuid)
        if item is None:
            stale.append(f"{f.address}: the file no longer exists")
            continue
        where, _, last = f.address.rpartition("/")
        if item.name != last:
            stale.append(f"{f.address}: the file was renamed to {item.name!r} since the plan")
            continue
        # The folder the plan names the file under: its own folder (``sub/x.jpg`` in a recursive manifest),
        # else the manifest's folder (a child item ``GROUP/CHILD`` lives in its group's folder).
        home = folder_uuid(where) or folder_uuid(f.folder)
        if home != item.folder:
            stale.append(f"{f.address}: the file was moved to another folder since the plan")
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


def destructive_changes(plan: Plan, live_wire: WireSchema | None) -> list[str]:
    """Why the plan is destructive, one line each (empty: it is not), re-derived from its changes.

    Schema changes are judged against the live schema (``live_wire``, needed when there are any), whatever
    their ``destructive`` flag says; a flag that says destructive is believed too. The plan's
    ``max_removed_share`` findings (``destructive_reasons``) only ever add to this.
    """
    out: list[str] = []
    if plan.schema_changes:
        assert live_wire is not None
        live = parse_wire_schema(live_wire)
        for c in plan.schema_changes:
            why = None if c.after is None else schema_change_destructive(c.key, live.keys.get(c.key), c.after)
            if why is None and (c.destructive or c.after is None):
                why = c.reason or "marked destructive by the plan"
            if why is not None:
                out.append(f"schema key {c.key!r}: {why}")
    out += list(plan.destructive_reasons)
    return out


def _moved_keys(plan: Plan) -> set[str]:
    return {c.renamed_from for c in plan.schema_changes if c.renamed_from}


def check_changes(
    plan: Plan, live_wire: WireSchema, desired: DesiredState | None, *, rollback: bool = False
) -> None:
    """Refuse (PlanError) a saved plan that writes what the manifests and the schema do not allow.

    Always: a value its key's schema type (or, for a reserved key, SPEC §7c) does not allow, or a number JSON
    cannot hold (NaN, an infinity). Given the manifests in ``-C`` (``desired``): a schema change they do not
    make of the live schema; a file outside the folder of a manifest the file change names, or naming a
    manifest not in the directory; a key that none of the manifests it names sets, defaults or owns; and, on a
    file the plan moves a renamed key's values on, anything but that move. ``rollback``: the plan restores a
    journal's before-images (an untrusted journal's), and a key the schema has deleted since is restored as it
    was.
    """
    subject = "the rollback" if rollback else "the saved plan"
    live = parse_wire_schema(live_wire)
    after = dict(live.keys)
    for c in plan.schema_changes:
        if c.after is not None:
            after[c.key] = c.after
    checkers: dict[str, Any] = {}
    problems: list[str] = []
    if desired is not None:
        problems += _underived_schema_changes(plan, live, desired)
    judge = _FileJudge(desired) if desired is not None else None
    for f in plan.files:
        if judge is not None:
            found = judge.problems(f)
            if found:
                problems += found
                continue
        reserved: dict[str, JsonValue] = {}
        for kc in f.changes:
            if kc.action is KeyAction.REMOVE:
                continue
            if not _finite(kc.after):
                problems.append(f"{f.address}: key {kc.key!r}: NaN or an infinity, which JSON cannot hold")
                continue
            if is_reserved(kc.key):
                reserved[kc.key] = kc.after
                continue
            key = base_key(kc.key)
            spec = after.get(key)
            if spec is None or (rollback and spec.deleted is not None):
                continue  # (a rollback restores a value of a key deleted since as it was)
            check = checkers.get(key)
            if check is None:
                check = checkers[key] = value_checker(key, spec)
            err = check(kc.after)
            if err is not None:
                problems.append(f"{f.address}: {err}")
        if reserved:
            # Without the file's config in the plan its keyframe mode is unknown here: the looser one.
            mode = keyframe_mode(reserved.get(CONFIG), "seconds")
            err = first_problem(reserved, mode)
            if err is not None:
                problems.append(f"{f.address}: {err}")
        if len(problems) > 50:
            break
    if problems:
        raise PlanError(
            f"{subject} writes what the manifests and the schema do not allow; nothing was written:\n  "
            + "\n  ".join(problems[:50])
        )


def _finite(value: JsonValue) -> bool:
    """Whether ``value`` holds no NaN and no infinity (decoded JSON; without recursion)."""
    stack: list[JsonValue] = [value]
    while stack:
        v = stack.pop()
        if type(v) is float:
            if not math.isfinite(v):
                return False
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return True


def _underived_schema_changes(plan: Plan, live: SchemaSpec, desired: DesiredState) -> list[str]:
    """The plan's schema changes that the MetadataSchema manifest in ``desired`` does not make of ``live``
    (a targeted or sharded plan may leave some out; it may not add or alter one)."""
    if not plan.schema_changes:
        return []
    from reconciler.jsoncodec import canonical
    from reconciler.plan.differ import diff_schema

    def ident(c: SchemaChange) -> tuple[object, ...]:
        return (c.key, c.action, canonical(c.after.to_json()) if c.after else None, c.renamed_from)

    made = {ident(c) for c in diff_schema(desired.schema, live).changes}
    return [
        f"schema key {c.key!r}: the plan's change ({c.action.value}) is not what the manifests make of the "
        "live schema"
        for c in plan.schema_changes
        if ident(c) not in made
    ]


class _FileJudge:
    """Which files and keys the manifests in ``desired`` let a saved plan's file change touch.

    A change names the manifests that select its file (``a.yaml, b.yaml`` for layered ones). The file must lie
    in the folder of each (a folder given by path; folders given by UUID and datasets are not compared), and
    each key must be one of theirs: any key for an ``overwrite`` manifest or one with a bulk ``source:``
    (its rows' keys are not known here), else a key its ``files:`` entries or ``defaults`` set or its ``owns``
    patterns match, or half of a move of a renamed key's value (the MetadataSchema manifest's ``renamed_from``:
    the old key's value removed and set on the new key). The schema's own entries (``… (renamed_from)``) may
    only make such moves.
    """

    def __init__(self, desired: DesiredState) -> None:
        self.by_name = {m.name: m for m in desired.files}
        self.keys: dict[str, set[str]] = {}
        for m in desired.files:
            given = self.keys[m.name] = set(m.defaults)
            for sel in m.files:
                given.update(sel.metadata)
        from reconciler.plan.renames import collect_renames

        self.renames = {old: r.new for old, r in collect_renames(desired.schema)[0].items()}
        self.moved_to = set(self.renames.values())

    def problems(self, f: FileChange) -> list[str]:
        if f.manifest.endswith(" (renamed_from)"):
            return self._move_problems(f)
        names = f.manifest.split(", ")
        manifests = [self.by_name.get(n) for n in names]
        missing = [n for n, m in zip(names, manifests, strict=True) if m is None]
        if missing:
            return [f"{f.address}: the plan names manifest {missing[0]!r}, which is not in the directory"]
        ms = [m for m in manifests if m is not None]
        for m in ms:
            folder = m.folder.strip("/")
            if (
                m.dataset is None
                and folder
                and not UUID_SHAPE.fullmatch(folder)
                and not f.address.startswith(folder + "/")
            ):
                return [f"{f.address}: not in folder {folder!r}, the folder of {m.name}"]
        if any(m.mode is Mode.OVERWRITE or m.source is not None for m in ms):
            return []
        by_key = {kc.key: kc for kc in f.changes}
        out = []
        for kc in f.changes:
            key = kc.key
            if self._is_move(kc, by_key) or any(
                key in self.keys[m.name] or any(fnmatch.fnmatchcase(key, p) for p in m.owns) for m in ms
            ):
                continue
            out.append(f"{f.address}: key {key!r} is not set or owned by any manifest in the directory")
        return out

    def _move_problems(self, f: FileChange) -> list[str]:
        by_key = {kc.key: kc for kc in f.changes}
        return [
            f"{f.address}: key {kc.key!r}: not a move of a renamed key's value"
            for kc in f.changes
            if not self._is_move(kc, by_key)
        ]

    def _is_move(self, kc: KeyChange, by_key: Mapping[str, KeyChange]) -> bool:
        """Whether ``kc`` is half of a schema rename's move: the old key's value removed, and the same value
        set on the new key, both in this file's changes."""
        if kc.key in self.renames and kc.action is KeyAction.REMOVE:
            new = by_key.get(self.renames[kc.key])
            return (
                new is not None and new.action is not KeyAction.REMOVE and values_equal(new.after, kc.before)
            )
        if kc.key in self.moved_to and kc.action is not KeyAction.REMOVE:
            old = next(o for o, n in self.renames.items() if n == kc.key)
            moved = by_key.get(old)
            return (
                moved is not None
                and moved.action is KeyAction.REMOVE
                and values_equal(moved.before, kc.after)
            )
        return False


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
    limits: Limits | None = None,
    override_limits: bool = False,
    desired: DesiredState | None = None,
    saved: bool = False,
    rollback: bool = False,
) -> ApplyResult:
    """Apply ``plan`` through ``provider``.

    The gates come from the changes themselves, never from flags in the plan: destructiveness (schema
    changes judged against the live schema, plus the plan's ``max_removed_share`` findings) and
    ``limits`` (max_files, max_removed_keys). ``saved`` (a plan read from a file) also checks every value
    against the schema and, given the manifests (``desired``), that each change is on a key a manifest sets
    or owns. ``precheck`` re-reads everything and refuses a stale plan with nothing written.
    Raises PlanError (destructive without permission, a value or key no manifest allows),
    LimitExceededError, StalePlanError, or ProviderError for the schema; per-file failures are reported in
    the result, not raised.
    """
    hooks = hooks or NullApplyHooks()
    live_wire = provider.read_schema() if plan.schema_changes else None
    what = destructive_changes(plan, live_wire)
    if what and not allow_destructive:
        raise PlanError(
            "the plan has destructive changes and --allow-destructive was not given; nothing was written:\n  "
            + "\n  ".join(what)
        )
    report = check_limits(plan.files, {}, limits or Limits(), moved_keys=_moved_keys(plan))
    if report.violations and not override_limits:
        raise limit_error(report)
    if saved:  # its changes are untrusted input (SPEC §4 "Trust")
        check_changes(
            plan, live_wire if live_wire is not None else provider.read_schema(), desired, rollback=rollback
        )
    if precheck:
        check_stale(plan, provider, hooks.on_progress)
    if journal is not None:
        journal.prepare()
    result = ApplyResult()

    if plan.schema_changes:
        with _batch_transaction(provider):  # the schema is re-read and written in one transaction too
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
        out, journal_error = _write_batch(batch, provider, journal)
        with lock:
            if journal_error is not None:
                result.journal_error = result.journal_error or journal_error
                stop.set()
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
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apply")
        try:
            for out in pool.map(run, batches):
                result.files.extend(out)
        except BaseException:
            # A second signal (KeyboardInterrupt) stops at once: no wait for the batches in flight, and the
            # batches not started never start.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    result.interrupted = bool(cancel is not None and cancel.is_set())
    if not provider.capabilities.atomic_batches:
        _read_back(result, provider, max(1, parallelism) if provider.capabilities.parallel_reads else 1)
    return result


def _batch_transaction(provider: StateProvider) -> AbstractContextManager[None]:
    if provider.capabilities.atomic_batches:
        return cast("TransactionalProvider", provider).batch_transaction()
    return nullcontext()


def changed_after_write(change: FileChange, live: MetadataView) -> list[str]:
    """The keys the plan set on a file (values written, keys removed) that no longer hold what was written."""
    moved = []
    for kc in change.changes:
        cur = live.get(kc.key, _ABSENT)
        if not _same(cur, _ABSENT if kc.action is KeyAction.REMOVE else kc.after):
            moved.append(kc.key)
    return moved


def _read_back(result: ApplyResult, provider: StateProvider, workers: int = 1) -> None:
    """Re-read every written file (bulk, ``max_batch`` per request; up to ``workers`` requests at once) and
    mark ``changed-after-write`` those on which another writer changed a key this apply set (Encord has no
    conditional write, SPEC §7a). Every read starts after the last batch was written."""
    written = [i for i, r in enumerate(result.files) if r.status is FileStatus.WRITTEN]
    size = provider.capabilities.max_batch
    chunks = [written[start : start + size] for start in range(0, len(written), size)]

    def read(chunk: list[int]) -> dict[str, dict[str, JsonValue]] | ProviderError:
        try:
            return read_planned(provider, [result.files[i].change for i in chunk])
        except ProviderError as exc:
            return exc

    if workers > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="read-back") as pool:
            answers = list(pool.map(read, chunks))
    else:
        answers = [read(chunk) for chunk in chunks]
    for chunk, back in zip(chunks, answers, strict=True):
        result.verify_reads += 1
        if isinstance(back, ProviderError):
            exc = back
            for i in chunk:
                r = result.files[i]
                result.files[i] = FileResult(
                    r.change, FileStatus.CHANGED_AFTER_WRITE, f"written, but reading it back failed: {exc}"
                )
            continue
        for i in chunk:
            r = result.files[i]
            live = back.get(r.change.uuid)
            if live is None:
                reason = "written, then the file disappeared"
            else:
                moved = changed_after_write(r.change, live)
                if not moved:
                    continue
                reason = "written, then changed by another writer: " + ", ".join(moved)
            result.files[i] = FileResult(r.change, FileStatus.CHANGED_AFTER_WRITE, reason)


def _write_batch(
    batch: Sequence[FileChange], provider: StateProvider, journal: Journal | None
) -> tuple[list[FileResult], str | None]:
    """Re-read, journal and write one batch. Returns its results and the journal's error, if any (then no
    further batch may be sent). On a transactional store the re-read and the write are one transaction."""
    results: dict[str, FileResult] = {}
    journal_error: str | None = None
    sent: list[FileChange] = []
    stage = "reading before write"
    try:
        with _batch_transaction(provider):
            fresh = read_planned(provider, batch)
            to_write: list[tuple[FileChange, MetadataView, MetadataView]] = []
            for c in batch:
                live = fresh.get(c.uuid)
                if live is None:
                    results[c.uuid] = FileResult(c, FileStatus.FAILED, "the file no longer exists")
                    continue
                ok, reason = file_is_current(c, live)
                if not ok:
                    results[c.uuid] = FileResult(c, FileStatus.STALE, reason)
                    continue
                new = planned_dict(c, live)
                if new == live and all(values_equal(new[k], live[k]) for k in new):  # already as planned
                    results[c.uuid] = FileResult(c, FileStatus.UNCHANGED)
                    continue
                to_write.append((c, live, new))
            if to_write:
                if journal is not None:
                    stage = "journal"
                    journal.before_batch(to_write)
                stage = "writing"
                sent = [c for c, _, _ in to_write]
                answers: Mapping[str, str | None] = write_planned(
                    provider, [(c, new) for c, _, new in to_write]
                )
                for c in sent:
                    err = answers.get(c.uuid, "no answer for this file")
                    ok_ = err is None
                    results[c.uuid] = (
                        FileResult(c, FileStatus.WRITTEN)
                        if ok_
                        else FileResult(c, FileStatus.FAILED, err or "")
                    )
    except JournalError as exc:  # before the batch was sent: nothing of it was written
        journal_error = str(exc)
        for c in batch:
            if c.uuid not in results:
                results[c.uuid] = FileResult(
                    c, FileStatus.NOT_ATTEMPTED, "not sent: the journal could not be written"
                )
        return [results[c.uuid] for c in batch], journal_error
    except ProviderError as exc:
        for c in sent if stage == "writing" else batch:
            results[c.uuid] = FileResult(
                c, FileStatus.FAILED, f"{exc}" if stage == "writing" else f"{stage} failed: {exc}"
            )
    if sent and journal is not None:
        try:
            journal.after_batch([results[c.uuid] for c in sent])
        except JournalError as exc:  # the batch landed: its results stand, and no further batch is sent
            journal_error = str(exc)
    return [results[c.uuid] for c in batch], journal_error
