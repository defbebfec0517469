"""Offline checks across manifests (no live state): conflicts between exact selectors of two manifests.

``validate`` and every plan run them on all manifests, whatever ``--target`` says. The rule is
:func:`reconciler.plan.semantics.conflict`; offline, two ``owns`` patterns that can match one key count
too, since the live keys are not known.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.errors import Diagnostic, SourceLocation
from reconciler.model import FileManifest, SelectorKind
from reconciler.plan.semantics import CompiledManifest, conflict

__all__ = ["offline_conflicts"]


#: Exact selectors are claimed per folder, or per dataset (a dataset manifest's titles and data hashes).
_DATASET = "\0dataset:"


def _anchor(m: FileManifest) -> str:
    return _DATASET + m.dataset if m.dataset is not None else m.folder.strip("/")


def offline_conflicts(manifests: Sequence[FileManifest], *, globs: bool = False) -> list[Diagnostic]:
    """Conflicts between exact (``name:``/``uuid:``) selectors of different manifests on the same file.

    With ``globs`` (``validate``), a ``glob:`` entry of another manifest on the same folder that matches an
    exact name counts as selecting that file too (a plan finds those on the live files instead).
    """
    claims: dict[tuple[str, SelectorKind, str], list[tuple[CompiledManifest, frozenset[str], SourceLocation]]]
    claims = {}
    compiled = [CompiledManifest(m) for m in manifests]
    for c in compiled:
        m = c.m
        for s in m.files:
            if s.kind is SelectorKind.GLOB:
                continue
            rel = s.pattern if globs and s.kind is SelectorKind.NAME else None
            given = frozenset(c.layer_located(rel, None, s))
            claims.setdefault((_anchor(m), s.kind, s.pattern), []).append((c, given, s.location))
    if globs:
        for (folder, kind, pattern), entries in claims.items():
            if kind is not SelectorKind.NAME:
                continue
            exact = {id(e[0]) for e in entries}
            for c in compiled:
                if id(c) in exact or _anchor(c.m) != folder:
                    continue
                for rx, s, _ in c.globs:
                    if rx.match(pattern):
                        entries.append((c, frozenset(c.layer_located(pattern)), s.location))
                        break
            entries.sort(key=lambda e: compiled.index(e[0]))
    errors: list[Diagnostic] = []
    for (folder, kind, pattern), entries in sorted(claims.items(), key=lambda kv: kv[0][0] + kv[0][2]):
        for i, (lc, lgiven, lloc) in enumerate(entries):
            for ec, egiven, eloc in entries[:i]:
                if ec.m is lc.m:
                    continue  # duplicates inside one manifest are reported on their own
                where = (
                    f"dataset {folder[len(_DATASET) :]!r}"
                    if folder.startswith(_DATASET)
                    else f"folder {folder!r}"
                )
                what = f"{kind.value} {pattern!r} in {where}"
                shared = conflict(ec, egiven, lc, lgiven, (), pattern_overlap=True)
                if shared is None:
                    ow, other = (ec, lc) if not ec.merge else (lc, ec)
                    errors.append(
                        Diagnostic(
                            lloc,
                            f"conflict: {what} is selected by overwrite manifest {ow.m.name} and by "
                            f"{other.m.name} (other selector at {eloc}); "
                            "an overwrite manifest must be the only one selecting a file",
                        )
                    )
                elif shared:
                    errors.append(
                        Diagnostic(
                            lloc,
                            f"conflict: manifests {ec.m.name} and {lc.m.name} both own "
                            f"{', '.join(repr(k) for k in shared)} on {what} (other selector at {eloc})",
                        )
                    )
    return errors
