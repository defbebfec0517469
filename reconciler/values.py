"""Metadata values against their schema type (SPEC §3.2), and CSV cells (reserved keys: :mod:`reconciler.reserved`).

Every message names the key: ``capture.weather: 'fog' is not one of the enum values [rain, snow, sunny]``.
``null`` is never checked here: it always means "remove the key".

Datetimes: an ISO 8601 / RFC 3339 string, either a date (``2024-05-01``) or a date and time with
``T`` (or one space) between them, optional seconds and fraction, and an optional ``Z`` or ``±HH:MM``
offset (``2024-05-01T10:00:00Z``). A YAML timestamp in a manifest arrives as the text the user wrote.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import TypeAlias

from reconciler.jsonio import loads
from reconciler.schema import VARCHAR_MAX, FieldSpec, KeyType
from reconciler.types import JsonValue

__all__ = [
    "UUID_SHAPE",
    "CellConverter",
    "ValueChecker",
    "cell_converter",
    "check_value",
    "convert_cell",
    "describe_value",
    "format_value",
    "is_iso_datetime",
    "value_checker",
    "yaml11_bool_hint",
]

#: Checks one value of a fixed key and type: the error message, or ``None`` when the value is fine.
ValueChecker: TypeAlias = Callable[[JsonValue], "str | None"]
#: Turns one CSV cell into a value; raises ValueError with a message.
CellConverter: TypeAlias = Callable[[str], JsonValue]

# ISO 8601 extended format, ranges checked by the pattern (day 29..31 is checked against the month after).
_DATETIME = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?)?",
    re.ASCII,  # \d is 0-9 only: Python's int() would read other scripts' digits too
)
# Matched with fullmatch: ``$`` would also accept a trailing newline (a ``|`` block scalar ends with one).
#: The shape of a UUID (any case): the one test of it that every layer uses.
UUID_SHAPE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_YAML11_BOOLS = frozenset({"yes", "no", "on", "off", "y", "n", "true", "false"})


MAX_TEXT = 80
MAX_LIST = 8

# One encoder for every call: json.dumps with non-default options builds a new encoder each time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))


_encode_string = json.encoder.encode_basestring  # what _ENCODER does with a str (ensure_ascii=False)


def format_value(value: JsonValue, *, shorten: bool = True) -> str:
    """A value as compact JSON for plans and messages; long strings and number lists (embeddings) shortened."""
    # Plain scalars without the encoder's machinery, to the same text (tests/unit/test_values.py).
    if type(value) is str:
        if len(value) <= MAX_TEXT or not shorten:
            return _encode_string(value)
    elif type(value) is bool:
        return "true" if value else "false"
    elif type(value) is int:
        return int.__repr__(value)
    elif type(value) is float:
        if value - value == 0.0:  # finite
            return float.__repr__(value)
    elif value is None:
        return "null"
    if shorten:
        if isinstance(value, str) and len(value) > MAX_TEXT:
            return _ENCODER.encode(value[: MAX_TEXT - 3])[:-1] + f'…" ({len(value)} chars)'
        if isinstance(value, list) and len(value) > MAX_LIST:
            head = ", ".join(format_value(v) for v in value[:3])
            kind = "numbers" if all(isinstance(v, (int, float)) for v in value) else "items"
            return f"[{head}, … {len(value)} {kind}]"
    return _ENCODER.encode(value)


def describe_value(value: object) -> str:
    """How messages show a value of the wrong kind: ``the string '5'``, ``the number 3``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {_short(value)}"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def yaml11_bool_hint(value: object) -> str:
    """The hint for a YAML 1.1 boolean word (``yes``, ``off``) where a boolean is expected, else ``""``."""
    if isinstance(value, str) and value.lower() in _YAML11_BOOLS:
        return " (YAML 1.2: write true or false)"
    return ""


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _is_number(v: object) -> bool:
    """A finite int or float, not a bool (ints are always finite; huge ones do not fit a float)."""
    if type(v) is int:
        return True
    if isinstance(v, float):
        return v - v == 0  # false for inf and nan
    return isinstance(v, int) and not isinstance(v, bool)


def is_iso_datetime(text: str) -> bool:
    """Whether ``text`` is an ISO 8601 date or date-time as described in the module docstring."""
    m = _DATETIME.fullmatch(text)
    if m is None:
        return False
    year, month, day = m.group(1, 2, 3)
    if day > "28" or year == "0000":
        try:
            dt.date(int(year), int(month), int(day))
        except ValueError:
            return False
    return True


def check_value(key: str, value: JsonValue, spec: FieldSpec) -> str | None:
    """Check one value against its key's schema type; the error message (naming the key) or ``None``."""
    return value_checker(key, spec)(value)


def value_checker(key: str, spec: FieldSpec) -> ValueChecker:
    """A checker for many values of one key (what bulk sources use: the type is looked at once)."""
    if spec.deleted is not None or spec.type is None:

        def deleted(value: JsonValue) -> str | None:
            return None if value is None else f"key {key!r} is deleted in the schema"

        return deleted
    t = spec.type
    if t is KeyType.BOOLEAN:

        def boolean(value: JsonValue) -> str | None:
            if value is None or value is True or value is False:
                return None
            return f"{key}: expected a boolean, got {describe_value(value)}{yaml11_bool_hint(value)}"

        return boolean
    if t is KeyType.NUMBER:

        def number(value: JsonValue) -> str | None:
            if value is None or _is_number(value):
                return None
            if isinstance(value, float):
                return f"{key}: a number must be finite, got {value}"
            return f"{key}: expected a number, got {describe_value(value)}"

        return number
    if t is KeyType.DATETIME:

        def datetime(value: JsonValue) -> str | None:
            if value is None:
                return None
            if not isinstance(value, str):
                return f"{key}: expected an ISO 8601 datetime string, got {describe_value(value)}"
            if not is_iso_datetime(value):
                return f"{key}: {_short(value)} is not an ISO 8601 datetime"
            return None

        return datetime
    if t is KeyType.UUID:

        def uuid(value: JsonValue) -> str | None:
            if value is None:
                return None
            if not isinstance(value, str):
                return f"{key}: expected a UUID string, got {describe_value(value)}"
            if UUID_SHAPE.fullmatch(value) is None:
                return f"{key}: {_short(value)} is not a UUID"
            return None

        return uuid
    if t is KeyType.VARCHAR:

        def varchar(value: JsonValue) -> str | None:
            if value is None:
                return None
            if not isinstance(value, str):
                return f"{key}: expected a string, got {describe_value(value)}"
            if len(value) > VARCHAR_MAX:
                return (
                    f"{key}: string of {len(value):,} characters is longer than varchar allows "
                    f"({VARCHAR_MAX:,}); declare the key as text for longer values"
                )
            return None

        return varchar
    if t in (KeyType.TEXT, KeyType.USER):

        def text(value: JsonValue) -> str | None:
            if value is None or isinstance(value, str):
                return None
            return f"{key}: expected a string, got {describe_value(value)}"

        return text
    if t is KeyType.ENUM:
        allowed = frozenset(spec.values)
        shown = "[" + ", ".join(sorted(spec.values)) + "]"

        def enum(value: JsonValue) -> str | None:
            if value is None:
                return None
            if isinstance(value, str):
                if value in allowed:
                    return None
                return f"{key}: {_short(value)} is not one of the enum values {shown}"
            return f"{key}: expected one of the enum values {shown}, got {describe_value(value)}"

        return enum
    if t is KeyType.EMBEDDING:
        size = spec.size

        def embedding(value: JsonValue) -> str | None:
            if value is None:
                return None
            if not isinstance(value, list):
                return f"{key}: expected a list of {size} numbers, got {describe_value(value)}"
            if len(value) != size:
                return f"{key}: embedding needs {size} numbers, got {len(value)}"
            for i, x in enumerate(value):
                if not _is_number(x):
                    return f"{key}: embedding item {i} is not a finite number (got {describe_value(x)})"
            return None

        return embedding
    if t is KeyType.GEOSPATIAL:
        return _geospatial_checker(key)
    raise AssertionError(f"unhandled key type {t!r}")  # pragma: no cover - every KeyType is handled above


def _geospatial_checker(key: str) -> ValueChecker:
    ranges = {"latitude": 90.0, "longitude": 180.0}

    def geospatial(value: JsonValue) -> str | None:
        if type(value) is dict and len(value) == 2:  # fast path for bulk rows
            lat, lon = value.get("latitude"), value.get("longitude")
            if (
                (type(lat) is float or type(lat) is int)
                and (type(lon) is float or type(lon) is int)
                and -90 <= lat <= 90
                and -180 <= lon <= 180
            ):
                return None
        if value is None:
            return None
        if not isinstance(value, dict):
            return f"{key}: expected {{latitude, longitude}}, got {describe_value(value)}"
        extra = sorted(set(value) - set(ranges))
        if extra:
            return (
                f"{key}: unexpected field {extra[0]!r} (a geospatial value has only latitude and longitude)"
            )
        for name, bound in ranges.items():
            if name not in value:
                return f"{key}: missing {name}"
            x = value[name]
            if not _is_number(x):
                return f"{key}: {name} must be a number, got {describe_value(x)}"
            assert isinstance(x, int | float)
            if not -bound <= x <= bound:
                return f"{key}: {name} {x} is out of range -{bound:g}..{bound:g}"
        return None

    return geospatial


def convert_cell(text: str, spec: FieldSpec | None) -> JsonValue:
    """Turn one CSV cell into a value of its key's type (the caller skips empty cells: "not set").

    ``number`` -> int or float; ``boolean`` -> true/false (any case); ``embedding``/``geospatial`` -> JSON;
    everything else (and keys the schema does not declare) -> the string as it is.
    Raises ValueError with a message (without the key; the caller adds it).
    """
    return cell_converter(spec)(text)


def _as_text(text: str) -> JsonValue:
    return text


def _as_number(text: str) -> JsonValue:
    if not text.isascii():  # int() and float() accept other scripts' digits ('١٢'); a CSV number is ASCII
        raise ValueError(f"{_short(text)} is not a number (write numbers with the digits 0-9)")
    body = text[1:] if text[:1] in ("+", "-") else text
    if body.isdecimal():
        return int(text)
    text = text.strip()
    body = text[1:] if text[:1] in ("+", "-") else text
    if body.isdecimal():
        return int(text)
    if "_" not in text:  # float() accepts 1_000.5; a CSV cell should not
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            if number - number == 0:
                return number
            raise ValueError(f"{_short(text)} is not a finite number")
    raise ValueError(f"{_short(text)} is not a number")


def _as_boolean(text: str) -> JsonValue:
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ValueError(f"{_short(text)} is not a boolean (write true or false)")


_decode_json = loads


def _json_cell(what: str, example: str) -> CellConverter:
    def convert(text: str) -> JsonValue:
        try:
            parsed: JsonValue = _decode_json(text)
        except ValueError:
            raise ValueError(f"{_short(text)} is not valid JSON (write {what} cells as {example})") from None
        return parsed

    return convert


_EMBEDDING_CELL = _json_cell("embedding", "[x, y, ...]")
_GEOSPATIAL_CELL = _json_cell("geospatial", '{"latitude": ..., "longitude": ...}')


def cell_converter(spec: FieldSpec | None) -> CellConverter:
    """The converter :func:`convert_cell` uses for a key's type, chosen once (for many cells of one column)."""
    t = spec.type if spec is not None else None
    if t is KeyType.NUMBER:
        return _as_number
    if t is KeyType.BOOLEAN:
        return _as_boolean
    if t is KeyType.EMBEDDING:
        return _EMBEDDING_CELL
    if t is KeyType.GEOSPATIAL:
        return _GEOSPATIAL_CELL
    return _as_text
