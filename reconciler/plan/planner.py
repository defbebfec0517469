"""Builds a Plan: reads live state through a provider, selects files, applies policy, and diffs.

The planner never prints; progress goes through ``PlanHooks``. Every problem in the manifests or sources is
collected and raised once as ``ManifestValidationError``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reconciler._version import __version__
from reconciler.errors import (
    Diagnostic,
    ManifestValidationError,
    ProviderResponseError,
    UsageError,
)
from reconciler.frames import base_key
from reconciler.model import (
    Assignment,
    DesiredState,
    FileManifest,
    UndeclaredKeys,
    metadata_fingerprint,
)
from reconciler.plan.checks import offline_conflicts
from reconciler.plan.differ import diff_metadata, diff_schema
from reconciler.plan.files import plan_files, source_readers
from reconciler.plan.limits import check_limits, limit_error
from reconciler.plan.model import FileChange, Plan, SchemaAction, Strategy
from reconciler.plan.renames import (
    RenameCheck,
    RenameScan,
    check_manifest_assignments,
    collect_renames,
    move_values,
    scan_old_keys,
)
from reconciler.plan.shard import Shard
from reconciler.providers.base import StateProvider
from reconciler.reserved import is_reserved
from reconciler.schema import FieldSpec, SchemaSpec, parse_wire_schema, schema_fingerprint
from reconciler.undeclared import UndeclaredJudge
from reconciler.values import check_value, describe_value

if TYPE_CHECKING:
    from reconciler.manifest.source import SourceReaders
    from reconciler.types import JsonValue

__all__ = ["NullPlanHooks", "PlanHooks", "Targets", "make_plan", "parse_targets"]

log = logging.getLogger(__name__)


class PlanHooks(Protocol):
    """Progress reports from the planner (the CLI draws them; tests ignore them)."""

    def on_progress(self, stage: str, done: int, total: int | None) -> None: ...


class NullPlanHooks:
    def on_progress(self, stage: str, done: int, total: int | None) -> None:
        return None


@dataclass(frozen=True)
class Targets:
    """``--target`` selection: nothing given means everything."""

    manifests: frozenset[str] = frozenset()
    folders: frozenset[str] = frozenset()
    schema: bool = False

    @property
    def is_all(self) -> bool:
        return not (self.manifests or self.folders or self.schema)

    def wants_schema(self) -> bool:
        return self.is_all or self.schema

    def wants(self, m: FileManifest) -> bool:
        return (
            self.is_all
            or m.path in self.manifests
            or (m.dataset is None and m.folder.strip("/") in self.folders)
        )


def parse_targets(values: Sequence[str], desired: DesiredState) -> Targets:
    """Parse ``--target`` values (a manifest path, ``folder:PATH`` or ``schema``). Raises UsageError."""
    manifests: set[str] = set()
    folders: set[str] = set()
    schema = False
    known = {m.path for m in desired.files}
    known_folders = {m.folder.strip("/") for m in desired.files if m.dataset is None}
    for raw in values:
        v = raw.strip()
        if v == "schema":
            if desired.schema is None:
                raise UsageError("--target schema: the manifests declare no MetadataSchema")
            schema = True
        elif v.startswith("folder:"):
            f = v[len("folder:") :].strip("/")
            if f not in known_folders:
                raise UsageError(f"--target {raw}: no FileMetadata manifest manages folder {f!r}")
            folders.add(f)
        else:
            p = v.removeprefix("./")
            if p not in known:
                choices = ", ".join(sorted(known)) or "none"
                raise UsageError(f"--target {raw}: not a FileMetadata manifest (known: {choices})")
            manifests.add(p)
    return Targets(frozenset(manifests), frozenset(folders), schema)


def _assignments_to_check(m: FileManifest) -> Iterable[tuple[str, Assignment]]:
    for k, a in m.defaults.items():
        yield (k, a)
    for sel in m.files:
        for k, a in sel.metadata.items():
            yield (k, a)


class _ValueChecker:
    """Checks values against the schema as it will be after the plan; each Assignment once.

    ``declared`` is the set of keys the MetadataSchema manifest declares (``None`` without one: then the
    live schema's keys count as declared). ``undeclared_keys`` judges against it, as ``validate`` does.
    ``intended`` is the schema the manifests declare when this plan leaves it out (``--target`` without
    ``schema``): a value that is valid only for it says so and names ``--target schema``.
    """

    def __init__(
        self,
        schema: SchemaSpec,
        policy: UndeclaredKeys,
        has_schema: bool,
        declared: frozenset[str] | None,
        intended: SchemaSpec | None = None,
        hint: str | None = None,
    ) -> None:
        self.schema = schema
        self.intended = intended
        self.hint = hint or TARGET_HINT
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.judge = UndeclaredJudge(
            declared if declared is not None else schema.keys, policy, has_schema, self.errors, self.warnings
        )
        self._seen: set[int] = set()
        self._live_warned: set[str] = set()

    def check(self, key: str, a: Assignment) -> None:
        if id(a) in self._seen:
            return
        self._seen.add(id(a))
        if a.value is None:
            return
        if is_reserved(key):
            return  # checked with the rest of its scope when the manifests were loaded (reconciler.reserved)
        value_key = key
        key = base_key(key)  # a per-frame value frames[N].KEY is a value of KEY (judged and checked as KEY)
        spec: FieldSpec | None = self.schema.keys.get(key)
        self.judge.judge(key, a.value, a.location)
        if spec is None:
            if self.judge.is_declared(key) and key not in self._live_warned:
                self._live_warned.add(key)
                self.warnings.append(
                    Diagnostic(
                        a.location,
                        f"key {key!r} is declared in the manifests but not in the live schema, and this plan "
                        f"does not change the schema ({self.hint.split(' (')[0]})",
                        "warning",
                    )
                )
            return
        err = check_value(value_key, a.value, spec)
        if err:
            self.errors.append(
                Diagnostic(a.location, needs_schema_change(key, a.value, err, self.intended, self.hint))
            )


#: What a plan that leaves the schema out tells a value that needs the schema change (``--target``, shards).
TARGET_HINT = "add --target schema (or plan without --target)"
SHARD_HINT = "apply shard 1, which plans the schema, first (or apply --target schema)"


def needs_schema_change(
    key: str, value: JsonValue, err: str, intended: SchemaSpec | None, hint: str = TARGET_HINT
) -> str:
    """``err`` for a value that fails against the live schema, or, when the value is valid for the schema the
    manifests declare and this plan leaves the schema out, a message that says so and names ``hint``."""
    if intended is None:
        return err
    spec = intended.keys.get(key)
    if spec is None or check_value(key, value, spec) is not None:
        return err
    return (
        f"{key}: {describe_value(value)} is valid only with the change to {key!r} that the MetadataSchema "
        f"manifest declares, and this plan leaves the schema out: {hint}"
    )


def _needs_left_out_schema(
    files: Sequence[FileChange],
    live_specs: Mapping[str, FieldSpec],
    intended: SchemaSpec | None,
    manifests: Mapping[str, FileManifest],
    reported: Sequence[Diagnostic],
    hint: str = TARGET_HINT,
) -> list[Diagnostic]:
    """Per manifest and key: values the plan would write that only the left-out schema change allows."""
    said = {(d.location.path, d.message.split(":", 1)[0]) for d in reported}
    found: dict[tuple[str, str], tuple[int, str, str]] = {}
    for f in files:
        for kc in f.changes:
            spec = live_specs.get(kc.key)
            if spec is None or kc.after is None:
                continue
            err = check_value(kc.key, kc.after, spec)
            if err is None:
                continue
            name = f.manifest.split(", ")[-1]
            n, example, msg = found.get((name, kc.key), (0, f"{f.folder}/{f.name}", ""))
            found[(name, kc.key)] = (
                n + 1,
                example,
                msg or needs_schema_change(kc.key, kc.after, err, intended, hint),
            )
    out: list[Diagnostic] = []
    for (name, key), (n, example, msg) in sorted(found.items()):
        m = manifests.get(name)
        if m is None or (m.path, key) in said:
            continue  # a manifest's own line already says so
        out.append(Diagnostic(m.location, f"{msg} ({n:,} file(s), e.g. {example})"))
    return out


def make_plan(
    desired: DesiredState,
    provider: StateProvider,
    *,
    targets: Targets | None = None,
    hooks: PlanHooks | None = None,
    now: dt.datetime | None = None,
    override_limits: bool = False,
    parallelism: int | None = None,
    shard: Shard | None = None,
) -> Plan:
    """Read live state and compute the plan that brings it to the desired state.

    ``parallelism`` (default: the Workspace's ``settings.parallelism``) is how many folders are listed at once
    when the provider can serve listings concurrently.
    With ``shard``, only that shard's share of the files (:mod:`reconciler.plan.shard`); the schema only in
    shard 1, and the hard limits on the shard's share of them (see :func:`check_limits`).

    ``override_limits`` lets the plan exceed ``settings.limits`` max_files / max_removed_keys (recorded as
    warnings in the plan). Raises ManifestValidationError (all problems at once), ProviderError, or
    PlanError (LimitExceededError for a plan over the limits).
    """
    return _make_plan(desired, provider, targets, hooks, now, override_limits, parallelism, shard)


def _make_plan(
    desired: DesiredState,
    provider: StateProvider,
    targets: Targets | None,
    hooks: PlanHooks | None,
    now: dt.datetime | None,
    override_limits: bool,
    parallelism: int | None,
    shard: Shard | None,
) -> Plan:
    targets = targets or Targets()
    # Before the first request (no other thread runs yet): the process that may read the sources ahead.
    readers = source_readers(
        desired.files, provider, Path(desired.root), whole=targets.is_all and shard is None
    )
    try:
        return _plan(desired, provider, targets, hooks, now, override_limits, parallelism, shard, readers)
    finally:
        if readers is not None:
            readers.close()


def _plan(
    desired: DesiredState,
    provider: StateProvider,
    targets: Targets,
    hooks: PlanHooks | None,
    now: dt.datetime | None,
    override_limits: bool,
    parallelism: int | None,
    shard: Shard | None,
    readers: SourceReaders | None,
) -> Plan:
    hooks = hooks or NullPlanHooks()
    wants_schema = targets.wants_schema() and (shard is None or shard.plans_schema)
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = list(desired.warnings)

    # 0. Conflicts between exact selectors of any two manifests, whatever the targets (plan/checks.py).
    conflicts = offline_conflicts(desired.files)
    if conflicts:
        raise ManifestValidationError(conflicts)

    # 1. Schema: live, diff, and the schema as it will be after the plan.
    live_wire = provider.read_schema()
    try:
        live_schema = parse_wire_schema(live_wire)
    except ValueError as exc:
        raise ProviderResponseError(f"live metadata schema: {exc}") from exc
    sd = diff_schema(desired.schema if wants_schema else None, live_schema)
    errors.extend(sd.errors)
    after_schema = sd.after
    # Every shard moves renamed keys' values on its share of the files; only shard 1 plans the schema.
    renames, rename_errors = collect_renames(desired.schema if targets.wants_schema() else None)
    errors.extend(rename_errors)
    has_schema = desired.schema is not None or bool(live_schema.keys)
    declared = frozenset(desired.schema.keys) if desired.schema is not None else None
    # Left out by --target: the schema the manifests declare, for what a value that needs it is told.
    intended = (
        diff_schema(desired.schema, live_schema).after
        if desired.schema is not None and not wants_schema
        else None
    )
    hint = SHARD_HINT if shard is not None and not shard.plans_schema else TARGET_HINT
    checker = _ValueChecker(
        after_schema, desired.workspace.settings.undeclared_keys, has_schema, declared, intended, hint
    )
    spec_map: dict[str, FieldSpec] = dict(after_schema.keys)
    # Source rows are checked against the intended type of a key the plan leaves unchanged; what the plan
    # would write is checked against the live type below, with the --target message.
    live_specs: dict[str, FieldSpec] = {}
    if intended is not None:
        for key, spec in intended.keys.items():
            have = spec_map.get(key)
            if have is not None and have != spec:
                live_specs[key] = have
                spec_map[key] = spec

    # 2. Files: select, layer, check and diff, streaming (plan/files.py). Only changes are kept.
    manifests = [m for m in desired.files if targets.wants(m)]
    for m in manifests:
        for key, a in _assignments_to_check(m):
            checker.check(key, a)
    rename_check = RenameCheck(renames, spec_map)
    fp = plan_files(
        desired.files,
        provider,
        root=Path(desired.root),
        spec_map=spec_map,
        undeclared_keys=desired.workspace.settings.undeclared_keys,
        has_schema=has_schema,
        renames=renames,
        rename_check=rename_check,
        planned=None if targets.is_all else targets.wants,
        shard=shard,
        on_progress=hooks.on_progress,
        parallelism=parallelism or desired.workspace.settings.parallelism,
        readers=readers,
    )
    errors.extend(fp.errors)
    warnings.extend(fp.warnings)
    by_manifest = {m.name: m for m in manifests}
    if live_specs:
        errors.extend(
            _needs_left_out_schema(fp.files, live_specs, intended, by_manifest, checker.errors, hint)
        )

    # A manifest still setting a renamed key gets the rename's message instead of "key is deleted".
    old_key_errors = check_manifest_assignments(manifests, renames)
    old_key_locations = {d.location for d in old_key_errors}
    errors.extend(old_key_errors)
    errors.extend(e for e in checker.errors if e.location not in old_key_locations)
    warnings.extend(checker.warnings)

    if errors:
        raise ManifestValidationError(errors)

    # 3. Renames move values on every file of the organisation that holds an old key (plan/renames.py);
    # the selected files were checked while they were diffed.
    scan = RenameScan()
    if renames:
        scan = scan_old_keys(provider, renames, hooks.on_progress)
        if fp.rule is not None:
            rule = fp.rule
            scan.items = {u: e for u, e in scan.items.items() if rule.owns_file(u, e[0])}
        for uuid, (folder_path, rel, item) in scan.items.items():
            if uuid not in fp.claims:
                rename_check.check_file(f"{folder_path}/{rel}", item.metadata, ())
        errors.extend(rename_check.errors(by_manifest))
        if errors:
            raise ManifestValidationError(errors)

    # 4. The changes found.
    files: list[FileChange] = fp.files
    unchanged = fp.unchanged
    schema_name = desired.schema.location.path if desired.schema is not None else "schema"
    for uuid, (folder_path, rel, item) in scan.items.items():
        moved = move_values(item.metadata, renames)
        if uuid in fp.claims or moved is None:
            continue
        files.append(
            FileChange(
                uuid=uuid,
                folder=folder_path,
                name=rel,
                strategy=Strategy.MERGE,
                manifest=f"{schema_name} (renamed_from)",
                live_fingerprint=metadata_fingerprint(item.metadata),
                changes=diff_metadata(item.metadata, moved),
            )
        )
    files.sort(key=lambda f: (f.folder, f.name, f.uuid))
    schema_changes = sd.changes
    for r in renames.values():
        moving = sum(1 for f in files if any(kc.key == r.old for kc in f.changes))
        schema_changes = tuple(
            replace(c, reason=f"renamed from {r.old}; values move to it on {moving:,} file(s)")
            if c.action is SchemaAction.RENAME and c.key == r.new
            else c
            for c in schema_changes
        )
        warnings.append(
            Diagnostic(
                r.location,
                f"renamed_from {r.old!r}: read every folder ({scan.folders:,} folders, {scan.files:,} files, "
                f"{scan.reads:,} API reads) to find files holding {r.old!r}; {moving:,} to move. "
                "Remove renamed_from once no file holds the old key.",
                "warning",
            )
        )

    # 5. Blast-radius limits (plan/limits.py).
    limits = desired.workspace.settings.limits
    report = check_limits(
        files,
        fp.claims,
        limits,
        moved_keys=renames.keys(),
        shards=shard.count if shard is not None else 1,
        also_selected=fp.selected_unchanged,
    )
    if report.violations:
        if not override_limits:
            raise limit_error(report)
        for v in report.violations:
            warnings.append(
                Diagnostic(desired.workspace.location, f"{v} (allowed by --override-limits)", "warning")
            )

    created = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    return Plan(
        tool_version=__version__,
        created_at=created.isoformat().replace("+00:00", "Z"),
        provider=provider.identity,
        manifests_digest=desired.digest,
        schema_fingerprint=schema_fingerprint(live_wire),
        schema_changes=schema_changes,
        files=tuple(files),
        unchanged=unchanged,
        reads=provider.stats.reads,
        writes=provider.stats.writes,
        warnings=tuple(sorted(set(warnings))),
        destructive_reasons=report.destructive_reasons,
        shard=shard,
    )
