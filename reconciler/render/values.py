"""How values look in text and markdown: JSON, with long values shortened (never in JSON output)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reconciler.plan.model import SchemaAction
from reconciler.schema import KeyType

if TYPE_CHECKING:
    from reconciler.plan.model import SchemaChange
    from reconciler.types import JsonValue

__all__ = ["describe_schema_change", "format_value"]

MAX_TEXT = 80
MAX_LIST = 8

# One encoder for every call: json.dumps with non-default options builds a new encoder each time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


def format_value(value: JsonValue, *, shorten: bool = True) -> str:
    """A value as compact JSON; long strings and long number lists (embeddings) are shortened."""
    if shorten:
        if isinstance(value, str) and len(value) > MAX_TEXT:
            return _ENCODER.encode(value[: MAX_TEXT - 3])[:-1] + f'…" ({len(value)} chars)'
        if isinstance(value, list) and len(value) > MAX_LIST:
            head = ", ".join(format_value(v) for v in value[:3])
            kind = "numbers" if all(isinstance(v, (int, float)) for v in value) else "items"
            return f"[{head}, … {len(value)} {kind}]"
    return _ENCODER.encode(value)


def describe_schema_change(c: SchemaChange) -> str:
    """One schema change in a few words (``enum: + fog``, ``soft delete``, ``number -> enum[a, b]``)."""
    if c.action is SchemaAction.CREATE and c.after is not None:
        return c.after.describe()
    if c.action is SchemaAction.RENAME:  # the reason says from where and how many files move
        return f"{c.after.describe() if c.after else ''}, {c.reason or f'renamed from {c.renamed_from}'}"
    if c.action is SchemaAction.RESTORE and c.after is not None:
        return f"restore ({c.after.describe()})"
    if c.action is SchemaAction.DELETE and c.after is not None:
        return "hard delete" if c.after.deleted and c.after.deleted.value == "hard" else "soft delete"
    b, a = c.before, c.after
    if b is not None and a is not None and b.type is KeyType.ENUM and a.type is KeyType.ENUM:
        parts = [f"+ {v}" for v in sorted(set(a.values) - set(b.values))]
        parts += [f"- {v}" for v in sorted(set(b.values) - set(a.values))]
        return "enum: " + ", ".join(parts)
    return f"{b.describe() if b else '?'} -> {a.describe() if a else '?'}"
