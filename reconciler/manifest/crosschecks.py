"""The rules across manifest documents: one Workspace and at most one MetadataSchema, values against the
declared schema (and the undeclared-keys policy, :mod:`reconciler.undeclared`), and the rows of every
``source:`` file (``validate``). Ownership conflicts between manifests: :mod:`reconciler.plan.checks`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from reconciler.errors import SourceLocation
from reconciler.frames import base_key
from reconciler.manifest.diagnostics import Collected, Doc
from reconciler.model import SourceSpec, UndeclaredKeys
from reconciler.undeclared import UndeclaredJudge
from reconciler.values import check_value

if TYPE_CHECKING:
    from reconciler.schema import FieldSpec
    from reconciler.types import JsonValue

__all__ = [
    "Assigned",
    "check_singletons",
    "check_sources",
    "check_values",
    "undeclared_policy",
]


class Assigned(NamedTuple):
    """A value a manifest gives a key, where it is written."""

    key: str
    value: JsonValue
    location: SourceLocation


def undeclared_policy(workspace: Doc | None) -> UndeclaredKeys:
    """The Workspace's ``settings.undeclared_keys`` (read even when the document has other problems)."""
    if workspace is None:
        return UndeclaredKeys.WARN
    settings = workspace.data.get("settings")
    raw = settings.get("undeclared_keys") if isinstance(settings, dict) else None
    return next((p for p in UndeclaredKeys if p.value == raw), UndeclaredKeys.WARN)


def check_singletons(root: Path, workspaces: Sequence[Doc], schemas: Sequence[Doc], out: Collected) -> None:
    if not workspaces:
        out.error(
            SourceLocation("."),
            "no Workspace manifest found (add one document with kind: Workspace)",
        )
    for doc in workspaces[1:]:
        out.error(
            doc.location,
            f"a second Workspace: there must be exactly one (the other is at {workspaces[0].location})",
        )
    for doc in schemas[1:]:
        out.error(
            doc.location,
            f"a second MetadataSchema: there may be at most one (the other is at {schemas[0].location})",
        )


def check_values(
    assignments: Iterable[Assigned],
    keys: dict[str, FieldSpec] | None,
    broken: set[str],
    undeclared: UndeclaredKeys,
    out: Collected,
) -> None:
    """Every value against its declared key; ``keys`` is ``None`` without a MetadataSchema."""
    judge = UndeclaredJudge(set(keys or ()) | broken, undeclared, keys is not None, out.errors, out.warnings)
    for key, value, location in assignments:
        if value is None:
            continue  # null always means "remove the key"
        spec = (keys or {}).get(base_key(key))  # a per-frame value frames[N].KEY is a value of KEY
        if spec is not None:
            problem = check_value(key, value, spec)
            if problem is not None:
                out.error(location, problem)
            continue
        judge.judge(key, value, location)


def check_sources(
    root: Path,
    sources: Iterable[SourceSpec],
    keys: dict[str, FieldSpec] | None,
    broken: set[str],
    undeclared: UndeclaredKeys,
    out: Collected,
) -> None:
    """Every row of every source file, against the schema (each file once)."""
    from reconciler.manifest.source import iter_source_rows

    spec_map = keys or {}
    done: set[str] = set()
    for src in sources:
        if src.path in done:
            continue
        done.add(src.path)
        judge = UndeclaredJudge(
            set(spec_map) | broken, undeclared, keys is not None, out.errors, out.warnings
        )
        first: dict[tuple[object, str], int] = {}  # (kind, name or uuid) -> the line that selects it first
        for row in iter_source_rows(root, src, spec_map, out.errors):
            judge.judge_row(row)
            at = first.setdefault((row.kind, row.key), row.line)
            if at != row.line:  # what plan finds too (plan/selection.py): one file selected exactly twice
                out.error(
                    SourceLocation(src.path, row.line),
                    f"{row.key!r} is already selected exactly at {src.path}:{at} in this manifest",
                )
