"""Writing values as YAML text that reads back exactly (for ``reconciler import``).

A string is written plain only when no YAML reader could take it for anything else: it starts with a letter,
``_`` or ``/``, holds only letters, digits, spaces and ``_./-``, and is not one of the words YAML 1.1 or 1.2
read as a boolean or null (``true``, ``no``, ``on``, ``null``, ``~`` ...). Every other string is double-quoted
(YAML escapes), so ``"true"``, ``"1.0"``, ``"2024-01-01"`` and ``"null"`` stay strings.
Integers and floats keep their kind (``1`` vs ``1.0``). Lists and mappings are written in flow style.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.types import JsonValue

__all__ = ["yaml_key", "yaml_value"]

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./ -]*")
# Words some YAML reader (1.1 or 1.2) resolves to a boolean or null; matched case-insensitively.
_RESERVED = frozenset({"true", "false", "yes", "no", "on", "off", "y", "n", "null", "none", "nan", "inf"})
# Double-quoted escapes, exactly as the round-trip writer (``fmt``) makes them, so imported files are
# already formatted.
_ESCAPES = {
    "\0": "0", "\x07": "a", "\x08": "b", "\t": "t", "\n": "n", "\x0b": "v", "\x0c": "f", "\r": "r",
    "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_", "\u2028": "L", "\u2029": "P",
}  # fmt: skip


def _printable(ch: str) -> bool:
    return (
        "\x20" <= ch <= "\x7e"
        or "\xa0" <= ch <= "\ud7ff"
        or "\ue000" <= ch <= "\ufffd"
        or "\U00010000" <= ch <= "\U0010ffff"
    )


def _quoted(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\\x85\u2028\u2029\ufeff' or not _printable(ch):
            if ch in _ESCAPES:
                out.append("\\" + _ESCAPES[ch])
            elif ch <= "\xff":
                out.append(f"\\x{ord(ch):02X}")
            elif ch <= "\uffff":
                out.append(f"\\u{ord(ch):04X}")
            else:
                out.append(f"\\U{ord(ch):08X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _is_plain(text: str) -> bool:
    return (
        _PLAIN.fullmatch(text) is not None
        and not text.endswith(" ")
        and "  " not in text
        and text.lower() not in _RESERVED
    )


def yaml_key(key: str) -> str:
    """A mapping key: plain when safe, else double-quoted."""
    return key if _is_plain(key) else _quoted(key)


def yaml_value(value: JsonValue) -> str:
    """A JSON value as one line of YAML (flow style for lists and mappings).

    Raises ValueError for a float that is not finite (JSON has no such number).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a JSON number")
        return repr(value)
    if isinstance(value, str):
        return value if _is_plain(value) else _quoted(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{yaml_key(k)}: {yaml_value(v)}" for k, v in value.items()) + "}"
