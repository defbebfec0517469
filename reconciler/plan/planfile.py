"""Saved plan files: the plan JSON plus a checksum over the rest, read back with every check apply needs.

A saved plan carries the format version, the tool version, the provider identity (no secrets), the
manifests digest, each planned file's live fingerprint and ``before`` values, and ``checksum``.

A saved plan is untrusted input (SPEC §4 "Trust"). The checksum catches accidents (a truncated or hand-edited
file), not tampering: anyone can recompute it. With ``RECONCILER_PLAN_KEY`` set, ``plan --out`` adds
``signature`` (HMAC-SHA256 of the same bytes the checksum covers) and :func:`open_saved_plan` refuses a plan
without it or with a wrong one. Whatever the file says, apply re-derives its gates from the changes
(``apply.py``) and refuses a stale plan: one made for other manifests than those in ``-C``
(``manifests_digest``), or one already applied (a journal in the journal directory records its checksum).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import jsoncodec
from reconciler.errors import PlanFormatError, StalePlanError
from reconciler.fileio import write_file
from reconciler.jsonio import loads
from reconciler.model import DesiredState, Limits
from reconciler.plan.codec import plan_from_dict, plan_to_dict
from reconciler.plan.model import PLAN_FORMAT_VERSION, Plan

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.providers.base import StateProvider

__all__ = [
    "MAX_PLANFILE_BYTES",
    "PLAN_KEY_ENV",
    "SavedWorkspace",
    "open_saved_plan",
    "plan_key",
    "read_planfile",
    "write_planfile",
]

MAX_PLANFILE_BYTES = 2 * 1024**3
#: The environment variable holding the key that signs saved plans (optional).
PLAN_KEY_ENV = "RECONCILER_PLAN_KEY"
_SIGNED = ("checksum", "signature")


def _body(data: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in data.items() if k not in _SIGNED}
    return jsoncodec.checksum_text(body)


def _checksum(data: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(_body(data)).hexdigest()


def _signature(data: Mapping[str, Any], key: bytes) -> str:
    return "hmac-sha256:" + hmac.new(key, _body(data), hashlib.sha256).hexdigest()


def plan_key(env: Mapping[str, str]) -> bytes | None:
    """The plan-signing key from ``RECONCILER_PLAN_KEY`` (``None`` when unset or empty)."""
    value = env.get(PLAN_KEY_ENV, "")
    return value.encode() if value else None


def write_planfile(path: str | os.PathLike[str], plan: Plan, *, key: bytes | None = None) -> None:
    """Write the plan with its checksum, and its signature when ``key`` is given (``reconciler.fileio``: whole
    or not at all). Raises OutputError."""
    data = plan_to_dict(plan)
    data["checksum"] = _checksum(data)
    if key is not None:
        data["signature"] = _signature(data, key)
    write_file(path, jsoncodec.dumps_indented(data) + "\n", what="plan")


def read_planfile(path: str | os.PathLike[str]) -> Plan:
    """Read a saved plan, refusing an unreadable, altered or unknown-version file (PlanFormatError)."""
    return _read(Path(path))[0]


def _read(p: Path, key: bytes | None = None) -> tuple[Plan, str]:
    """The plan and its checksum; with ``key``, a plan whose signature is missing or wrong is refused."""
    try:
        size = p.stat().st_size
        if size > MAX_PLANFILE_BYTES:
            raise PlanFormatError(
                f"{p}: plan file is {size} bytes, more than the {MAX_PLANFILE_BYTES} allowed"
            )
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanFormatError(f"{p}: cannot read the plan file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PlanFormatError(f"{p}: not a plan file (not UTF-8 text)") from exc
    try:
        data = loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFormatError(
            f"{p}:{exc.lineno}:{exc.colno}: not a plan file: invalid JSON ({exc.msg})"
        ) from exc
    if not isinstance(data, dict):
        raise PlanFormatError(f"{p}: not a plan file (expected a JSON object)")
    version = data.get("format_version")
    if version != PLAN_FORMAT_VERSION:
        raise PlanFormatError(
            f"{p}: plan format_version {version!r} is not one this reconciler reads ({PLAN_FORMAT_VERSION!r}); "
            "make the plan again with this version"
        )
    checksum = data.get("checksum")
    if not isinstance(checksum, str):
        raise PlanFormatError(
            f"{p}: the plan has no checksum; only plans saved by `reconciler plan --out` apply"
        )
    if checksum != _checksum(data):
        raise PlanFormatError(
            f"{p}: the plan file was altered after it was saved (checksum mismatch); refusing it"
        )
    if key is not None:
        signature = data.get("signature")
        if not isinstance(signature, str):
            raise PlanFormatError(
                f"{p}: the plan is not signed, and {PLAN_KEY_ENV} is set: only plans saved by "
                f"`reconciler plan --out` with the same {PLAN_KEY_ENV} apply; refusing it"
            )
        if not hmac.compare_digest(signature, _signature(data, key)):
            raise PlanFormatError(
                f"{p}: the plan's signature does not match {PLAN_KEY_ENV} (altered, or signed with another "
                "key); refusing it"
            )
    return plan_from_dict(data, origin=str(p)), checksum


@dataclass(frozen=True)
class SavedWorkspace:
    """The Workspace settings apply uses with a saved plan (defaults when there are no manifests)."""

    journal_dir: Path
    parallelism: int
    limits: Limits = field(default_factory=Limits)
    checksum: str = ""  # the saved plan's (recorded in the journal, so a replay is recognised)
    desired: DesiredState | None = None  # the manifests in -C, when there are any


def open_saved_plan(
    path: Path, settings: Settings, provider_url: str | None
) -> tuple[Plan, StateProvider, SavedWorkspace]:
    """Read a saved plan and open the store the operator names (``--provider``, else the Workspace in
    ``-C``); a plan recording any other store is refused before anything is opened or sent.

    The Workspace's journal_dir, parallelism and limits are used; with ``--provider`` no manifest directory
    is needed. A missing database is an error, never created (nor seeded). When ``-C`` holds manifests, a
    plan made for other manifests is stale. A plan already applied (a journal in the journal directory
    records its checksum) is stale. With ``RECONCILER_PLAN_KEY`` set the plan must carry a valid signature.
    """
    from reconciler.config import recorded_target

    plan, checksum = _read(path, plan_key(settings.env))
    target = recorded_target(
        plan.provider,
        settings,
        provider_url,
        made=f"{path}: the plan was made against",
        rule="a plan applies only to the provider it was made against",
        error=PlanFormatError,
    )
    provider = target.open(settings.env, seed=False)  # the store must exist: never created nor seeded here
    journal_dir = target.resolve(target.settings.journal_dir)
    try:  # nothing has been sent yet
        desired = _current_manifests(settings, plan, path)
        applied = _applied_by(journal_dir, checksum)
        if applied is not None:
            raise StalePlanError(
                f"{path}: the plan is stale: it was already applied (journal {applied}); nothing was written. "
                "A saved plan applies once: run `reconciler plan` again.",
                ["applied"],
            )
    except BaseException:
        provider.close()
        raise
    return (
        plan,
        provider,
        SavedWorkspace(journal_dir, target.settings.parallelism, target.settings.limits, checksum, desired),
    )


def _current_manifests(settings: Settings, plan: Plan, path: Path) -> DesiredState | None:
    """The manifests in ``-C`` (``None`` when there is no such directory; ManifestError, as plan reports it,
    when they do not load); StalePlanError when the plan
    was made for other ones (``manifests_digest``, computed from the files' bytes before anything is parsed).
    The one place apply compares the digest."""
    from reconciler.manifest.loader import load_manifests
    from reconciler.manifest.workspace import manifests_digest

    if not settings.manifest_dir.is_dir():
        return None
    digest = manifests_digest(settings.manifest_dir)
    if digest != plan.manifests_digest:
        raise StalePlanError(
            f"{path}: the plan is stale: it was made for other manifests than those in {settings.manifest_dir} "
            f"(manifests_digest {plan.manifests_digest}, the manifests now: {digest}); nothing was written. "
            "Run `reconciler plan` again.",
            ["manifests"],
        )
    # Manifests that do not load (the same readable bytes, and a dangling link beside them, say) are the
    # error plan reports: apply checks the saved plan's keys against them, so it never goes on without them.
    return load_manifests(settings.manifest_dir)


def journal_plan_checksum(path: Path) -> str | None:
    """The saved plan checksum an apply journal's header records (``None``: none, or not a readable journal).

    Reads the first line only (a journal directory may hold thousands of large journals). The journal writer
    (``reconciler.journal``, a layer above) records it as ``plan_checksum`` in its header line.
    """
    try:
        with path.open("rb") as fh:
            first = fh.readline(1 << 16)
        rec = json.loads(first)
    except (OSError, ValueError):
        return None
    value = rec.get("plan_checksum") if isinstance(rec, dict) and rec.get("record") == "header" else None
    return value if isinstance(value, str) else None


def _applied_by(journal_dir: Path, checksum: str) -> Path | None:
    """The journal of an apply of the plan with ``checksum`` (its header records it), if there is one."""
    if not checksum or not journal_dir.is_dir():
        return None
    for p in sorted(journal_dir.glob("*.jsonl")):
        if journal_plan_checksum(p) == checksum:
            return p
    return None
