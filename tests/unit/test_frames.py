"""The per-frame wire mapping: exact shapes, lossless round trips both ways, and what is left alone."""

from __future__ import annotations

import random

import pytest

from reconciler.frames import frame_key, frames_to_keys, parse_frame_key, to_keys, to_wire
from reconciler.types import JsonValue


def test_frame_key_spelling_and_parse() -> None:
    assert frame_key(13, "clip") == "frames[13].clip"
    assert parse_frame_key("frames[13].clip") == (13, "clip")
    assert parse_frame_key("frames[0].a.b") == (0, "a.b")
    for other in (
        "frames[013].clip",
        "frames[-1].x",
        "frames[1]",
        "frames[1].",
        "frames",
        "clip",
        "frames[x].y",
    ):
        assert parse_frame_key(other) is None, other


def test_wire_to_keys_exact() -> None:
    wire: dict[str, JsonValue] = {
        "caption": "a",
        "$encord": {"frame_metadata": {"13": {"clip": [1, 2]}, "2": {"label": "x", "n": 1}}, "other": 1},
    }
    assert to_keys(wire) == {
        "caption": "a",
        "$encord": {"other": 1},
        "frames[2].label": "x",
        "frames[2].n": 1,
        "frames[13].clip": [1, 2],
    }
    assert list(to_keys(wire))[-3:] == ["frames[2].label", "frames[2].n", "frames[13].clip"]


def test_keys_to_wire_exact() -> None:
    keys: dict[str, JsonValue] = {"caption": "a", "frames[13].clip": [1.0], "frames[2].label": "x"}
    assert to_wire(keys) == {
        "caption": "a",
        "$encord": {"frame_metadata": {"2": {"label": "x"}, "13": {"clip": [1.0]}}},
    }


def test_frames_to_keys_orders_frames_numerically() -> None:
    assert list(frames_to_keys({10: {"a": 1}, 9: {"b": 2, "a": 3}})) == [
        "frames[9].b",
        "frames[9].a",
        "frames[10].a",
    ]


@pytest.mark.parametrize(
    "wire",
    [
        {"$encord": "opaque"},
        {"$encord": {"frame_metadata": {"007": {"a": 1}}}},
        {"$encord": {"frame_metadata": {"1": "not a mapping"}}},
        {"$encord": {"frame_metadata": {"1": {"a": 1}, "2": {}}}},
        {"$encord": {"frame_metadata": ["a"]}},
        {"$encord": {"no_frames": True}},
        {"plain": 1},
    ],
)
def test_unmappable_wire_is_left_exactly_as_it_is(wire: dict[str, JsonValue]) -> None:
    assert to_keys(wire) == wire
    assert to_wire(to_keys(wire)) == wire


def test_frame_keys_beside_an_opaque_encord_value_are_refused() -> None:
    with pytest.raises(
        ValueError, match=r"cannot write per-frame metadata: '\$encord' holds str, not a mapping"
    ):
        to_wire({"$encord": "opaque", "frames[1].a": 1})


_VALUES: list[JsonValue] = [1, 2.5, "s", None, True, [1, 2], {"k": "v"}]


def _value(rng: random.Random) -> JsonValue:
    return rng.choice(_VALUES)


def test_randomized_round_trips() -> None:
    rng = random.Random(20261201)
    for _ in range(2000):
        wire: dict[str, JsonValue] = {f"k{i}": _value(rng) for i in range(rng.randrange(4))}
        if rng.random() < 0.8:
            root: dict[str, JsonValue] = {}
            if rng.random() < 0.3:
                root["other"] = _value(rng)
            frames: dict[str, JsonValue] = {}
            for _ in range(rng.randrange(4)):
                frames[str(rng.randrange(50))] = {f"f{j}": _value(rng) for j in range(rng.randrange(3))}
            root["frame_metadata"] = frames
            wire["$encord"] = root
        keys = to_keys(wire)
        assert to_wire(keys) == wire
        assert to_keys(to_wire(keys)) == keys


def test_base_key_frame_number_and_plan_order() -> None:
    from reconciler.frames import base_key, frame_number, plan_order

    assert [base_key(k) for k in ("frames[13].clip", "clip", "frames[013].clip")] == [
        "clip",
        "clip",
        "frames[013].clip",
    ]
    assert [frame_number(n) for n in ("0", "13", "-1", "1.5", "abc", "013", "")] == [
        0,
        13,
        None,
        None,
        None,
        None,
        None,
    ]
    keys = ["frames[13].clip", "label", "frames[7].clip", "frames[7].a", "a", "frames"]
    assert sorted(keys, key=plan_order) == [
        "a",
        "frames",
        "frames[7].a",
        "frames[7].clip",
        "frames[13].clip",
        "label",
    ]
    plain = ["b", "a", "frames[x", "c.d", "frames"]
    assert sorted(plain, key=plan_order) == sorted(plain)  # other keys: exactly string order


def test_raw_to_keys_decodes_only_what_may_hold_frames() -> None:
    from reconciler.frames import raw_to_keys

    plain = '{"a": 1, "b": "\\u00e9"}'
    assert raw_to_keys(plain) is plain  # escaped, decoded, no $encord: the text itself
    assert raw_to_keys('{"a": 1}') == '{"a": 1}'
    assert raw_to_keys('{"$encord": {"frame_metadata": {"1": {"k": 2}}}}') == {"frames[1].k": 2}
    # An escaped spelling of the wire root is found too.
    assert raw_to_keys('{"\\u0024encord": {"frame_metadata": {"1": {"k": 2}}}}') == {"frames[1].k": 2}
    assert raw_to_keys('{"$encord": 1') == '{"$encord": 1'  # not JSON: left for the planner to report


def test_split_frame_keys() -> None:
    from reconciler.frames import split_frame_keys

    assert split_frame_keys({"frames[13].b": 1, "a": 2, "frames[2].c": 3, "frames[13].a": 4}) == (
        {"a": 2},
        {2: {"c": 3}, 13: {"b": 1, "a": 4}},
    )
    assert list(split_frame_keys({"frames[13].b": 1, "frames[2].c": 3})[1]) == [2, 13]
