"""Decoding JSON from untrusted input (sources, snapshots, saved plans, journals, live values) without a crash.

Python's decoder recurses once per nesting level and raises ``RecursionError`` on input nested about a
thousand levels deep. :func:`loads` turns that into a ``json.JSONDecodeError`` whose position is where the
nesting went too deep, so every reader reports it like any other bad JSON: one line, ``path:line:col``.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.jsoncodec import UNDECIDED, try_loads, try_loads_noting_strings

__all__ = ["DEPTH_SHOWN", "depth", "loads", "loads_noting_strings", "too_deep"]

#: The depth a message names: input that fails to decode for its depth is nested at least this deep.
DEPTH_SHOWN = 500


def loads(text: str | bytes) -> Any:
    """``json.loads``, with too deep nesting reported as ``json.JSONDecodeError`` (a ValueError).

    Decoded by orjson where that gives ``json.loads``' value (:func:`reconciler.jsoncodec.try_loads`)."""
    value = try_loads(text)
    if value is not UNDECIDED:
        return value
    try:
        return json.loads(text)
    except RecursionError:
        raise too_deep(text) from None


def loads_noting_strings(data: bytes) -> tuple[Any, bool]:
    """:func:`loads`, and whether each string inside the value may be decoded with
    :func:`reconciler.jsoncodec.try_loads_plain` (see :func:`reconciler.jsoncodec.try_loads_noting_strings`)."""
    value, plain = try_loads_noting_strings(data)
    if value is not UNDECIDED:
        return value, plain
    return loads(data), False


def too_deep(text: str | bytes) -> json.JSONDecodeError:
    """The error for ``text`` that is nested too deeply to decode, positioned at the first too-deep bracket."""
    doc = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    depth = deepest = 0
    pos = deepest_pos = 0
    in_string = escaped = False
    for i, ch in enumerate(doc):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest, deepest_pos = depth, i
            if depth > DEPTH_SHOWN:
                pos = i
                break
        elif ch in "]}":
            depth -= 1
    else:
        pos = deepest_pos
    return json.JSONDecodeError(f"nested more than {min(deepest, DEPTH_SHOWN):,} levels deep", doc, pos)


def depth(value: object) -> int:
    """How deeply ``value`` (decoded JSON) nests lists and objects, found without recursion (``0`` for a scalar)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
        else:
            continue
        deepest = max(deepest, d + 1)
    return deepest
