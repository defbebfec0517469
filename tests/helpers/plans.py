"""Plan objects built directly (for renderer tests, without a provider or manifests)."""

from __future__ import annotations

from reconciler.errors import Diagnostic, SourceLocation
from reconciler.plan.model import FileChange, KeyAction, KeyChange, Plan, SchemaAction, SchemaChange, Strategy
from reconciler.providers.base import ProviderIdentity
from reconciler.schema import Deletion, FieldSpec, KeyType

FP = "sha256:" + "0" * 64


def add(key: str, value) -> KeyChange:
    return KeyChange(key, KeyAction.ADD, None, value)


def update(key: str, before, after) -> KeyChange:
    return KeyChange(key, KeyAction.UPDATE, before, after)


def remove(key: str, before) -> KeyChange:
    return KeyChange(key, KeyAction.REMOVE, before, None)


def file_change(
    folder: str, name: str, *changes: KeyChange, strategy: str = "merge", n: int = 0
) -> FileChange:
    return FileChange(
        uuid=f"00000000-0000-4000-8000-{n:012d}",
        folder=folder,
        name=name,
        strategy=Strategy(strategy),
        manifest="files/m.yaml",
        live_fingerprint=FP,
        changes=tuple(changes),
    )


def plan_of(
    *files: FileChange,
    schema: tuple[SchemaChange, ...] = (),
    unchanged: int = 0,
    warnings: tuple[Diagnostic, ...] = (),
    destructive_reasons: tuple[str, ...] = (),
) -> Plan:
    return Plan(
        tool_version="0.1.0",
        created_at="2024-05-01T10:00:00Z",
        provider=ProviderIdentity("sqlite", "/data/live.db"),
        manifests_digest="sha256:m",
        schema_fingerprint="sha256:s",
        schema_changes=schema,
        files=tuple(sorted(files, key=lambda f: (f.folder, f.name, f.uuid))),
        unchanged=unchanged,
        warnings=warnings,
        destructive_reasons=destructive_reasons,
    )


def demo_schema_changes() -> tuple[SchemaChange, ...]:
    """The three schema changes of SPEC §4's example: an add, an enum value added, a soft delete."""
    weather = FieldSpec(KeyType.ENUM, values=("rain", "snow", "sunny"))
    note = FieldSpec(KeyType.VARCHAR)
    return (
        SchemaChange(
            "capture.time", SchemaAction.CREATE, None, FieldSpec(KeyType.DATETIME), False, "new key"
        ),
        SchemaChange(
            "capture.weather",
            SchemaAction.UPDATE,
            weather,
            FieldSpec(KeyType.ENUM, values=("fog", "rain", "snow", "sunny")),
            False,
            "adds enum values fog",
        ),
        SchemaChange(
            "legacy.note",
            SchemaAction.DELETE,
            note,
            FieldSpec(KeyType.VARCHAR, deleted=Deletion.SOFT),
            True,
            "soft delete (restorable)",
        ),
    )


def big_plan(n_files: int, *, folders: int = 20) -> Plan:
    """``n_files`` changed files over ``folders`` folders: one shared change each plus one unique change."""
    out = []
    for i in range(n_files):
        out.append(
            file_change(
                f"datasets/batch-{i % folders:03d}",
                f"img-{i:07d}.jpg",
                add("ml.split", "train"),
                update("ml.score", i / 1000, (i + 1) / 1000),
                strategy="merge" if i % 7 else "overwrite",
                n=i,
            )
        )
    return plan_of(*out)


def warning(message: str) -> Diagnostic:
    return Diagnostic(SourceLocation("schema.yaml", 4, 3), message, "warning")
