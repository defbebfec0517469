"""The plan as JSON: the stable, versioned machine contract (``plan --format json`` and saved plan files).

``plan_to_dict`` and ``plan_from_dict`` are inverses; the saved-plan checksum is added by ``plan.planfile``.
Reading validates the document against typed models (:class:`PlanDoc` and the records under it) and
reports the first problem in one line naming the field: ``plan.json.files[3].uuid: wrong type int``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from pydantic import SkipValidation, TypeAdapter, ValidationError
from typing_extensions import NotRequired, TypedDict

from reconciler.errors import Diagnostic, PlanFormatError, SourceLocation
from reconciler.plan.model import (
    DatasetRef,
    FileChange,
    KeyAction,
    KeyChange,
    Plan,
    SchemaAction,
    SchemaChange,
    Strategy,
)
from reconciler.plan.shard import Shard
from reconciler.providers.registry import identity_from_json, identity_to_json
from reconciler.schema import Deletion, FieldSpec

if TYPE_CHECKING:
    from reconciler.types import JsonValue

__all__ = ["PlanDoc", "plan_from_dict", "plan_to_dict", "validation_message"]

#: A value the reader passes on as it is (metadata values, already JSON).
_Raw = SkipValidation[object]


class ProviderDoc(TypedDict):
    """``provider``: the store's type; the rest is the store's own (``providers.registry.identity_from_json``)."""

    type: str


class SchemaChangeDoc(TypedDict):
    key: str
    action: str
    before: NotRequired[dict[str, _Raw] | None]
    after: NotRequired[dict[str, _Raw] | None]
    destructive: bool
    reason: NotRequired[str | None]
    renamed_from: NotRequired[str | None]


class SchemaDoc(TypedDict):
    fingerprint: str
    changes: list[SchemaChangeDoc]


class KeyChangeDoc(TypedDict):
    key: str
    action: str
    before: NotRequired[_Raw]
    after: NotRequired[_Raw]


class DatasetDoc(TypedDict):
    """``dataset`` of a data unit's entry (SPEC §7b); files of folders have none."""

    hash: str
    title: str
    data_hash: str
    backing_item: NotRequired[str | None]


class FileChangeDoc(TypedDict):
    uuid: str
    folder: str
    name: str
    strategy: str
    manifest: str
    live_fingerprint: str
    changes: list[KeyChangeDoc]
    dataset: NotRequired[DatasetDoc | None]


class FileCountsDoc(TypedDict):
    unchanged: NotRequired[int | None]


class CallsDoc(TypedDict):
    reads: NotRequired[int | None]
    writes: NotRequired[int | None]
    data_row_writes: NotRequired[int | None]  # derived from the files; not read back


class SummaryDoc(TypedDict):
    files: FileCountsDoc
    api_calls: NotRequired[CallsDoc | None]


class ShardDoc(TypedDict):
    index: int
    count: int


class PlanDoc(TypedDict):
    """The plan JSON as the reader checks it (fields it does not read are ignored)."""

    provider: ProviderDoc
    schema: SchemaDoc
    files: list[FileChangeDoc]
    summary: SummaryDoc
    warnings: NotRequired[list[_Raw] | None]
    tool_version: str
    created_at: str
    manifests_digest: str
    format_version: str
    destructive_reasons: NotRequired[list[str] | None]
    shard: NotRequired[ShardDoc | None]


_PLAN_DOC: TypeAdapter[PlanDoc] = TypeAdapter(PlanDoc)


def validation_message(exc: ValidationError, origin: str) -> str:
    """The first problem pydantic found, as one line: ``origin.files[3]: missing field 'uuid'``."""
    err = exc.errors()[0]
    loc = err["loc"]

    def where(parts: tuple[int | str, ...]) -> str:
        return origin + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)

    if err["type"] == "missing" and loc:
        return f"{where(loc[:-1])}: missing field {loc[-1]!r}"
    if err["type"] == "dict_type" and loc and isinstance(loc[-1], int):
        return f"{where(loc)}: must be an object"
    return f"{where(loc)}: wrong type {type(err['input']).__name__}"


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


def _dataset_ref(d: DatasetRef) -> dict[str, Any]:
    return {"hash": d.hash, "title": d.title, "data_hash": d.data_hash, "backing_item": d.backing_item}


def _api_calls(plan: Plan) -> dict[str, int]:
    """Requests the plan made; ``data_row_writes`` (only when there are any): the legacy per-row calls apply
    will make, one per data unit without a backing item."""
    out = {"reads": plan.reads, "writes": plan.writes}
    if plan.data_row_writes:
        out["data_row_writes"] = plan.data_row_writes
    return out


def _file_change(f: FileChange) -> dict[str, Any]:
    out: dict[str, Any] = {
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
    if f.dataset is not None:
        out["dataset"] = _dataset_ref(f.dataset)
    return out


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan in the JSON shape of the product contract (without ``checksum``). A shard's plan also has
    ``shard: {"index": K, "count": N}``."""
    s = plan.schema_counts()
    f = plan.file_counts()
    out: dict[str, Any] = {
        "format_version": plan.format_version,
        "tool_version": plan.tool_version,
        "created_at": plan.created_at,
        "provider": identity_to_json(plan.provider),
        "manifests_digest": plan.manifests_digest,
        "schema": {
            "fingerprint": plan.schema_fingerprint,
            "changes": [_schema_change(c) for c in plan.schema_changes],
        },
        "files": [_file_change(x) for x in plan.files],
        "summary": {
            "schema": s,
            "files": f,
            "api_calls": _api_calls(plan),
            "destructive": plan.is_destructive,
        },
        "destructive_reasons": list(plan.destructive_reasons),
        "warnings": [{"location": str(w.location), "message": w.message} for w in plan.warnings],
    }
    if plan.shard is not None:
        out["shard"] = {"index": plan.shard.index, "count": plan.shard.count}
    return out


def _shard(doc: ShardDoc | None, origin: str) -> Shard | None:
    if doc is None:
        return None
    if not 1 <= doc["index"] <= doc["count"]:
        raise PlanFormatError(f"{origin}.shard: expected 1 <= index <= count")
    return Shard(doc["index"], doc["count"])


def _spec(data: Mapping[str, object] | None, where: str) -> FieldSpec | None:
    if data is None:
        return None
    values = data.get("values")
    if values is not None:
        if not isinstance(values, list):
            raise PlanFormatError(f"{where}.values: wrong type {type(values).__name__}")
        if not all(isinstance(v, str) for v in values):
            raise PlanFormatError(f"{where}.values: every enum value must be a string")
    size = data.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
        raise PlanFormatError(f"{where}.size: wrong type {type(size).__name__}")
    try:
        return FieldSpec.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PlanFormatError(f"{where}: invalid type description ({exc})") from exc


def _schema_changes(doc: SchemaDoc, origin: str) -> tuple[SchemaChange, ...]:
    out = []
    for i, c in enumerate(doc["changes"]):
        w = f"{origin}.schema.changes[{i}]"
        after = _spec(c.get("after"), f"{w}.after")
        if after is None or (after.type is None and after.deleted is not Deletion.HARD):
            # Every planned schema change says what the key becomes; only a hard delete forgets the type.
            raise PlanFormatError(f"{w}.after: missing the key's type")
        out.append(
            SchemaChange(
                key=c["key"],
                action=SchemaAction(c["action"]),
                before=_spec(c.get("before"), f"{w}.before"),
                after=after,
                destructive=c["destructive"],
                reason=c.get("reason") or "",
                renamed_from=c.get("renamed_from"),
            )
        )
    return tuple(out)


def _dataset(fc: FileChangeDoc, where: str) -> DatasetRef | None:
    raw = fc.get("dataset")
    if raw is None:
        return None
    ref = DatasetRef(raw["hash"], raw["title"], raw["data_hash"], raw.get("backing_item"))
    if fc["uuid"] != (ref.backing_item or ref.data_hash):
        raise PlanFormatError(
            f"{where}.dataset: uuid must be the row's backing_item, or its data_hash when it has none"
        )
    return ref


def _file_changes(docs: list[FileChangeDoc], origin: str) -> tuple[FileChange, ...]:
    return tuple(
        FileChange(
            uuid=fc["uuid"],
            folder=fc["folder"],
            name=fc["name"],
            strategy=Strategy(fc["strategy"]),
            manifest=fc["manifest"],
            live_fingerprint=fc["live_fingerprint"],
            changes=tuple(
                KeyChange(
                    kc["key"],
                    KeyAction(kc["action"]),
                    cast("JsonValue", kc.get("before")),
                    cast("JsonValue", kc.get("after")),
                )
                for kc in fc["changes"]
            ),
            dataset=_dataset(fc, f"{origin}.files[{i}]"),
        )
        for i, fc in enumerate(docs)
    )


def _warnings(raw: list[object]) -> tuple[Diagnostic, ...]:
    return tuple(
        Diagnostic(SourceLocation(str(w.get("location", ""))), str(w.get("message", "")), "warning")
        for w in raw
        if isinstance(w, dict)
    )


def plan_from_dict(data: object, *, origin: str = "plan") -> Plan:
    """Rebuild a Plan from its JSON form. Raises PlanFormatError naming the bad field (``origin.files[3].uuid``)."""
    try:
        doc = _PLAN_DOC.validate_python(data, strict=True)
    except ValidationError as exc:
        raise PlanFormatError(validation_message(exc, origin)) from None
    try:
        # The validated record keeps only ``type``; the store reads its own fields from the document.
        identity = identity_from_json(cast("dict[str, Any]", data)["provider"])
    except ValueError as exc:
        raise PlanFormatError(f"{origin}.provider: {exc}") from exc
    summary = doc["summary"]
    calls = summary.get("api_calls") or {}
    try:
        return Plan(
            tool_version=doc["tool_version"],
            created_at=doc["created_at"],
            provider=identity,
            manifests_digest=doc["manifests_digest"],
            schema_fingerprint=doc["schema"]["fingerprint"],
            schema_changes=_schema_changes(doc["schema"], origin),
            files=_file_changes(doc["files"], origin),
            unchanged=summary["files"].get("unchanged") or 0,
            reads=calls.get("reads") or 0,
            writes=calls.get("writes") or 0,
            warnings=_warnings(doc.get("warnings") or []),
            format_version=doc["format_version"],
            destructive_reasons=tuple(doc.get("destructive_reasons") or ()),
            shard=_shard(doc.get("shard"), origin),
        )
    except ValueError as exc:  # an unknown enum value
        raise PlanFormatError(f"{origin}: {exc}") from exc
