"""The metadata schema: key types, field specs, Encord's key rules, and translation to and from the wire shape.

The wire shape is the one the Encord SDK writes (``{"ty": "variant", "hint": "number"}``, sorted enum values,
``{"ty": "tombstone", "deleted_ty": ...}``); see the README's "Schema" section.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "EMBEDDING_ACTIVE_LIMIT",
    "EMBEDDING_MAX",
    "ENUM_MAX_VALUES",
    "SCALAR_TYPES",
    "VARCHAR_MAX",
    "Deletion",
    "FieldSpec",
    "KeyType",
    "SchemaSpec",
    "WireSchema",
    "WireType",
    "check_key_name",
    "parse_wire_schema",
    "schema_fingerprint",
    "spec_from_wire",
    "spec_to_wire",
    "wire_schema_from_specs",
]

#: One type object of the wire schema (``{"ty": ...}``), exactly as JSON.
WireType: TypeAlias = dict[str, Any]
#: The organisation's whole schema on the wire: key -> type object, in server order.
WireSchema: TypeAlias = dict[str, WireType]

VARCHAR_MAX = 8192
ENUM_MAX_VALUES = 255
EMBEDDING_MAX = 4096
EMBEDDING_ACTIVE_LIMIT = 2000


class KeyType(str, enum.Enum):
    """The type of a metadata key, as users write it in manifests."""

    BOOLEAN = "boolean"
    NUMBER = "number"
    DATETIME = "datetime"
    UUID = "uuid"
    VARCHAR = "varchar"
    TEXT = "text"
    ENUM = "enum"
    EMBEDDING = "embedding"
    GEOSPATIAL = "geospatial"
    USER = "user"  # readable from Encord, not declarable in manifests

    @property
    def is_scalar(self) -> bool:
        return self in SCALAR_TYPES


#: Types Encord stores as ``{"ty": "variant", "hint": ...}``.
SCALAR_TYPES = frozenset(
    {KeyType.BOOLEAN, KeyType.NUMBER, KeyType.DATETIME, KeyType.UUID, KeyType.VARCHAR, KeyType.TEXT}
)

#: Deprecated spellings accepted on input.
TYPE_ALIASES = {"string": KeyType.VARCHAR, "long_string": KeyType.TEXT}


class Deletion(str, enum.Enum):
    """How a key is deleted: ``soft`` keeps a restorable tombstone, ``hard`` does not."""

    SOFT = "soft"
    HARD = "hard"


@dataclass(frozen=True)
class FieldSpec:
    """One schema key's type.

    ``type`` is ``None`` only for a hard-deleted key read from live state (Encord forgets its type).
    ``wire`` keeps the exact live type object it was read from so that unchanged keys are written back
    byte for byte (e.g. an embedding's ``api`` block); it never takes part in comparisons.
    """

    type: KeyType | None
    values: tuple[str, ...] = ()
    size: int | None = None
    deleted: Deletion | None = None
    wire: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def is_live(self) -> bool:
        return self.deleted is None

    def same_type(self, other: FieldSpec) -> bool:
        """Whether the two describe the same type (ignoring deletion state)."""
        return (
            self.type == other.type
            and sorted(self.values) == sorted(other.values)
            and self.size == other.size
        )

    def alive(self) -> FieldSpec:
        return FieldSpec(self.type, self.values, self.size, None)

    def describe(self) -> str:
        """Short human form: ``enum[rain, snow]``, ``embedding(512)``, ``datetime``."""
        if self.type is None:
            base = "unknown"
        elif self.type is KeyType.ENUM:
            base = "enum[" + ", ".join(sorted(self.values)) + "]"
        elif self.type is KeyType.EMBEDDING:
            base = f"embedding({self.size})"
        else:
            base = self.type.value
        if self.deleted is Deletion.HARD:
            return "hard-deleted"
        if self.deleted is Deletion.SOFT:
            return f"soft-deleted {base}"
        return base

    def to_json(self) -> dict[str, Any]:
        """The plan-file form: ``{"type": "enum", "values": [...]}`` (+ ``"deleted"``)."""
        out: dict[str, Any] = {"type": self.type.value if self.type else None}
        if self.type is KeyType.ENUM:
            out["values"] = sorted(self.values)
        if self.type is KeyType.EMBEDDING:
            out["size"] = self.size
        if self.deleted is not None:
            out["deleted"] = self.deleted.value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FieldSpec:
        """Inverse of :meth:`to_json`. Raises ``ValueError`` or ``KeyError`` on a bad shape."""
        t = data.get("type")
        deleted = data.get("deleted")
        return cls(
            type=KeyType(t) if t is not None else None,
            values=tuple(data.get("values") or ()),
            size=data.get("size"),
            deleted=Deletion(deleted) if deleted is not None else None,
        )


@dataclass(frozen=True)
class SchemaSpec:
    """A whole schema: key -> FieldSpec, in order."""

    keys: Mapping[str, FieldSpec]

    def live_keys(self) -> dict[str, FieldSpec]:
        return {k: v for k, v in self.keys.items() if v.is_live}


def check_key_name(key: str) -> str | None:
    """Encord's key rule (not empty, no leading ``$``, letters/digits/``-_.`` and spaces, not ``keyframes`` or
    ``config``, the reserved keys of :mod:`reconciler.reserved`).

    Returns an error message, or ``None`` when the name is valid.
    """
    if not key:
        return "metadata key must not be empty"
    if key.startswith("$"):
        return f"invalid metadata key {key!r}: must not start with '$'"
    stripped = key
    for ch in "-_ .":
        stripped = stripped.replace(ch, "")
    if not stripped:
        return f"invalid metadata key {key!r}: needs at least one letter or digit"
    if stripped.lower() == "keyframes":
        return f"invalid metadata key {key!r}: 'keyframes' is reserved"
    if key == "config":
        return "invalid metadata key 'config': 'config' is reserved (a video's sampling config)"
    if not stripped.isalnum():
        return f"invalid metadata key {key!r}: only letters, digits, '-', '_', '.' and spaces are allowed"
    return None


_LEGACY_SCALARS = {
    "number": KeyType.NUMBER,
    "boolean": KeyType.BOOLEAN,
    "varchar": KeyType.VARCHAR,
    "datetime": KeyType.DATETIME,
    "text": KeyType.TEXT,
    "uuid": KeyType.UUID,
}


def spec_from_wire(obj: Mapping[str, Any]) -> FieldSpec:
    """Read one wire type object. Raises ``ValueError`` with a readable message for an unknown shape."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a type object, got {type(obj).__name__}")
    ty = obj.get("ty")
    if not isinstance(ty, str):
        raise ValueError(f"'ty' must be a string, got {type(ty).__name__}")
    wire = dict(obj)
    if ty == "variant":
        hint = obj.get("hint", "text")
        if not isinstance(hint, str):
            raise ValueError(f"variant 'hint' must be a string, got {type(hint).__name__}")
        hint = {"string": "varchar", "long_string": "text"}.get(hint, hint)
        if hint not in _LEGACY_SCALARS:
            raise ValueError(f"unknown variant hint {hint!r}")
        return FieldSpec(_LEGACY_SCALARS[hint], wire=wire)
    if ty in _LEGACY_SCALARS:
        return FieldSpec(_LEGACY_SCALARS[ty], wire=wire)
    if ty == "enum":
        values = obj.get("values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError("enum 'values' must be a list of strings")
        return FieldSpec(KeyType.ENUM, values=tuple(values), wire=wire)
    if ty == "embedding":
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValueError("embedding 'size' must be an integer")
        return FieldSpec(KeyType.EMBEDDING, size=size, wire=wire)
    if ty == "geospatial":
        return FieldSpec(KeyType.GEOSPATIAL, wire=wire)
    if ty == "user":
        return FieldSpec(KeyType.USER, wire=wire)
    if ty == "tombstone":
        inner = obj.get("deleted_ty")
        if inner is None:
            return FieldSpec(None, deleted=Deletion.HARD, wire=wire)
        before = spec_from_wire(inner)
        return FieldSpec(before.type, before.values, before.size, Deletion.SOFT, wire=wire)
    raise ValueError(f"unknown type {ty!r}")


def spec_to_wire(spec: FieldSpec) -> WireType:
    """Write one FieldSpec the way the Encord SDK writes it.

    Where the spec was read from live state and is unchanged, the live object is returned as it was.
    """
    if spec.wire is not None:
        return dict(spec.wire)
    if spec.deleted is Deletion.HARD:
        return {"ty": "tombstone", "deleted_ty": None}
    if spec.deleted is Deletion.SOFT:
        return {"ty": "tombstone", "deleted_ty": spec_to_wire(spec.alive())}
    t = spec.type
    if t is None:
        raise ValueError("a live key needs a type")
    if t in SCALAR_TYPES:
        return {"ty": "variant", "hint": t.value}
    if t is KeyType.ENUM:
        return {"ty": "enum", "values": sorted(spec.values)}
    if t is KeyType.EMBEDDING:
        return {"ty": "embedding", "size": spec.size, "api": None}
    return {"ty": t.value}


def parse_wire_schema(data: object) -> SchemaSpec:
    """Read a whole wire schema (``None`` means no schema). Raises ``ValueError`` naming the bad key."""
    if data is None:
        return SchemaSpec({})
    if not isinstance(data, Mapping):
        raise ValueError(f"schema must be a JSON object, got {type(data).__name__}")
    keys: dict[str, FieldSpec] = {}
    for key, obj in data.items():
        try:
            keys[str(key)] = spec_from_wire(obj)
        except ValueError as exc:
            raise ValueError(f"schema key {key!r}: {exc}") from exc
    return SchemaSpec(keys)


def wire_schema_from_specs(schema: SchemaSpec) -> WireSchema:
    return {k: spec_to_wire(v) for k, v in schema.keys.items()}


def schema_fingerprint(wire: Mapping[str, Any]) -> str:
    """A stable digest of a wire schema, to detect change between plan and apply."""
    text = json.dumps(wire, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
