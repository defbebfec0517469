"""Key renames (``renamed_from`` on a MetadataSchema key): which files' values move, and what is an error.

A rename is complete like a Terraform ``moved`` block: the new key is created, the old one soft-deleted,
and the value moves on **every file of the organisation** that holds the old key, not only the files the
manifests select. Finding them means reading every folder (:func:`scan_old_keys`); the plan says so and
counts the reads. The scan runs on every plan while ``renamed_from`` stays in the manifest, so an
interrupted apply still converges; remove ``renamed_from`` once no file holds the old key.

Errors (each at a manifest line): a rename from a key that is still declared, from the key itself, two keys
renamed from one; a FileMetadata manifest that still sets the old key; files that hold both keys with
different values; a manifest that owns the new key on a file being moved but sets no value for it (the
next plan would prune the moved value); moved values that are invalid for the new key's type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.errors import Diagnostic, SourceLocation
from reconciler.plan.differ import values_equal
from reconciler.plan.limits import claim_owns
from reconciler.progress import RENAMES
from reconciler.values import format_value

if TYPE_CHECKING:
    from reconciler.model import Assignment, FileManifest, LiveItem, SchemaManifest
    from reconciler.plan.limits import Claim
    from reconciler.providers.base import StateProvider
    from reconciler.schema import FieldSpec
    from reconciler.types import JsonValue, MetadataView

__all__ = [
    "Rename",
    "RenameCheck",
    "RenameScan",
    "check_manifest_assignments",
    "collect_renames",
    "move_values",
    "scan_old_keys",
]


@dataclass(frozen=True)
class Rename:
    """``new`` declares ``renamed_from: old`` at ``location``."""

    old: str
    new: str
    location: SourceLocation


def collect_renames(schema: SchemaManifest | None) -> tuple[dict[str, Rename], list[Diagnostic]]:
    """The renames a schema manifest declares (old key -> Rename), and the errors in them."""
    if schema is None:
        return {}, []
    out: dict[str, Rename] = {}
    errors: list[Diagnostic] = []
    for key in sorted(schema.keys):
        want = schema.keys[key]
        old = want.renamed_from
        if not old:
            continue
        loc = want.location
        if old == key:
            errors.append(Diagnostic(loc, f"schema key {key!r}: renamed_from names the key itself"))
        elif want.spec.deleted is not None:
            errors.append(
                Diagnostic(loc, f"schema key {key!r} is deleted, so it cannot be renamed_from {old!r}")
            )
        elif old in schema.keys:
            errors.append(
                Diagnostic(
                    loc,
                    f"schema key {key!r} is renamed_from {old!r}, which is still declared at "
                    f"{schema.keys[old].location}; remove that declaration (the rename soft-deletes {old!r})",
                )
            )
        elif old in out:
            errors.append(
                Diagnostic(loc, f"schema keys {out[old].new!r} and {key!r} are both renamed_from {old!r}")
            )
        else:
            out[old] = Rename(old, key, loc)
    return out, errors


def check_manifest_assignments(
    manifests: Iterable[FileManifest], renames: Mapping[str, Rename]
) -> list[Diagnostic]:
    """A FileMetadata manifest that still sets a renamed key (to a value; ``null`` is fine) is an error."""
    errors: list[Diagnostic] = []
    if not renames:
        return errors

    def check(assignments: Mapping[str, Assignment]) -> None:
        for key, a in assignments.items():
            r = renames.get(key)
            if r is not None and a.value is not None:
                errors.append(
                    Diagnostic(
                        a.location,
                        f"key {key!r} is renamed to {r.new!r} (renamed_from at {r.location}); "
                        f"set {r.new!r} instead",
                    )
                )

    for m in manifests:
        check(m.defaults)
        for s in m.files:
            check(s.metadata)
    return errors


def move_values(metadata: MetadataView, renames: Mapping[str, Rename]) -> dict[str, JsonValue] | None:
    """``metadata`` with every old key's value moved to its new key; ``None`` if it holds no old key.

    A value already under the new key is replaced (collisions are checked by :class:`RenameCheck`).
    """
    if not any(old in metadata for old in renames):
        return None
    out = dict(metadata)
    for old, r in renames.items():
        if old in out:
            out[r.new] = out.pop(old)
    return out


@dataclass
class RenameScan:
    """Every file of the organisation that holds an old key, and what finding them cost."""

    items: dict[str, tuple[str, str, LiveItem]] = field(default_factory=dict)  # uuid -> (folder, rel, item)
    folders: int = 0
    files: int = 0
    reads: int = 0


def scan_old_keys(
    provider: StateProvider,
    renames: Mapping[str, Rename],
    on_progress: Callable[[str, int, int | None], None],
) -> RenameScan:
    """Read every folder (with child items) for files holding an old key."""
    before = provider.stats.reads
    scan = RenameScan()
    on_progress(RENAMES, 0, None)
    folders = provider.list_folders()
    scan.folders = len(folders)
    for n, folder in enumerate(folders, 1):
        listed = list(provider.iter_items(folder, recursive=False, children=True))
        scan.files += len(listed)
        for li in listed:
            if any(old in li.item.metadata for old in renames):
                scan.items[li.item.uuid] = (folder.path, li.rel_name, li.item)
        on_progress(RENAMES, n, len(folders))
    scan.reads = provider.stats.reads - before
    return scan


class RenameCheck:
    """Collects the per-file rename problems and reports each kind once, with a count and an example."""

    def __init__(self, renames: Mapping[str, Rename], spec_map: Mapping[str, FieldSpec]) -> None:
        from reconciler.values import ValueChecker, value_checker

        self.renames = renames
        self._checkers: dict[str, ValueChecker] = {}

        for old, r in renames.items():
            spec = spec_map.get(r.new)
            if spec is not None:
                self._checkers[old] = value_checker(r.new, spec)
        self._problems: dict[tuple[str, str, str], list[str]] = {}  # (kind, old, manifest) -> examples
        self._first: dict[tuple[str, str, str], str] = {}

    def _add(self, kind: str, old: str, manifest: str, address: str, detail: str) -> None:
        k = (kind, old, manifest)
        self._problems.setdefault(k, []).append(address)
        self._first.setdefault(k, detail)

    def check_file(self, address: str, live: MetadataView, claims: Sequence[Claim]) -> None:
        """Check one file that holds an old key against the manifests that select it."""
        for old, r in self.renames.items():
            if old not in live:
                continue
            value = live[old]
            given_new = [c for c in claims if _gives(c, r.new)]
            if not given_new:
                for c in claims:
                    if claim_owns(c, r.new):
                        self._add("pruned", old, c.manifest.name, address, "")
                if r.new in live and not values_equal(live[r.new], value):
                    self._add(
                        "collision",
                        old,
                        "",
                        address,
                        f"{old}={format_value(value)}, {r.new}={format_value(live[r.new])}",
                    )
                checker = self._checkers.get(old)
                msg = checker(value) if checker is not None else None
                if msg:
                    self._add("invalid", old, "", address, msg)

    def errors(self, manifests: Mapping[str, FileManifest]) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        for (kind, old, manifest), addresses in sorted(self._problems.items()):
            r = self.renames[old]
            n = len(addresses)
            example = addresses[0]
            detail = self._first[(kind, old, manifest)]
            if kind == "pruned":
                m = manifests[manifest]
                out.append(
                    Diagnostic(
                        m.location,
                        f"{manifest} owns {r.new!r} on {n:,} file(s) holding {old!r} (e.g. {example}) but sets "
                        f"no value for it there: the rename would move the value and the next plan would "
                        f"remove it. Set {r.new!r} for these files, or stop owning it.",
                    )
                )
            elif kind == "collision":
                out.append(
                    Diagnostic(
                        r.location,
                        f"rename {old!r} -> {r.new!r}: {n:,} file(s) hold both keys with different values "
                        f"(e.g. {example}: {detail}); the move would overwrite {r.new!r}. Make the values "
                        f"agree or remove one of them first, or set {r.new!r} for these files in a manifest.",
                    )
                )
            else:
                out.append(
                    Diagnostic(
                        r.location,
                        f"rename {old!r} -> {r.new!r}: {n:,} file(s) hold values that are not valid for "
                        f"{r.new!r} (e.g. {example}: {detail})",
                    )
                )
        return out


def _gives(claim: Claim, key: str) -> bool:
    a = claim.given.get(key)
    return a is not None and a.value is not None
