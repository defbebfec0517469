"""``plan --format json``: the plan's JSON form (``reconciler.plan.codec``) as text."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reconciler.plan.codec import plan_to_dict

if TYPE_CHECKING:
    from reconciler.apply import ApplyResult
    from reconciler.plan.model import Plan

__all__ = ["render_apply_result_json", "render_plan_json"]


def render_plan_json(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2, ensure_ascii=False) + "\n"


def render_apply_result_json(result: ApplyResult, journal: str | None) -> str:
    """The result document of ``apply --format json`` (and ``rollback``'s apply): counts per status, the
    journal's path, and every file that was stale or failed with its reason."""
    from reconciler.apply import FileStatus

    counts = {st: result.count(st) for st in FileStatus}
    doc = {
        "format_version": "1",
        "ok": bool(result.ok),
        "interrupted": bool(result.interrupted),
        "schema_written": bool(result.schema_written),
        "written": counts[FileStatus.WRITTEN],
        "unchanged": counts[FileStatus.UNCHANGED],
        "stale": counts[FileStatus.STALE],
        "failed": counts[FileStatus.FAILED],
        "not_attempted": counts[FileStatus.NOT_ATTEMPTED],
        "journal": journal,
        "files": [
            {
                "uuid": r.change.uuid,
                "folder": r.change.folder,
                "name": r.change.name,
                "status": r.status.value,
                "reason": r.reason,
            }
            for r in sorted(result.files, key=lambda r: (r.change.folder, r.change.name, r.change.uuid))
            if r.status in (FileStatus.STALE, FileStatus.FAILED)
        ],
    }
    return json.dumps(doc, indent=2) + "\n"
