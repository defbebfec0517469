"""Rollback: the plan that writes an apply journal's before-images back (SPEC §7).

For every journaled file the live dict decides (read fresh, in bulk):

==========================================  ==========================================================
live dict                                   rollback
==========================================  ==========================================================
equals the journaled ``after``              restore: an overwrite change from the live dict to ``before``
equals the journaled ``before``             nothing to do (never written, or already rolled back)
anything else, or the file is gone          conflict: reported (as a plan warning at ``journal:line``)
                                            and left alone
==========================================  ==========================================================

This holds whatever the entry's status: a ``pending`` entry (the batch was in flight when the apply
stopped) or a ``failed`` one may or may not have landed, and the live dict tells which. The result is an
ordinary :class:`~reconciler.plan.model.Plan`, so it renders and applies (journaled too) like any other.
The schema is not rolled back: schema changes are undone through the MetadataSchema manifest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler._version import __version__
from reconciler.config import same_provider
from reconciler.errors import Diagnostic, JournalError, SourceLocation
from reconciler.journal import JournalEntry, JournalFile
from reconciler.model import Limits, metadata_fingerprint
from reconciler.plan.differ import diff_metadata, values_equal
from reconciler.plan.limits import check_limits, limit_error, removed_share_reason
from reconciler.plan.live import read_planned
from reconciler.plan.model import FileChange, KeyAction, Plan, Strategy
from reconciler.schema import schema_fingerprint

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.providers.base import StateProvider
    from reconciler.types import JsonValue, MetadataView

__all__ = ["RollbackConflict", "RollbackPlan", "RollbackWorkspace", "open_journal_provider", "plan_rollback"]


@dataclass(frozen=True)
class RollbackConflict:
    """A journaled file the rollback leaves alone, and why."""

    entry: JournalEntry
    reason: str


@dataclass(frozen=True)
class RollbackPlan:
    """The rollback plan, the conflicts it leaves alone, and how many files are already as before."""

    plan: Plan
    conflicts: tuple[RollbackConflict, ...]
    already: int


def _dicts_equal(a: MetadataView, b: MetadataView) -> bool:
    return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)


def _as_change(e: JournalEntry, *, name: str, live: MetadataView | None = None) -> FileChange:
    """The write that restores ``e``'s before-image (with no changes when ``live`` is not given)."""
    return FileChange(
        uuid=e.uuid,
        folder=e.folder,
        name=e.name,
        strategy=Strategy.OVERWRITE,
        manifest=f"rollback of {name}",
        live_fingerprint=metadata_fingerprint(live) if live is not None else "",
        changes=diff_metadata(live, e.before) if live is not None else (),
        dataset=e.dataset,
    )


def plan_rollback(
    journal: JournalFile,
    provider: StateProvider,
    *,
    limits: Limits | None = None,
    override_limits: bool = False,
    now: dt.datetime | None = None,
) -> RollbackPlan:
    """Plan the restoration of ``journal``'s before-images through ``provider``.

    Raises JournalError (a journal from another provider), LimitExceededError (over ``max_files`` /
    ``max_removed_keys`` without ``override_limits``), or ProviderError.
    """
    if not same_provider(journal.header.provider, provider.identity):
        raise JournalError(
            f"{journal.path}: the journal was written against {journal.header.provider}, not "
            f"{provider.identity}; a journal rolls back only on the provider it was written against"
        )
    limits = limits or Limits()
    live_wire = provider.read_schema()
    fresh = read_planned(provider, [_as_change(e, name="") for e in journal.entries])

    files: list[FileChange] = []
    conflicts: list[RollbackConflict] = []
    already = 0
    name = journal.path.name
    for e in journal.entries:
        live: dict[str, JsonValue] | None = fresh.get(e.uuid)
        if live is None:
            conflicts.append(RollbackConflict(e, "the file no longer exists"))
            continue
        if _dicts_equal(live, e.before):
            already += 1
        elif _dicts_equal(live, e.after):
            files.append(_as_change(e, name=name, live=live))
        else:
            changed = sorted(
                k
                for k in live.keys() | e.after.keys()
                if k not in live or k not in e.after or not values_equal(live[k], e.after[k])
            )
            shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            conflicts.append(RollbackConflict(e, f"changed since the apply ({shown}); left alone"))
    files.sort(key=lambda f: (f.folder, f.name, f.uuid))

    report = check_limits(files, {}, limits)
    if report.violations and not override_limits:
        raise limit_error(report)
    removed: dict[str, int] = {}
    for f in files:
        for kc in f.changes:
            if kc.action is KeyAction.REMOVE:
                removed[kc.key] = removed.get(kc.key, 0) + 1
    share = removed_share_reason(
        f"rolling back {name} removes keys", "files it journals", removed, len(journal.entries), limits
    )
    warnings = [
        Diagnostic(
            SourceLocation(str(journal.path), c.entry.line), f"{c.entry.address}: {c.reason}", "warning"
        )
        for c in conflicts
    ]
    warnings += [
        Diagnostic(SourceLocation(str(journal.path)), f"{v} (allowed by --override-limits)", "warning")
        for v in report.violations
    ]
    created = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    plan = Plan(
        tool_version=__version__,
        created_at=created.isoformat().replace("+00:00", "Z"),
        provider=provider.identity,
        manifests_digest=journal.digest,
        schema_fingerprint=schema_fingerprint(live_wire),
        schema_changes=(),
        files=tuple(files),
        unchanged=already,
        reads=provider.stats.reads,
        writes=provider.stats.writes,
        warnings=tuple(warnings),
        destructive_reasons=(share,) if share else (),
    )
    return RollbackPlan(plan, tuple(conflicts), already)


@dataclass(frozen=True)
class RollbackWorkspace:
    """Settings a rollback uses (from the manifest directory's Workspace when there is one)."""

    limits: Limits
    parallelism: int
    journal_dir: Path  # the Workspace's (the store's lock is beside it, for Encord)


def open_journal_provider(
    journal: JournalFile, settings: Settings, provider_url: str | None
) -> tuple[StateProvider, RollbackWorkspace]:
    """Open the store the operator names (``--provider``, else the Workspace in ``-C``); a journal written
    against any other store is refused before anything is opened or sent.

    Only the Workspace document is read (its limits and parallelism are used); with ``--provider`` no
    manifest directory is needed. Credentials come from the environment, as for every command.
    """
    from reconciler.config import recorded_target

    target = recorded_target(
        journal.header.provider,
        settings,
        provider_url,
        made=f"{journal.path}: the journal was written against",
        rule="a journal rolls back only on the provider it was written against",
        error=JournalError,
    )
    provider = target.open(settings.env, seed=False)
    limits, parallelism = target.settings.limits, target.settings.parallelism
    return provider, RollbackWorkspace(limits, parallelism, target.resolve(target.settings.journal_dir))
