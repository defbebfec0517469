"""values: each schema type's rule and CSV cell conversion, with the exact messages."""

from __future__ import annotations

import json
import math
import random

import pytest

from reconciler.schema import Deletion, FieldSpec, KeyType
from reconciler.types import JsonValue
from reconciler.values import MAX_LIST, MAX_TEXT, check_value, convert_cell, format_value, is_iso_datetime

ENUM = FieldSpec(KeyType.ENUM, values=("sunny", "rain", "snow"))
EMB = FieldSpec(KeyType.EMBEDDING, size=3)


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        (FieldSpec(KeyType.BOOLEAN), True),
        (FieldSpec(KeyType.BOOLEAN), False),
        (FieldSpec(KeyType.NUMBER), 5),
        (FieldSpec(KeyType.NUMBER), -2.5),
        (FieldSpec(KeyType.NUMBER), 10**400),
        (FieldSpec(KeyType.DATETIME), "2024-05-01"),
        (FieldSpec(KeyType.DATETIME), "2024-05-01T10:00"),
        (FieldSpec(KeyType.DATETIME), "2024-05-01T10:00:00Z"),
        (FieldSpec(KeyType.DATETIME), "2024-05-01 10:00:00.123456789+02:00"),
        (FieldSpec(KeyType.DATETIME), "2024-02-29T23:59:59-0530"),
        (FieldSpec(KeyType.UUID), "5e0b6a0e-2f1c-4b7e-9c51-0C2F6D1C9A10"),
        (FieldSpec(KeyType.VARCHAR), "x" * 8192),
        (FieldSpec(KeyType.TEXT), "x" * 10000),
        (ENUM, "rain"),
        (EMB, [1, 2.5, -3]),
        (FieldSpec(KeyType.GEOSPATIAL), {"latitude": -90, "longitude": 180.0}),
        (FieldSpec(KeyType.NUMBER), None),
        (FieldSpec(KeyType.TEXT, deleted=Deletion.SOFT), None),
    ],
)
def test_good_values(spec: FieldSpec, value: object) -> None:
    assert check_value("k", value, spec) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "spec", "value", "message"),
    [
        (
            "flag",
            FieldSpec(KeyType.BOOLEAN),
            "yes",
            "flag: expected a boolean, got the string 'yes' (YAML 1.2: write true or false)",
        ),
        ("flag", FieldSpec(KeyType.BOOLEAN), 1, "flag: expected a boolean, got the number 1"),
        ("count", FieldSpec(KeyType.NUMBER), "5", "count: expected a number, got the string '5'"),
        ("count", FieldSpec(KeyType.NUMBER), True, "count: expected a number, got the boolean true"),
        ("count", FieldSpec(KeyType.NUMBER), float("nan"), "count: a number must be finite, got nan"),
        ("count", FieldSpec(KeyType.NUMBER), float("inf"), "count: a number must be finite, got inf"),
        (
            "capture.time",
            FieldSpec(KeyType.DATETIME),
            "yesterday",
            "capture.time: 'yesterday' is not an ISO 8601 datetime",
        ),
        (
            "capture.time",
            FieldSpec(KeyType.DATETIME),
            "2024-02-30",
            "capture.time: '2024-02-30' is not an ISO 8601 datetime",
        ),
        (
            "capture.time",
            FieldSpec(KeyType.DATETIME),
            "2024-05-01T25:00",
            "capture.time: '2024-05-01T25:00' is not an ISO 8601 datetime",
        ),
        (
            "capture.time",
            FieldSpec(KeyType.DATETIME),
            20240501,
            "capture.time: expected an ISO 8601 datetime string, got the number 20240501",
        ),
        ("site.id", FieldSpec(KeyType.UUID), "abc", "site.id: 'abc' is not a UUID"),
        (
            "site.id",
            FieldSpec(KeyType.UUID),
            "{5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10}",
            "site.id: '{5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10}' is not a UUID",
        ),
        (
            "note",
            FieldSpec(KeyType.VARCHAR),
            "x" * 8193,
            "note: string of 8,193 characters is longer than varchar allows (8,192); declare the key as text for longer values",
        ),
        ("note", FieldSpec(KeyType.VARCHAR), 5, "note: expected a string, got the number 5"),
        ("caption", FieldSpec(KeyType.TEXT), ["a"], "caption: expected a string, got a list of 1 item(s)"),
        (
            "capture.weather",
            ENUM,
            "fog",
            "capture.weather: 'fog' is not one of the enum values [rain, snow, sunny]",
        ),
        (
            "capture.weather",
            ENUM,
            3,
            "capture.weather: expected one of the enum values [rain, snow, sunny], got the number 3",
        ),
        (
            "clip",
            FieldSpec(KeyType.EMBEDDING, size=512),
            [1, 2, 3],
            "clip: embedding needs 512 numbers, got 3",
        ),
        ("clip", EMB, [1, "2", 3], "clip: embedding item 1 is not a finite number (got the string '2')"),
        ("clip", EMB, [1, True, 3], "clip: embedding item 1 is not a finite number (got the boolean true)"),
        ("clip", EMB, "1,2,3", "clip: expected a list of 3 numbers, got the string '1,2,3'"),
        (
            "loc",
            FieldSpec(KeyType.GEOSPATIAL),
            {"latitude": 91, "longitude": 0},
            "loc: latitude 91 is out of range -90..90",
        ),
        (
            "loc",
            FieldSpec(KeyType.GEOSPATIAL),
            {"latitude": 0, "longitude": -181.5},
            "loc: longitude -181.5 is out of range -180..180",
        ),
        ("loc", FieldSpec(KeyType.GEOSPATIAL), {"latitude": 0}, "loc: missing longitude"),
        (
            "loc",
            FieldSpec(KeyType.GEOSPATIAL),
            {"latitude": 0, "longitude": 0, "alt": 1},
            "loc: unexpected field 'alt' (a geospatial value has only latitude and longitude)",
        ),
        (
            "loc",
            FieldSpec(KeyType.GEOSPATIAL),
            {"latitude": "0", "longitude": 0},
            "loc: latitude must be a number, got the string '0'",
        ),
        (
            "loc",
            FieldSpec(KeyType.GEOSPATIAL),
            [0, 0],
            "loc: expected {latitude, longitude}, got a list of 2 item(s)",
        ),
        ("x", FieldSpec(KeyType.TEXT, deleted=Deletion.SOFT), "a", "key 'x' is deleted in the schema"),
        ("x", FieldSpec(None, deleted=Deletion.HARD), 1, "key 'x' is deleted in the schema"),
    ],
)
def test_bad_values(key: str, spec: FieldSpec, value: object, message: str) -> None:
    assert check_value(key, value, spec) == message  # type: ignore[arg-type]


def test_long_strings_are_shortened_in_messages() -> None:
    message = check_value("site.id", "y" * 100, FieldSpec(KeyType.UUID))
    assert message == "site.id: '" + "y" * 57 + "...' is not a UUID"


@pytest.mark.parametrize("text", ["2024-05-01", "2024-05-01T10:00:00Z", "2024-12-31T23:59:59.5+14:00"])
def test_iso_datetimes(text: str) -> None:
    assert is_iso_datetime(text)


@pytest.mark.parametrize(
    "text", ["2024-5-1", "2024-05-01T", "01/05/2024", "2023-02-29", "0000-01-01", "2024-05-01T10"]
)
def test_not_iso_datetimes(text: str) -> None:
    assert not is_iso_datetime(text)


def test_uuid_with_a_trailing_newline_is_refused() -> None:
    """A ``|`` block scalar ends with a newline; ``$`` in a pattern would let it through."""
    text = "5e0b6a0e-2f1c-4b7e-9c51-0c2f6d1c9a10"
    assert check_value("site.id", text, FieldSpec(KeyType.UUID)) is None
    assert (
        check_value("site.id", text + "\n", FieldSpec(KeyType.UUID))
        == f"site.id: {text + chr(10)!r} is not a UUID"
    )


@pytest.mark.parametrize(
    ("text", "spec", "value"),
    [
        ("5", FieldSpec(KeyType.NUMBER), 5),
        ("-5", FieldSpec(KeyType.NUMBER), -5),
        ("2.5", FieldSpec(KeyType.NUMBER), 2.5),
        ("1e3", FieldSpec(KeyType.NUMBER), 1000.0),
        (" 7 ", FieldSpec(KeyType.NUMBER), 7),
        ("TRUE", FieldSpec(KeyType.BOOLEAN), True),
        ("false", FieldSpec(KeyType.BOOLEAN), False),
        ("[1, 2.5]", EMB, [1, 2.5]),
        ('{"latitude": 1, "longitude": 2}', FieldSpec(KeyType.GEOSPATIAL), {"latitude": 1, "longitude": 2}),
        ("rain", ENUM, "rain"),
        ("5", FieldSpec(KeyType.VARCHAR), "5"),
        ("2024-05-01", FieldSpec(KeyType.DATETIME), "2024-05-01"),
        ("007", None, "007"),
    ],
)
def test_convert_cell(text: str, spec: FieldSpec | None, value: object) -> None:
    assert convert_cell(text, spec) == value
    assert type(convert_cell(text, spec)) is type(value)


@pytest.mark.parametrize(
    ("text", "spec", "message"),
    [
        ("abc", FieldSpec(KeyType.NUMBER), "'abc' is not a number"),
        ("1_000", FieldSpec(KeyType.NUMBER), "'1_000' is not a number"),
        ("nan", FieldSpec(KeyType.NUMBER), "'nan' is not a finite number"),
        ("yes", FieldSpec(KeyType.BOOLEAN), "'yes' is not a boolean (write true or false)"),
        ("1,2", EMB, "'1,2' is not valid JSON (write embedding cells as [x, y, ...])"),
        (
            "here",
            FieldSpec(KeyType.GEOSPATIAL),
            '\'here\' is not valid JSON (write geospatial cells as {"latitude": ..., "longitude": ...})',
        ),
    ],
)
def test_convert_cell_errors(text: str, spec: FieldSpec, message: str) -> None:
    with pytest.raises(ValueError) as info:
        convert_cell(text, spec)
    assert str(info.value) == message


def _random_value(rng: random.Random, depth: int = 0) -> JsonValue:
    pick = rng.randrange(9 if depth < 2 else 6)
    if pick == 0:
        return rng.choice([None, True, False])
    if pick == 1:
        return rng.choice([0, -1, 7, 2**63, -(2**70), rng.randrange(-(10**6), 10**6)])
    if pick == 2:
        return rng.choice(
            [0.0, -0.0, 1.5, 1e-7, 1e22, 123456.789, math.nan, math.inf, -math.inf, rng.random()]
        )
    if pick in (3, 4, 5):
        alphabet = 'ab"\\\n\t\u00e9\u2028\U0001f600 '
        return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 3, 79, 80, 81, 200])))
    if pick in (6, 7):
        return [_random_value(rng, depth + 1) for _ in range(rng.choice([0, 2, 8, 9, 12]))]
    return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randrange(4))}


def test_format_value_writes_what_the_encoder_writes() -> None:
    """Plain scalars take a short path; every value still gets the encoder's text (and shortening)."""
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))

    def reference(value: JsonValue, shorten: bool = True) -> str:
        if shorten:
            if isinstance(value, str) and len(value) > MAX_TEXT:
                return encoder.encode(value[: MAX_TEXT - 3])[:-1] + f'…" ({len(value)} chars)'
            if isinstance(value, list) and len(value) > MAX_LIST:
                head = ", ".join(reference(v) for v in value[:3])
                kind = "numbers" if all(isinstance(v, (int, float)) for v in value) else "items"
                return f"[{head}, … {len(value)} {kind}]"
        return encoder.encode(value)

    rng = random.Random(14)
    for _ in range(20000):
        value = _random_value(rng)
        for shorten in (True, False):
            assert format_value(value, shorten=shorten) == reference(value, shorten), value
