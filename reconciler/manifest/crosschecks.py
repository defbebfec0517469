"""The rules across manifest documents: one Workspace and at most one MetadataSchema, values against the
declared schema (and the undeclared-keys policy), ownership conflicts that can be told offline, and the
rows of every ``source:`` file (``validate``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from reconciler.errors import SourceLocation
from reconciler.manifest.diagnostics import Collected, Doc, quote_list
from reconciler.model import SelectorKind, SourceSpec, UndeclaredKeys
from reconciler.reserved import is_reserved
from reconciler.values import check_value

if TYPE_CHECKING:
    from reconciler.schema import FieldSpec
    from reconciler.types import JsonValue

__all__ = [
    "Assigned",
    "ClaimKey",
    "check_conflicts",
    "check_singletons",
    "check_sources",
    "check_values",
    "undeclared_policy",
]

_UNDECLARED = "is not declared in the metadata schema"


class Assigned(NamedTuple):
    """A value a manifest gives a key, where it is written."""

    key: str
    value: JsonValue
    location: SourceLocation


@dataclass
class _Claim:
    """An exact selector of one manifest, for the offline conflict check."""

    manifest: str
    overwrite: bool
    keys: frozenset[str]  # keys given for the file (defaults + the entry's metadata)
    patterns: tuple[str, ...]  # owns
    location: SourceLocation


#: What a claim selects: (folder, selector kind, pattern).
ClaimKey: TypeAlias = tuple[str, SelectorKind, str]


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
            SourceLocation(f"{root.name or root}/"),
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
    warned: set[str] = set()
    for key, value, location in assignments:
        if value is None:
            continue  # null always means "remove the key"
        spec = (keys or {}).get(key)
        if spec is not None:
            problem = check_value(key, value, spec)
            if problem is not None:
                out.error(location, problem)
            continue
        if keys is None or key in broken:
            continue
        _undeclared(key, location, undeclared, warned, out)


def _undeclared(
    key: str, location: SourceLocation, policy: UndeclaredKeys, warned: set[str], out: Collected
) -> None:
    if policy is UndeclaredKeys.ERROR:
        out.error(location, f"key {key!r} {_UNDECLARED} (settings.undeclared_keys: error)")
    elif policy is UndeclaredKeys.WARN and key not in warned:
        warned.add(key)
        out.warn(location, f"key {key!r} {_UNDECLARED}")


def check_conflicts(claims_by_file: dict[ClaimKey, list[_Claim]], out: Collected) -> None:
    """Two manifests owning one key of one file, or an overwrite manifest sharing a file (exact selectors)."""
    for (folder, kind, pattern), claims in sorted(claims_by_file.items(), key=lambda kv: kv[0][0] + kv[0][2]):
        for i, later in enumerate(claims):
            for earlier in claims[:i]:
                if earlier.manifest == later.manifest:
                    continue  # duplicates inside one manifest are reported on their own
                what = f"{kind.value} {pattern!r} in folder {folder!r}"
                if earlier.overwrite or later.overwrite:
                    ow, other = (earlier, later) if earlier.overwrite else (later, earlier)
                    out.error(
                        later.location,
                        f"conflict: {what} is selected by overwrite manifest {ow.manifest} and by "
                        f"{other.manifest} (other selector at {earlier.location}); "
                        "an overwrite manifest must be the only one selecting a file",
                    )
                    continue
                shared = _shared_keys(earlier, later)
                if shared:
                    out.error(
                        later.location,
                        f"conflict: manifests {earlier.manifest} and {later.manifest} both own "
                        f"{quote_list([repr(k) for k in shared])} on {what} "
                        f"(other selector at {earlier.location})",
                    )


def _shared_keys(a: _Claim, b: _Claim) -> list[str]:
    """Keys (or owns patterns) both claims manage, as far as can be told without live state."""
    shared = set(a.keys & b.keys)
    shared.update(k for k in a.keys if any(fnmatch.fnmatchcase(k, p) for p in b.patterns))
    shared.update(k for k in b.keys if any(fnmatch.fnmatchcase(k, p) for p in a.patterns))
    for pa in a.patterns:
        for pb in b.patterns:
            if pa == pb or fnmatch.fnmatchcase(pa, pb) or fnmatch.fnmatchcase(pb, pa):
                shared.add(pa if len(pa) >= len(pb) else pb)
    return sorted(shared)


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
        seen_keys: set[str] = set()
        warned: set[str] = set()
        for row in iter_source_rows(root, src, spec_map, out.errors):
            if keys is None:
                continue
            for key, value in row.values.items():
                if key in seen_keys and undeclared is not UndeclaredKeys.ERROR:
                    continue
                seen_keys.add(key)
                if value is not None and not is_reserved(key) and key not in spec_map and key not in broken:
                    _undeclared(key, row.location, undeclared, warned, out)
