"""Pure diffing: desired vs live schema (classified safe/destructive) and one file's metadata dicts.

deepdiff is imported here only; its results become ``FieldChange`` records at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.errors import Diagnostic
from reconciler.frames import plan_order
from reconciler.plan.model import FieldChange, KeyAction, KeyChange, SchemaAction, SchemaChange
from reconciler.schema import Deletion, FieldSpec, KeyType, SchemaSpec

if TYPE_CHECKING:
    from collections.abc import Iterable

    from reconciler.model import SchemaManifest
    from reconciler.types import JsonValue, MetadataView

__all__ = ["SchemaDiff", "diff_metadata", "diff_schema", "schema_change_destructive", "values_equal"]

log = logging.getLogger(__name__)


_PLAIN_TYPES = frozenset({str, int, float})


def values_equal(a: JsonValue, b: JsonValue) -> bool:
    """JSON equality that keeps booleans apart from numbers (Python says ``True == 1``) but lets ``1 == 1.0``."""
    ta = type(a)
    if ta is type(b):  # fast paths for what JSON decodes to (a large plan compares millions of values)
        if ta is str or ta is int or ta is bool:
            return a == b
        if ta is float:
            return a == b or (a != a and b != b)  # NaN equals NaN here
        # CPython's == on lists and dicts of strings and numbers is this function's equality.
        plain = _PLAIN_TYPES.issuperset
        if isinstance(a, list) and isinstance(b, list):
            if a == b and plain(map(type, a)) and plain(map(type, b)):
                return True
        elif (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a == b
            and plain(map(type, a.values()))
            and plain(map(type, b.values()))
        ):
            return True
    return _values_equal(a, b)


def _values_equal(a: JsonValue, b: JsonValue) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return a == b
    if isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(values_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    return a is None and b is None


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def _plain_field_changes(before: JsonValue, after: JsonValue) -> tuple[FieldChange, ...] | None:
    """What DeepDiff reports, computed directly for the common shapes (a large plan has thousands of
    changed embeddings and coordinates, and DeepDiff costs about half a millisecond each); ``None`` for
    everything else, which DeepDiff handles.

    Handled: two lists of scalars of one length that differ at exactly one position or at every position
    with no value in common (DeepDiff's sequence matching then pairs them by position), and two dicts of
    scalars with the same keys. A value equal across number types (``1`` and ``1.0``) or a NaN is left to
    DeepDiff. tests/unit/plan/test_differ_fast.py checks this against DeepDiff on random values.
    """
    if type(before) is list and type(after) is list:
        n = len(before)
        if n != len(after) or not (
            _SCALAR_TYPES.issuperset(map(type, before)) and _SCALAR_TYPES.issuperset(map(type, after))
        ):
            return None
        differ: list[int] = []
        for i, (x, y) in enumerate(zip(before, after, strict=True)):
            if (type(x) is float and x != x) or (type(y) is float and y != y):
                return None  # NaN
            if x != y:
                differ.append(i)
            elif type(x) is not type(y):
                return None
        if not (len(differ) == 1 or (len(differ) == n and set(before).isdisjoint(after))):
            return None
        return tuple(
            sorted((FieldChange(f"[{i}]", before[i], after[i]) for i in differ), key=lambda c: c.path)
        )
    if type(before) is dict and type(after) is dict:
        if before.keys() != after.keys() or not (
            _SCALAR_TYPES.issuperset(map(type, before.values()))
            and _SCALAR_TYPES.issuperset(map(type, after.values()))
        ):
            return None
        out: list[FieldChange] = []
        for key, x in before.items():
            y = after[key]
            if (type(x) is float and x != x) or (type(y) is float and y != y):
                return None
            if x != y or type(x) is not type(y):
                out.append(FieldChange(f"[{key!r}]", x, y))
        out.sort(key=lambda c: c.path)
        return tuple(out)
    return None


def _field_changes(before: JsonValue, after: JsonValue) -> tuple[FieldChange, ...]:
    """Readable nested changes between two container values (lists, dicts)."""
    if not (isinstance(before, (list, dict)) and isinstance(after, (list, dict))):
        return ()
    if type(before) is not type(after):
        return ()
    quick = _plain_field_changes(before, after)
    if quick is not None:
        return quick
    from deepdiff import DeepDiff  # imported on first use: it costs ~0.5 s of start-up

    dd = DeepDiff(before, after, ignore_order=False, verbose_level=2, view="tree")
    out: list[FieldChange] = []
    for report_type in sorted(dd.keys()):
        for level in dd[report_type]:
            path = level.path(root="")
            t1 = None if type(level.t1).__name__ == "NotPresent" else level.t1
            t2 = None if type(level.t2).__name__ == "NotPresent" else level.t2
            out.append(FieldChange(path, t1, t2))
    out.sort(key=lambda c: c.path)
    return tuple(out)


_ABSENT: Any = object()


def diff_metadata(
    before: MetadataView, after: MetadataView, *, keys: Iterable[str] | None = None
) -> tuple[KeyChange, ...]:
    """The key changes that turn ``before`` into ``after``, sorted by key (alembic's set arithmetic; per-frame
    keys by frame number, :func:`reconciler.frames.plan_order`).

    ``keys``: the only keys that can differ, when the caller knows it (a merge touches only the keys it
    owns); the rest are not compared.
    """
    changes: list[KeyChange] = []
    if keys is not None:
        for key in sorted(keys, key=plan_order):
            b, a = before.get(key, _ABSENT), after.get(key, _ABSENT)
            if b is _ABSENT:
                if a is not _ABSENT:
                    changes.append(KeyChange(key, KeyAction.ADD, None, a))
            elif a is _ABSENT:
                changes.append(KeyChange(key, KeyAction.REMOVE, b, None))
            elif not values_equal(b, a):
                changes.append(KeyChange(key, KeyAction.UPDATE, b, a, _field_changes(b, a)))
        return tuple(changes)
    for key in sorted(after.keys() - before.keys(), key=plan_order):
        changes.append(KeyChange(key, KeyAction.ADD, None, after[key]))
    for key in sorted(before.keys() - after.keys(), key=plan_order):
        changes.append(KeyChange(key, KeyAction.REMOVE, before[key], None))
    for key in sorted(before.keys() & after.keys(), key=plan_order):
        b, a = before[key], after[key]
        if not values_equal(b, a):
            changes.append(KeyChange(key, KeyAction.UPDATE, b, a, _field_changes(b, a)))
    changes.sort(key=lambda c: plan_order(c.key))
    return tuple(changes)


@dataclass(frozen=True)
class SchemaDiff:
    """The result of :func:`diff_schema`: changes, errors (changes Encord cannot make), and the schema after."""

    changes: tuple[SchemaChange, ...]
    errors: tuple[Diagnostic, ...]
    after: SchemaSpec


_TEXT_FAMILY = {KeyType.VARCHAR, KeyType.TEXT}


def _classify_update(key: str, before: FieldSpec, after: FieldSpec) -> SchemaChange:
    if before.type is KeyType.ENUM and after.type is KeyType.ENUM:
        removed = sorted(set(before.values) - set(after.values))
        added = sorted(set(after.values) - set(before.values))
        if removed:
            return SchemaChange(
                key,
                SchemaAction.UPDATE,
                before,
                after,
                True,
                "removes enum values " + ", ".join(removed) + " (files holding them become invalid)",
            )
        return SchemaChange(
            key, SchemaAction.UPDATE, before, after, False, "adds enum values " + ", ".join(added)
        )
    if before.type is KeyType.EMBEDDING and after.type is KeyType.EMBEDDING:
        return SchemaChange(
            key,
            SchemaAction.UPDATE,
            before,
            after,
            True,
            f"changes the embedding size {before.size} -> {after.size}",
        )
    if before.type in _TEXT_FAMILY and after.type in _TEXT_FAMILY:
        return SchemaChange(key, SchemaAction.UPDATE, before, after, False, "changes the text hint")
    return SchemaChange(
        key,
        SchemaAction.UPDATE,
        before,
        after,
        True,
        f"changes the type {before.describe()} -> {after.describe()}",
    )


def schema_change_destructive(key: str, have: FieldSpec | None, after: FieldSpec) -> str | None:
    """Why making live key ``have`` into ``after`` is destructive (``None``: it is not), by the rules of
    :func:`diff_schema`, from the live schema alone: apply asks this of a saved plan's changes instead of
    trusting their ``destructive`` flags (SPEC §4 "Trust")."""
    if have is None:
        return "hard delete" if after.deleted is Deletion.HARD else None
    if after.deleted is not None:
        if have.deleted is None:
            return "soft delete" if after.deleted is Deletion.SOFT else "hard delete (not restorable)"
        if after.deleted is Deletion.HARD and have.deleted is not Deletion.HARD:
            return "hard delete of a soft-deleted key"
        return None
    if have.deleted is Deletion.HARD:
        return "a hard-deleted key cannot be changed"
    base = have.alive() if have.deleted is Deletion.SOFT else have
    if base.same_type(after):
        return None
    change = _classify_update(key, base, after)
    return change.reason if change.destructive else None


def diff_schema(desired: SchemaManifest | None, live: SchemaSpec) -> SchemaDiff:
    """Compare the declared schema with the live one.

    Returns every change (sorted by key) classified safe or destructive, the errors for changes Encord
    cannot make at all (each at the declaring line), and the schema as it will be after the plan.
    """
    if desired is None:
        return SchemaDiff((), (), live)
    changes: list[SchemaChange] = []
    errors: list[Diagnostic] = []
    after: dict[str, FieldSpec] = dict(live.keys)
    renamed_sources = {d.renamed_from for d in desired.keys.values() if d.renamed_from}

    for key in sorted(desired.keys):
        want = desired.keys[key]
        spec = want.spec
        have = live.keys.get(key)
        loc = want.location
        change: SchemaChange | None = None
        if want.renamed_from and have is not None:
            prev = live.keys.get(want.renamed_from)
            if prev is not None and prev.is_live:
                errors.append(
                    Diagnostic(
                        loc,
                        f"schema key {key!r} is renamed_from {want.renamed_from!r}, but {key!r} already exists "
                        f"in the live schema while {want.renamed_from!r} is still live: a rename creates the new "
                        "key, it cannot merge two existing ones. Rename to a new key name, or remove "
                        f"renamed_from and move the values with a manifest",
                    )
                )
                continue
        if have is None:
            if spec.deleted is None:
                change = SchemaChange(key, SchemaAction.CREATE, None, spec, False, "new key")
                if want.renamed_from:
                    old = live.keys.get(want.renamed_from)
                    if old is not None and old.is_live:
                        change = SchemaChange(
                            key,
                            SchemaAction.RENAME,
                            old,
                            spec,
                            False,
                            f"renamed from {want.renamed_from}",
                            renamed_from=want.renamed_from,
                        )
        elif have.deleted is Deletion.HARD:
            if spec.deleted is None:
                errors.append(
                    Diagnostic(
                        loc, f"schema key {key!r} was hard-deleted in Encord and cannot be added again"
                    )
                )
        elif have.deleted is Deletion.SOFT:
            if spec.deleted is Deletion.HARD:
                change = SchemaChange(
                    key, SchemaAction.DELETE, have, spec, True, "hard delete of a soft-deleted key"
                )
            elif spec.deleted is None:
                if have.same_type(spec):
                    change = SchemaChange(
                        key, SchemaAction.RESTORE, have, spec, False, "restores a soft-deleted key"
                    )
                elif have.type in (KeyType.ENUM, KeyType.EMBEDDING, KeyType.GEOSPATIAL) or not (
                    spec.type is not None
                    and spec.type.is_scalar
                    and have.type is not None
                    and have.type.is_scalar
                ):
                    errors.append(
                        Diagnostic(
                            loc,
                            f"schema key {key!r} is soft-deleted as {have.describe().removeprefix('soft-deleted ')}; "
                            f"Encord cannot restore it as {spec.describe()} (restore it with its old type, "
                            "or use a new key name)",
                        )
                    )
                else:
                    # A soft-deleted scalar comes back with a new hint, as the SDK's add_scalar does.
                    restored = _classify_update(key, have.alive(), spec)
                    change = SchemaChange(
                        key,
                        SchemaAction.RESTORE,
                        have,
                        spec,
                        restored.destructive,
                        f"restores a soft-deleted key and {restored.reason}",
                    )
        else:  # live key
            if spec.deleted is not None:
                change = SchemaChange(
                    key,
                    SchemaAction.DELETE,
                    have,
                    spec,
                    True,
                    "soft delete (restorable)"
                    if spec.deleted is Deletion.SOFT
                    else "hard delete (not restorable)",
                )
            elif have.type is KeyType.USER:
                errors.append(
                    Diagnostic(loc, f"schema key {key!r} has Encord's 'user' type, which cannot be changed")
                )
            elif not have.same_type(spec):
                change = _classify_update(key, have, spec)
        if change is not None:
            log.info("detected schema change %s %r", change.action.value, key)
            changes.append(change)
            after[key] = spec
            if change.action is SchemaAction.RENAME and change.renamed_from:
                old = live.keys[change.renamed_from]
                after[change.renamed_from] = FieldSpec(old.type, old.values, old.size, Deletion.SOFT)

    if desired.prune:
        for key in sorted(live.keys.keys() - desired.keys.keys() - renamed_sources):
            have = live.keys[key]
            if have.is_live:
                changes.append(
                    SchemaChange(
                        key,
                        SchemaAction.DELETE,
                        have,
                        FieldSpec(have.type, have.values, have.size, Deletion.SOFT),
                        True,
                        "not declared and prune is on: soft delete (restorable)",
                    )
                )
                after[key] = FieldSpec(have.type, have.values, have.size, Deletion.SOFT)
    changes.sort(key=lambda c: plan_order(c.key))
    return SchemaDiff(tuple(changes), tuple(errors), SchemaSpec(after))
