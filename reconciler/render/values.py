"""How schema changes read in text and markdown plans (values themselves: ``reconciler.values.format_value``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.plan.model import SchemaAction
from reconciler.schema import KeyType

if TYPE_CHECKING:
    from reconciler.plan.model import SchemaChange

__all__ = ["describe_schema_change"]


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
