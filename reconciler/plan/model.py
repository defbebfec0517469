"""The plan: schema changes and per-file key changes, with the actions they carry.

``Change.before`` / ``Change.after`` by action (for ``KeyChange``; ``SchemaChange`` is alike with FieldSpecs):

=========  ===================  ===================
action     before               after
=========  ===================  ===================
add        ``None`` (absent)    the new value
update     the live value       the new value
remove     the live value       ``None`` (absent)
=========  ===================  ===================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reconciler.errors import Diagnostic
from reconciler.plan.shard import Shard
from reconciler.providers.base import ProviderIdentity
from reconciler.schema import FieldSpec

if TYPE_CHECKING:
    from reconciler.types import JsonValue

__all__ = [
    "PLAN_FORMAT_VERSION",
    "DatasetRef",
    "FieldChange",
    "FileChange",
    "KeyAction",
    "KeyChange",
    "Plan",
    "SchemaAction",
    "SchemaChange",
    "Strategy",
]

PLAN_FORMAT_VERSION = "1"


class KeyAction(str, enum.Enum):
    """What happens to one metadata key of one file."""

    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"

    @property
    def symbol(self) -> str:
        return {"add": "+", "update": "~", "remove": "-"}[self.value]


class SchemaAction(str, enum.Enum):
    """What happens to one schema key."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RESTORE = "restore"
    RENAME = "rename"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "delete": "-", "restore": "+", "rename": "~"}[self.value]


class Strategy(str, enum.Enum):
    """How a file's dict is written: only the owned keys (``merge``) or the whole dict (``overwrite``)."""

    MERGE = "merge"
    OVERWRITE = "overwrite"


@dataclass(frozen=True)
class FieldChange:
    """A change inside a nested value (a list element, a dict entry), for display only.

    ``path`` reads like ``[2]`` or ``["latitude"]``. Apply never reads it: it writes whole values.
    """

    path: str
    before: JsonValue
    after: JsonValue


@dataclass(frozen=True)
class KeyChange:
    """One key of one file (see the module docstring for ``before``/``after``)."""

    key: str
    action: KeyAction
    before: JsonValue
    after: JsonValue
    field_changes: tuple[FieldChange, ...] = ()  # display only


@dataclass(frozen=True)
class DatasetRef:
    """The dataset a planned file was selected through (a data unit of Encord's legacy datasets, SPEC §7b).

    ``backing_item`` is the storage item whose metadata the row's is (the ``FileChange.uuid``; written in
    bulk through the storage API); ``None`` for a row without one, whose ``FileChange.uuid`` is then its
    ``data_hash``, written with the legacy per-row call.
    """

    hash: str
    title: str
    data_hash: str
    backing_item: str | None

    @property
    def is_data_row_write(self) -> bool:
        """Whether the row is written with the legacy per-row call (it has no backing item)."""
        return self.backing_item is None


@dataclass(frozen=True)
class FileChange:
    """The planned write of one file: its key changes and the live fingerprint they were computed from.

    For a data unit of a dataset (``dataset`` set), ``folder`` is the dataset's title and ``name`` the
    unit's title, so messages and journals name it as ``<dataset title>/<title>``.
    """

    uuid: str
    folder: str
    name: str
    strategy: Strategy
    manifest: str
    live_fingerprint: str
    changes: tuple[KeyChange, ...]
    dataset: DatasetRef | None = None

    @property
    def group(self) -> str:
        """The heading plans list it under: ``Folder <path>`` or ``Dataset <title>``."""
        return f"Dataset {self.folder}" if self.dataset is not None else f"Folder {self.folder}"

    @property
    def address(self) -> str:
        return f"{self.folder}/{self.name}"


@dataclass(frozen=True)
class SchemaChange:
    """One schema key's change. ``reason`` explains the classification to the user; apply never reads it."""

    key: str
    action: SchemaAction
    before: FieldSpec | None
    after: FieldSpec | None
    destructive: bool
    reason: str = ""  # display only
    renamed_from: str | None = None


@dataclass(frozen=True)
class Plan:
    """A complete plan: what apply will do, and what it was computed from."""

    tool_version: str
    created_at: str
    provider: ProviderIdentity
    manifests_digest: str
    schema_fingerprint: str
    schema_changes: tuple[SchemaChange, ...]
    files: tuple[FileChange, ...]
    unchanged: int
    reads: int = 0
    writes: int = 0
    warnings: tuple[Diagnostic, ...] = ()
    format_version: str = PLAN_FORMAT_VERSION
    # Blast-radius findings that make the plan destructive beyond schema changes (display + guard).
    destructive_reasons: tuple[str, ...] = field(default=())
    #: ``plan --shard K/N``: this plan is shard K of N (``None``: the whole organisation).
    shard: Shard | None = None

    @property
    def has_changes(self) -> bool:
        return bool(self.schema_changes or self.files)

    @property
    def is_destructive(self) -> bool:
        return any(c.destructive for c in self.schema_changes) or bool(self.destructive_reasons)

    def schema_counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "delete": 0}
        for c in self.schema_changes:
            bucket = {"create": "create", "restore": "create", "update": "update", "rename": "update"}.get(
                c.action.value, "delete"
            )
            counts[bucket] += 1
        return counts

    @property
    def data_row_writes(self) -> int:
        """Files that apply writes with the legacy per-row call (one request each): rows without a backing item."""
        return sum(1 for f in self.files if f.dataset is not None and f.dataset.is_data_row_write)

    def file_counts(self) -> dict[str, int]:
        merge = sum(1 for f in self.files if f.strategy is Strategy.MERGE)
        return {
            "update": len(self.files),
            "merge": merge,
            "overwrite": len(self.files) - merge,
            "unchanged": self.unchanged,
        }
