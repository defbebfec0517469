"""How values look in text and markdown: JSON, with long values shortened (never in JSON output)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.types import JsonValue

__all__ = ["format_value"]

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
