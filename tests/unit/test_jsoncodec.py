"""The codec gives exactly what Python's ``json`` gives: the same bytes for canonical text, plan files and
checksums, the same values (types included) and the same errors when decoding; and the plan file and
journal saved by the code before the codec (``tests/fixtures/codec/``) still verify."""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import jsoncodec
from reconciler.journal import read_journal
from reconciler.model import metadata_fingerprint
from reconciler.plan.planfile import read_planfile, write_planfile

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "codec"


def _std_canonical(v: Any) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except Exception as exc:  # the same kind of failure on both sides
        return "error", type(exc)


def _same_value(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (``1 != 1.0``, ``-0.0 != 0.0``, ``nan == nan``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("d", a) == struct.pack("d", b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _random_float(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.4:  # any bit pattern: every magnitude
        return float(struct.unpack("d", rng.getrandbits(64).to_bytes(8, "little"))[0])
    if pick < 0.8:  # around the thresholds where repr switches to exponents (1e-4, 1e16)
        return rng.uniform(1, 10) * 10.0 ** rng.randint(-12, 20) * rng.choice((1, -1))
    return rng.choice((0.1, 1e16, 1e15, 1e-4, 1e-5, 1e-7, -0.0, 0.0, 5e-324, 1e22, 100.0, 2.5, 1e308))


_ALPHABET = 'aZ09 _.-"\\/\n\t\x00\x01\x1f\x7f\u00e9\u2028\u2029\u2603\U0001d11e\ufeff'


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 8)))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice((rng.randint(-1000, 1000), rng.randint(-(2**63), 2**63 - 1), rng.getrandbits(90)))
    if kind in (3, 4):
        return _random_float(rng)
    if kind in (5, 6):
        return _random_text(rng)
    if kind == 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_random_text(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def test_random_values_encode_and_decode_exactly_as_the_standard_library() -> None:
    rng = random.Random(14)
    for _ in range(20_000):
        v = _random_value(rng)
        assert _outcome(jsoncodec.canonical, v) == _outcome(_std_canonical, v), v
        std = _outcome(lambda x: _std_canonical(x).encode(), v)
        assert _outcome(jsoncodec.canonical_bytes, v) == std, v
        assert _outcome(jsoncodec.dumps_indented, v) == _outcome(
            lambda x: json.dumps(x, indent=1, ensure_ascii=False), v
        ), v
        checksum = _outcome(
            lambda x: json.dumps(x, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(), v
        )
        assert _outcome(jsoncodec.checksum_text, v) == checksum, v
        for text in (json.dumps(v), json.dumps(v, ensure_ascii=False, indent=1)):
            ours, theirs = jsoncodec.loads(text), json.loads(text)
            assert _same_value(ours, theirs), text
            assert _same_value(jsoncodec.loads(text.encode("utf-8", "surrogatepass")), theirs) or (
                "\\ud" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)
            ), text


@settings(max_examples=500, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
        max_leaves=20,
    )
)
def test_hypothesis_values_match_the_standard_library(v: Any) -> None:
    assert _outcome(jsoncodec.canonical, v) == _outcome(_std_canonical, v)
    assert _outcome(jsoncodec.dumps_indented, v) == _outcome(
        lambda x: json.dumps(x, indent=1, ensure_ascii=False), v
    )
    text = json.dumps(v)
    assert _same_value(jsoncodec.loads(text), json.loads(text))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e16, "1e+16"),
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (1e-05, "1e-05"),
        (1.5e-07, "1.5e-07"),
        (2**64 + 1, "18446744073709551617"),
        (-(2**70), "-1180591620717411303424"),
        ({"b": 1, "a": [1e22, "é☃𝄞"]}, '{"a":[1e+22,"é☃𝄞"],"b":1}'),
    ],
)
def test_known_canonical_texts(value: Any, text: str) -> None:
    assert jsoncodec.canonical(value) == text == _std_canonical(value)


@pytest.mark.parametrize(
    "text",
    [
        "123456789012345678901234567890",
        "-9223372036854775809",
        "[18446744073709551616, 1]",
        "1e400",
        "NaN",
        "[Infinity, -Infinity]",
        '"\\ud800"',
        '{"a": 1, "a": 2}',
        "-0",
        "-0.0",
        "0.0049999999999954525",
        "[12345678901234567890.5, 1]",
        "12345678901234567890e-3",
        "1234567890123456789012E2",
        "-12345678901234567890",
        "[1.5, 12345678901234567890]",
        '{"a": "12345678901234567890", "b": 0.1234567890123456789012345e5}',
    ],
)
def test_decoding_edge_cases(text: str) -> None:
    assert _same_value(jsoncodec.loads(text), json.loads(text))


@pytest.mark.parametrize(
    ("text", "decided"),
    [
        ('{"latitude": 44.995000000000005, "longitude": -0.0049999999999954525}', True),
        ("[12345678901234567890.5, 1.2345678901234567890123e-7, 98765432109876543210E3]", True),
        ("[0.5, 1234567890123456789]", False),  # an integer of 19 digits: the standard library decides
        ('{"id": -98765432109876543210}', False),
        ('["12345678901234567890"]', False),  # (inside a string: the slower path, to be safe)
    ],
)
def test_only_long_integers_leave_the_decoding_to_the_standard_library(text: str, decided: bool) -> None:
    value = jsoncodec.try_loads(text)
    assert (value is not jsoncodec.UNDECIDED) is decided
    assert _same_value(jsoncodec.loads(text), json.loads(text))
    if decided:
        assert _same_value(value, json.loads(text))


def _digit_text(rng: random.Random) -> str:
    """A JSON text of numbers with long runs of digits, as integers, fractions and exponents, some in strings."""
    parts = []
    for _ in range(rng.randint(1, 6)):
        run = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 30)))
        head = run.lstrip("0") or "0"
        num = rng.choice(
            (
                head,
                f"-{head}",
                f"0.{run}",
                f"{head}.{run}",
                f"{head}e{rng.randint(-20, 20)}",
                f"1.{run}E-{rng.randint(0, 30)}",
            )
        )
        parts.append(json.dumps(num) if rng.random() < 0.2 else num)
    return "[" + ", ".join(parts) + "]"


def test_random_long_digit_runs_decode_as_the_standard_library_does() -> None:
    rng = random.Random(19)
    decided = 0
    for _ in range(20_000):
        text = _digit_text(rng)
        assert _same_value(jsoncodec.loads(text), json.loads(text)), text
        value = jsoncodec.try_loads(text)
        if value is not jsoncodec.UNDECIDED:
            decided += 1
            assert _same_value(value, json.loads(text)), text
        # the same text as a string inside an answer: vouched-for strings decode alike too
        outer = json.dumps({"clientMetadata": text}).encode()
        got, plain = jsoncodec.try_loads_noting_strings(outer)
        if got is not jsoncodec.UNDECIDED and plain:
            inner = jsoncodec.try_loads_plain(got["clientMetadata"])
            assert inner is jsoncodec.UNDECIDED or _same_value(inner, json.loads(text)), text
    assert 5_000 < decided < 20_000  # both paths are taken


@pytest.mark.parametrize("text", ['{"a": 1,}', "[1, 2", "\ufeff{}", '{"a": "\x01"}', "", "01", '{"a" 1}'])
def test_decoding_errors_are_the_standard_librarys(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        jsoncodec.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert (str(ours.value), ours.value.lineno, ours.value.colno) == (
        str(theirs.value),
        theirs.value.lineno,
        theirs.value.colno,
    )


def test_nan_is_refused_in_canonical_text_and_kept_in_checksums() -> None:
    with pytest.raises(ValueError):
        jsoncodec.canonical({"a": float("nan")})
    assert jsoncodec.checksum_text({"a": float("nan")}) == b'{"a":NaN}'


def test_a_saved_plan_file_from_before_the_codec_still_verifies_and_is_rewritten_byte_for_byte(
    tmp_path: Path,
) -> None:
    plan = read_planfile(FIXTURES / "saved.plan.json")  # checks the checksum
    assert [f.name for f in plan.files] == ["cam01.jpg", "cam02.jpg"]
    again = tmp_path / "again.plan.json"
    write_planfile(again, plan)
    assert again.read_bytes() == (FIXTURES / "saved.plan.json").read_bytes()


def test_a_journal_from_before_the_codec_still_reads_and_its_fingerprints_match_the_plan(
    tmp_path: Path,
) -> None:
    plan = read_planfile(FIXTURES / "saved.plan.json")
    shutil.copy(FIXTURES / "apply.jsonl", tmp_path / "apply.jsonl")
    journal = read_journal(tmp_path / "apply.jsonl")
    by_uuid = {f.uuid: f for f in plan.files}
    assert [e.name for e in journal.entries] == ["cam01.jpg", "cam02.jpg"]
    for e in journal.entries:
        # The plan's fingerprints were computed by the code before the codec, over the same live dicts.
        assert metadata_fingerprint(e.before) == by_uuid[e.uuid].live_fingerprint
    assert journal.entries[0].before["big"] == 2**70 and journal.entries[0].before["tiny"] == 1.5e-07
