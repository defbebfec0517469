"""The plan as JSON: the stable, versioned machine contract (``plan --format json`` and saved plan files).

``plan_to_dict`` and ``plan_from_dict`` are inverses; the saved-plan checksum is added by ``plan.planfile``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.errors import Diagnostic, PlanFormatError, SourceLocation
from reconciler.plan.model import (
    FileChange,
    KeyAction,
    KeyChange,
    Plan,
    SchemaAction,
    SchemaChange,
    Strategy,
)
from reconciler.providers.registry import identity_from_json
from reconciler.schema import Deletion, FieldSpec

__all__ = ["plan_from_dict", "plan_to_dict", "render_plan_json"]


def _schema_change(c: SchemaChange) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": c.key,
        "action": c.action.value,
        "before": c.before.to_json() if c.before else None,
        "after": c.after.to_json() if c.after else None,
        "destructive": c.destructive,
        "reason": c.reason,
    }
    if c.renamed_from:
        out["renamed_from"] = c.renamed_from
    return out


def _file_change(f: FileChange) -> dict[str, Any]:
    return {
        "uuid": f.uuid,
        "folder": f.folder,
        "name": f.name,
        "strategy": f.strategy.value,
        "manifest": f.manifest,
        "live_fingerprint": f.live_fingerprint,
        "changes": [
            {"key": k.key, "action": k.action.value, "before": k.before, "after": k.after} for k in f.changes
        ],
    }


def _location(loc: SourceLocation) -> str:
    return str(loc)


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan in the JSON shape of the product contract (without ``checksum``)."""
    s = plan.schema_counts()
    f = plan.file_counts()
    return {
        "format_version": plan.format_version,
        "tool_version": plan.tool_version,
        "created_at": plan.created_at,
        "provider": plan.provider.to_json(),
        "manifests_digest": plan.manifests_digest,
        "schema": {
            "fingerprint": plan.schema_fingerprint,
            "changes": [_schema_change(c) for c in plan.schema_changes],
        },
        "files": [_file_change(x) for x in plan.files],
        "summary": {
            "schema": s,
            "files": f,
            "api_calls": {"reads": plan.reads, "writes": plan.writes},
            "destructive": plan.is_destructive,
        },
        "destructive_reasons": list(plan.destructive_reasons),
        "warnings": [{"location": _location(w.location), "message": w.message} for w in plan.warnings],
    }


def render_plan_json(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2, ensure_ascii=False) + "\n"


def _req(obj: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in obj:
        raise PlanFormatError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise PlanFormatError(f"{where}.{key}: wrong type {type(value).__name__}")
    return value


def _opt(obj: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...], default: Any) -> Any:
    """An optional field: ``default`` when absent or null, else it must be of ``kind`` (bools are not ints)."""
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise PlanFormatError(f"{where}.{key}: wrong type {type(value).__name__}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _spec(data: Any, where: str) -> FieldSpec | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PlanFormatError(f"{where}: wrong type {type(data).__name__}")
    values = _opt(data, "values", where, list, [])
    if not all(isinstance(v, str) for v in values):
        raise PlanFormatError(f"{where}.values: every enum value must be a string")
    _opt(data, "size", where, int, None)
    try:
        return FieldSpec.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PlanFormatError(f"{where}: invalid type description ({exc})") from exc


def plan_from_dict(data: Mapping[str, Any], *, origin: str = "plan") -> Plan:
    """Rebuild a Plan from its JSON form. Raises PlanFormatError naming the bad field (``origin.files[3].uuid``)."""
    try:
        provider = _req(data, "provider", origin, dict)
        _req(provider, "type", f"{origin}.provider", str)
        try:
            identity = identity_from_json(provider)
        except ValueError as exc:
            raise PlanFormatError(f"{origin}.provider: {exc}") from exc
        schema = _req(data, "schema", origin, dict)
        schema_changes = []
        for i, c in enumerate(_req(schema, "changes", f"{origin}.schema", list)):
            w = f"{origin}.schema.changes[{i}]"
            if not isinstance(c, dict):
                raise PlanFormatError(f"{w}: must be an object")
            after = _spec(c.get("after"), f"{w}.after")
            if after is None or (after.type is None and after.deleted is not Deletion.HARD):
                # Every planned schema change says what the key becomes; only a hard delete forgets the type.
                raise PlanFormatError(f"{w}.after: missing the key's type")
            schema_changes.append(
                SchemaChange(
                    key=_req(c, "key", w, str),
                    action=SchemaAction(_req(c, "action", w, str)),
                    before=_spec(c.get("before"), f"{w}.before"),
                    after=after,
                    destructive=_req(c, "destructive", w, bool),
                    reason=str(c.get("reason", "")),
                    renamed_from=_opt(c, "renamed_from", w, str, None),
                )
            )
        files = []
        for i, fc in enumerate(_req(data, "files", origin, list)):
            w = f"{origin}.files[{i}]"
            if not isinstance(fc, dict):
                raise PlanFormatError(f"{w}: must be an object")
            changes = []
            for j, kc in enumerate(_req(fc, "changes", w, list)):
                wk = f"{w}.changes[{j}]"
                if not isinstance(kc, dict):
                    raise PlanFormatError(f"{wk}: must be an object")
                changes.append(
                    KeyChange(
                        _req(kc, "key", wk, str),
                        KeyAction(_req(kc, "action", wk, str)),
                        kc.get("before"),
                        kc.get("after"),
                    )
                )
            files.append(
                FileChange(
                    uuid=_req(fc, "uuid", w, str),
                    folder=_req(fc, "folder", w, str),
                    name=_req(fc, "name", w, str),
                    strategy=Strategy(_req(fc, "strategy", w, str)),
                    manifest=_req(fc, "manifest", w, str),
                    live_fingerprint=_req(fc, "live_fingerprint", w, str),
                    changes=tuple(changes),
                )
            )
        summary = _req(data, "summary", origin, dict)
        calls = _opt(summary, "api_calls", f"{origin}.summary", dict, {})
        fsum = _req(summary, "files", f"{origin}.summary", dict)
        warnings = tuple(
            Diagnostic(SourceLocation(str(w.get("location", ""))), str(w.get("message", "")), "warning")
            for w in _opt(data, "warnings", origin, list, [])
            if isinstance(w, dict)
        )
        return Plan(
            tool_version=_req(data, "tool_version", origin, str),
            created_at=_req(data, "created_at", origin, str),
            provider=identity,
            manifests_digest=_req(data, "manifests_digest", origin, str),
            schema_fingerprint=_req(schema, "fingerprint", f"{origin}.schema", str),
            schema_changes=tuple(schema_changes),
            files=tuple(files),
            unchanged=_opt(fsum, "unchanged", f"{origin}.summary.files", int, 0),
            reads=_opt(calls, "reads", f"{origin}.summary.api_calls", int, 0),
            writes=_opt(calls, "writes", f"{origin}.summary.api_calls", int, 0),
            warnings=warnings,
            format_version=_req(data, "format_version", origin, str),
            destructive_reasons=tuple(str(r) for r in _opt(data, "destructive_reasons", origin, list, [])),
        )
    except ValueError as exc:  # an unknown enum value
        raise PlanFormatError(f"{origin}: {exc}") from exc


def render_apply_result_json(result: Any, journal: str | None) -> str:
    """The result document of ``apply --format json`` (and ``rollback``'s apply): counts per status, the
    journal's path, and every file that was stale or failed with its reason. ``result`` is an ApplyResult."""
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
