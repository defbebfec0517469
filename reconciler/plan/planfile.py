"""Saved plan files: the plan JSON plus a checksum over the rest, read back with every check apply needs.

A saved plan carries the format version, the tool version, the provider identity (no secrets), the
manifests digest, each planned file's live fingerprint and ``before`` values, and ``checksum``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import jsoncodec
from reconciler.errors import PlanFormatError
from reconciler.fileio import write_file
from reconciler.jsonio import loads
from reconciler.plan.codec import plan_from_dict, plan_to_dict
from reconciler.plan.model import PLAN_FORMAT_VERSION, Plan

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.providers.base import StateProvider

__all__ = ["MAX_PLANFILE_BYTES", "SavedWorkspace", "open_saved_plan", "read_planfile", "write_planfile"]

MAX_PLANFILE_BYTES = 2 * 1024**3


def _checksum(data: Mapping[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "checksum"}
    return "sha256:" + hashlib.sha256(jsoncodec.checksum_text(body)).hexdigest()


def write_planfile(path: str | os.PathLike[str], plan: Plan) -> None:
    """Write the plan with its checksum (``reconciler.fileio``: whole or not at all). Raises OutputError."""
    data = plan_to_dict(plan)
    data["checksum"] = _checksum(data)
    write_file(path, jsoncodec.dumps_indented(data) + "\n", what="plan")


def read_planfile(path: str | os.PathLike[str]) -> Plan:
    """Read a saved plan, refusing an unreadable, altered or unknown-version file (PlanFormatError)."""
    p = Path(path)
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
    return plan_from_dict(data, origin=str(p))


@dataclass(frozen=True)
class SavedWorkspace:
    """The Workspace settings apply uses with a saved plan (defaults when there are no manifests)."""

    journal_dir: Path
    parallelism: int


def open_saved_plan(
    path: Path, settings: Settings, provider_url: str | None
) -> tuple[Plan, StateProvider, SavedWorkspace]:
    """Read a saved plan and open the store the operator names (``--provider``, else the Workspace in
    ``-C``); a plan recording any other store is refused before anything is opened or sent.

    Only the Workspace document is read (its journal_dir and parallelism are used); with ``--provider`` no
    manifest directory is needed. A missing database is an error, never created (nor seeded).
    """
    from reconciler.config import recorded_target

    plan = read_planfile(path)
    target = recorded_target(
        plan.provider,
        settings,
        provider_url,
        made=f"{path}: the plan was made against",
        rule="a plan applies only to the provider it was made against",
        error=PlanFormatError,
    )
    provider = target.open(settings.env, seed=False)
    journal_dir = target.resolve(target.settings.journal_dir)
    parallelism = target.settings.parallelism
    return plan, provider, SavedWorkspace(journal_dir, parallelism)
