"""Blast-radius limits (Workspace ``settings.limits``): how much one plan may change. Pure.

* ``max_files``: files one plan may update. Unset: no limit.
* ``max_removed_keys``: key values one plan may remove, over all files. Unset: no limit.
* ``max_removed_share``: a manifest that would remove an owned key from more than this share of the files
  it selects (and it selects at least :data:`SHARE_MIN_SELECTED`) makes the plan destructive, so apply
  needs ``--allow-destructive``. This catches the emptied manifest, the truncated source file and the
  too-wide glob. Unset: :data:`DEFAULT_MAX_REMOVED_SHARE`; ``1`` turns the guard off.

Exceeding ``max_files`` or ``max_removed_keys`` fails the plan (``LimitExceededError``) unless the user
passes ``--override-limits``. Values moved by a key rename (``renamed_from``) are moves, not removals, and
count towards neither removal limit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from reconciler.errors import LimitExceededError
from reconciler.plan.model import KeyAction
from reconciler.plan.semantics import compiled

if TYPE_CHECKING:
    from reconciler.model import Assignment, FileManifest, Limits
    from reconciler.plan.model import FileChange

__all__ = [
    "DEFAULT_MAX_REMOVED_SHARE",
    "OVERRIDE_FLAG",
    "SHARE_MIN_SELECTED",
    "Claim",
    "LimitReport",
    "check_limits",
    "claim_owns",
    "limit_error",
    "removed_share_reason",
]

#: ``max_removed_share`` when the Workspace does not set it.
DEFAULT_MAX_REMOVED_SHARE = 0.5
#: The share guard looks only at manifests that select at least this many files (a 3-file manifest
#: losing a key on 2 files is ordinary editing, not an accident).
SHARE_MIN_SELECTED = 10
#: The CLI flag that lets a plan exceed ``max_files`` / ``max_removed_keys``.
OVERRIDE_FLAG = "--override-limits"
_KEYS_SHOWN = 10


class Claim(Protocol):
    """One manifest's claim on one file: the manifest and the values it gives that file."""

    @property
    def manifest(self) -> FileManifest: ...

    @property
    def given(self) -> Mapping[str, Assignment]: ...


@dataclass(frozen=True)
class LimitReport:
    """What the limits say about a plan.

    ``violations``: one sentence per exceeded hard limit (the plan fails unless overridden).
    ``destructive_reasons``: one sentence per manifest over ``max_removed_share`` (apply needs
    ``--allow-destructive``).
    """

    violations: tuple[str, ...] = ()
    destructive_reasons: tuple[str, ...] = ()


def claim_owns(claim: Claim, key: str) -> bool:
    """Whether the claim's manifest manages ``key`` on its file (:meth:`CompiledManifest.owns`)."""
    return compiled(claim.manifest).owns(key, claim.given)


def check_limits(
    files: Sequence[FileChange],
    claims: Mapping[str, Sequence[Claim]],
    limits: Limits,
    *,
    moved_keys: Collection[str] = (),
    shards: int = 1,
    also_selected: Mapping[str, int] | None = None,
) -> LimitReport:
    """Check a plan's file changes against the limits.

    A shard's plan (one of ``shards``) is held to its share of ``max_files`` and ``max_removed_keys``: when
    the whole plan exceeds a limit, at least one shard exceeds its share, so a plan-every-shard-then-apply
    workflow refuses it (a shard may also refuse a plan whose shards are uneven: ``--override-limits``).

    ``claims`` maps every selected file's uuid to the manifests that select it (unchanged files too: they
    are the denominator of the share), or are counted per manifest name in ``also_selected``. ``moved_keys``
    are keys whose removal is a rename's move.
    """
    removals = 0
    selected: Counter[str] = Counter()
    removed: dict[str, Counter[str]] = {}
    if also_selected:
        selected.update(also_selected)
    for file_claims in claims.values():
        for c in file_claims:
            selected[c.manifest.name] += 1
    for f in files:
        file_claims = claims.get(f.uuid, ())
        for kc in f.changes:
            if kc.action is not KeyAction.REMOVE or kc.key in moved_keys:
                continue
            removals += 1
            for c in file_claims:
                if claim_owns(c, kc.key):
                    removed.setdefault(c.manifest.name, Counter())[kc.key] += 1

    violations: list[str] = []
    share = "" if shards == 1 else f"this shard's share (1/{shards}) of "
    if limits.max_files is not None and len(files) * shards > limits.max_files:
        violations.append(
            f"the plan updates {len(files):,} files, more than {share}"
            f"settings.limits.max_files = {limits.max_files:,}"
        )
    if limits.max_removed_keys is not None and removals * shards > limits.max_removed_keys:
        violations.append(
            f"the plan removes {removals:,} key values, more than {share}"
            f"settings.limits.max_removed_keys = {limits.max_removed_keys:,}"
        )

    reasons: list[str] = []
    for name in sorted(removed):
        reason = removed_share_reason(
            f"{name} removes owned keys",
            "files it selects",
            removed[name],
            selected[name],
            limits,
            hint=" (an emptied manifest or source, or a glob that selects too much?)",
        )
        if reason:
            reasons.append(reason)
    return LimitReport(tuple(violations), tuple(reasons))


def removed_share_reason(
    subject: str, population: str, removed: Mapping[str, int], total: int, limits: Limits, *, hint: str = ""
) -> str | None:
    """The ``max_removed_share`` sentence when some key is removed from more than the share of ``total``
    files (and ``total`` is at least :data:`SHARE_MIN_SELECTED`); ``None`` otherwise."""
    share = limits.max_removed_share if limits.max_removed_share is not None else DEFAULT_MAX_REMOVED_SHARE
    if total < SHARE_MIN_SELECTED:
        return None
    over = sorted(((k, n) for k, n in removed.items() if n > share * total), key=lambda kn: (-kn[1], kn[0]))
    if not over:
        return None
    shown = ", ".join(f"{k} from {n:,}" for k, n in over[:_KEYS_SHOWN])
    more = f", and {len(over) - _KEYS_SHOWN} more key(s)" if len(over) > _KEYS_SHOWN else ""
    return (
        f"{subject} from more than settings.limits.max_removed_share = {share:g} of the {total:,} "
        f"{population}: {shown}{more}{hint}"
    )


def limit_error(report: LimitReport) -> LimitExceededError:
    """The error a plan over a hard limit fails with: the limits, the counts and the override flag."""
    return LimitExceededError(
        "blast-radius limit exceeded: "
        + "; ".join(report.violations)
        + f". Nothing was written. Check the manifests, or re-run with {OVERRIDE_FLAG} if this is intended."
    )
