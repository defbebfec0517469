"""The JSON codec: orjson where it gives the same answer as Python's ``json``, the standard library elsewhere.

Every reader and writer of JSON in the engine (listings, bulk answers, sources, plan files, journal lines,
checksums, fingerprints) goes through here, so the text and values are exactly what Python's ``json`` module
gives, only faster:

- :func:`loads` decodes with orjson, and with ``json.loads`` when orjson refuses the text (so every error,
  with its line and column, is the standard library's) or when the text has an integer of 19 or more digits
  (orjson turns integers beyond 64 bits into floats; Python keeps them exact).
- :func:`canonical` / :func:`canonical_bytes` write sorted keys, no spaces, UTF-8 kept, no NaN: byte for byte
  ``json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``. orjson's
  output is used unless it could differ: a float orjson writes another way than ``repr`` (exponents below
  ``1e-4``), a ``null`` (orjson writes NaN and infinities as null), an integer beyond 64 bits, a subclass of
  a JSON type, nesting deeper than orjson allows. Then the standard library writes it.
- :func:`dumps_indented` is ``json.dumps(v, indent=1, ensure_ascii=False)`` (plan files) by the same rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson

__all__ = [
    "UNDECIDED",
    "RawDecodeError",
    "canonical",
    "canonical_bytes",
    "checksum_text",
    "dumps_indented",
    "loads",
    "raw_loads",
    "try_loads",
    "try_loads_noting_strings",
    "try_loads_plain",
]

#: An integer literal orjson would not keep exact has 19 digits or more in a row; found by mapping every
#: digit to ``0`` and everything else to a space (``bytes.translate``, several times faster than a regular
#: expression). A run that is a float's fraction (``.`` before it) or the digits before its ``.`` or
#: exponent is decoded alike by both (a float, correctly rounded); runs inside strings match too, which
#: only costs the slower path.
_DIGIT_RUNS = bytes(48 if 48 <= c <= 57 else 32 for c in range(256))
_LONG_RUN = b"0" * 19
_FLOAT_AFTER = frozenset(b".eE")


def _has_long_digits(data: bytes) -> bool:
    """Whether ``data`` may hold an integer literal of 19 digits or more (then only ``json`` decodes it
    exactly). Floats' long runs of digits (``0.0049999999999954525``) do not count."""
    mapped = data.translate(_DIGIT_RUNS)
    at = mapped.find(_LONG_RUN)
    while at >= 0:
        end = mapped.find(b" ", at + 19)
        if end < 0:
            end = len(mapped)
        if not (at and data[at - 1] == 46) and not (end < len(data) and data[end] in _FLOAT_AFTER):
            return True  # an integer, or digits inside a string: the slower path decides
        at = mapped.find(_LONG_RUN, end)
    return False


#: A float orjson writes with a one-digit exponent (``1e-7``; Python writes ``1e-07``).
_SHORT_EXPONENT = re.compile(rb"\de-\d(?!\d)")


def _maybe_different(out: bytes) -> bool:
    """Whether orjson's text may differ from Python's: ``null`` (orjson writes NaN and infinities so), a
    float below 1e-4 written positionally (``0.00001``), or a one-digit exponent. Substring tests first:
    they are much cheaper than a regular expression."""
    if b"null" in out or b"0.0000" in out:
        return True
    at = out.find(b"e-")
    while at > 0:  # ``e-`` is mostly text ("value-1"): look at its neighbours before any regular expression
        if 48 <= out[at - 1] <= 57 and _SHORT_EXPONENT.match(out, at - 1) is not None:
            return True
        at = out.find(b"e-", at + 2)
    return False


_std_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode
_std_checksum = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_std_indented = json.JSONEncoder(indent=1, ensure_ascii=False).encode

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
_INDENTED = orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
_INDENT = re.compile(rb"^((?:  )+)", re.MULTILINE)


def _refuse(value: object) -> Any:
    raise TypeError(type(value).__name__)


#: What :func:`try_loads` answers when only the standard library can say (an error, or a long integer).
UNDECIDED: Any = object()


def try_loads(data: str | bytes) -> Any:
    """The value orjson decodes when it is the one ``json.loads`` gives, else :data:`UNDECIDED` (the caller
    then decodes the standard library's way, for its value or its error)."""
    try:
        if not _has_long_digits(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")):
            return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    return UNDECIDED


#: orjson's decoder as it is, for a reader that rules out on its own the one case where its value differs from
#: ``json.loads``'s: an integer literal beyond 64 bits, which orjson decodes as a float of magnitude 2**63 or
#: more (so a value with no float that large is the standard library's). It raises :data:`RawDecodeError`.
#: The bulk source reader uses it (``reconciler.manifest.source``), checking every value anyway.
raw_loads: Callable[[bytes], Any] = orjson.loads
RawDecodeError = orjson.JSONDecodeError


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """``json.loads(data)``, decoded by orjson when that gives the same value (see the module docstring).

    Raises ``json.JSONDecodeError`` (a ``ValueError``) exactly as ``json.loads`` does.
    """
    try:
        if isinstance(data, str):
            raw = data.encode("utf-8", "surrogatepass")
        else:
            raw = data if type(data) is bytes else bytes(data)
        if not _has_long_digits(raw):
            return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    if isinstance(data, memoryview):
        data = bytes(data)
    return json.loads(data)


def try_loads_noting_strings(data: bytes) -> tuple[Any, bool]:
    """:func:`try_loads`, and whether every string inside the value is safe for :func:`try_loads_plain`:
    orjson decoded the text, which has no ``\\u`` escape anywhere and no run of 19 digits but floats' (see
    :func:`_has_long_digits`), so no string in it (a JSON text itself, say) can hold another either: its
    characters are the text's own, and a run's neighbours ``.``, ``e`` or ``E`` are never part of an escape."""
    try:
        if not _has_long_digits(data):
            return orjson.loads(data), b"\\u" not in data
    except orjson.JSONDecodeError:
        pass
    return UNDECIDED, False


def try_loads_plain(text: str) -> Any:
    """:func:`try_loads` of text known to hold no integer of 19 digits or more (a string of an answer that
    :func:`try_loads_noting_strings` vouched for): orjson's value, or :data:`UNDECIDED` where it refuses."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return UNDECIDED


def _orjson(value: object, option: int) -> bytes | None:
    try:
        out = orjson.dumps(value, default=_refuse, option=option)
    except (orjson.JSONEncodeError, TypeError):
        return None
    return None if _maybe_different(out) else out


def canonical_bytes(value: object) -> bytes:
    """The canonical text of a JSON value as UTF-8: sorted keys, no spaces, NaN refused (ValueError)."""
    out = _orjson(value, _SORTED)
    return out if out is not None else _std_canonical(value).encode()


def canonical(value: object) -> str:
    """:func:`canonical_bytes` as text."""
    out = _orjson(value, _SORTED)
    return out.decode() if out is not None else _std_canonical(value)


def checksum_text(value: object) -> bytes:
    """``json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` as UTF-8 (NaN allowed)."""
    out = _orjson(value, _SORTED)
    return out if out is not None else _std_checksum(value).encode()


def _halve(m: re.Match[bytes]) -> bytes:
    return b" " * (len(m.group(1)) // 2)


def dumps_indented(value: object) -> str:
    """``json.dumps(v, indent=1, ensure_ascii=False)``: one space per level (orjson indents by two)."""
    out = _orjson(value, _INDENTED)
    if out is None:
        return _std_indented(value)
    return _INDENT.sub(_halve, out).decode()
