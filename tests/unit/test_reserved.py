"""reserved: the shapes of ``config``, ``keyframes`` (by keyframe mode) and ``$encord``, with the exact messages."""

from __future__ import annotations

import pytest

from reconciler.model import KeyframeMode
from reconciler.reserved import (
    ReservedProblem,
    check_config,
    check_keyframes,
    check_reserved,
    first_problem,
    is_reserved,
    keyframe_mode,
)
from reconciler.types import JsonValue


@pytest.mark.parametrize(
    ("value", "mode", "message"),
    [
        ([0, 13, 17], "frame", None),
        ([60, 0, 30], "frame", None),  # any order: kept as written
        ([3, 3], "frame", None),
        ([], "frame", None),
        (None, "frame", None),
        ([1.5, 3.0], "seconds", None),
        ([2, 0.5], "seconds", None),
        ("13", "frame", "keyframes: expected a list of frame numbers, got the string '13'"),
        ("13", "seconds", "keyframes: expected a list of times in seconds, got the string '13'"),
        (
            [-1],
            "frame",
            "keyframes: item 0 must be a non-negative integer frame number (keyframe_mode: frame), "
            "got the number -1",
        ),
        (
            [1, 1.5],
            "frame",
            "keyframes: item 1 must be a non-negative integer frame number (keyframe_mode: frame), "
            "got the number 1.5",
        ),
        (
            [True],
            "frame",
            "keyframes: item 0 must be a non-negative integer frame number (keyframe_mode: frame), "
            "got the boolean true",
        ),
        (
            [0.5, -1],
            "seconds",
            "keyframes: item 1 must be a non-negative number of seconds (keyframe_mode: seconds), "
            "got the number -1",
        ),
        (
            [float("inf")],
            "seconds",
            "keyframes: item 0 must be a non-negative number of seconds (keyframe_mode: seconds), "
            "got the number inf",
        ),
        (
            ["1"],
            "seconds",
            "keyframes: item 0 must be a non-negative number of seconds (keyframe_mode: seconds), "
            "got the string '1'",
        ),
    ],
)
def test_keyframes(value: JsonValue, mode: KeyframeMode, message: str | None) -> None:
    problem = check_keyframes(value, mode)
    assert (problem.message if problem else None) == message


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({}, None),
        ({"sampling_rate": 0}, None),
        ({"sampling_rate": 2.5, "keyframe_mode": "seconds"}, None),
        ({"keyframe_mode": "frame"}, None),
        (
            3,
            ReservedProblem(
                "config", "config: expected a mapping (sampling_rate, keyframe_mode), got the number 3"
            ),
        ),
        (
            {"keyframe_mode": "secs"},
            ReservedProblem(
                "config",
                "config.keyframe_mode: invalid value 'secs' (expected one of frame, seconds); did you mean 'seconds'?",
                ("keyframe_mode",),
            ),
        ),
        (
            {"keyframe_mode": 1},
            ReservedProblem(
                "config",
                "config.keyframe_mode: invalid value the number 1 (expected one of frame, seconds)",
                ("keyframe_mode",),
            ),
        ),
        (
            {"sampling_rate": -1},
            ReservedProblem("config", "config.sampling_rate must be at least 0, got -1", ("sampling_rate",)),
        ),
        (
            {"sampling_rate": "1"},
            ReservedProblem(
                "config",
                "config.sampling_rate: expected a number (frames per second), got the string '1'",
                ("sampling_rate",),
            ),
        ),
        (
            {"sampling_rate": True},
            ReservedProblem(
                "config",
                "config.sampling_rate: expected a number (frames per second), got the boolean true",
                ("sampling_rate",),
            ),
        ),
        (
            {"sample_rate": 1},
            ReservedProblem(
                "config",
                "config: unknown field 'sample_rate' (allowed fields: keyframe_mode, sampling_rate); "
                "did you mean 'sampling_rate'?",
                ("sample_rate",),
                at_key=True,
            ),
        ),
        (
            {"fps": 1},
            ReservedProblem(
                "config",
                "config: unknown field 'fps' (allowed fields: keyframe_mode, sampling_rate)",
                ("fps",),
                at_key=True,
            ),
        ),
    ],
)
def test_config(value: JsonValue, problem: ReservedProblem | None) -> None:
    assert check_config(value) == problem


def test_keyframe_mode_of_a_config() -> None:
    assert keyframe_mode(None) == "frame"
    assert keyframe_mode({"keyframe_mode": "seconds"}) == "seconds"
    assert keyframe_mode({"sampling_rate": 1}, "seconds") == "seconds"
    assert keyframe_mode({"keyframe_mode": "secs"}, "seconds") == "seconds"


def test_keyframes_follow_the_config_of_their_scope_else_the_inherited_mode() -> None:
    assert first_problem({"config": {"keyframe_mode": "seconds"}, "keyframes": [1.5]}) is None
    assert first_problem({"keyframes": [1.5]}, "seconds") is None
    assert first_problem({"config": {"keyframe_mode": "frame"}, "keyframes": [1.5]}, "seconds") == (
        "keyframes: item 0 must be a non-negative integer frame number (keyframe_mode: frame), got the number 1.5"
    )
    assert first_problem({"keyframes": [1.5], "other": "x"}) is not None


def test_every_problem_of_a_scope() -> None:
    problems = list(check_reserved({"config": {"sampling_rate": -1}, "keyframes": [-1], "$encord": 1}))
    assert [p.key for p in problems] == ["config", "keyframes", "$encord"]
    assert problems[2].message == "$encord: expected a mapping, got the number 1"
    assert list(check_reserved({"$encord": {"frame_metadata": {}}, "config": None, "keyframes": None})) == []


def test_reserved_keys() -> None:
    assert [k for k in ("config", "keyframes", "$encord", "frames.x", "Config") if is_reserved(k)] == [
        "config",
        "keyframes",
        "$encord",
    ]


def test_check_frames_shapes() -> None:
    from reconciler.reserved import check_frames, frame_key_problem

    assert list(check_frames({"0": {"a": 1}, "13": {"clip": [1]}})) == []
    assert list(check_frames(None)) == []
    got = [(p.message, p.path, p.at_key) for p in check_frames({"-1": {}, "13": [1], "2": {"config": {}}})]
    assert got == [
        ("frames: '-1' is not a frame number (a non-negative integer such as 0 or 13)", ("-1",), True),
        ("frames.13: expected a mapping of metadata keys to values, got a list of 1 item(s)", ("13",), False),
        (
            "frames.2: 'config' is a reserved key of the whole file, not a per-frame key",
            ("2", "config"),
            True,
        ),
    ]
    assert [p.message for p in check_frames([1])] == [
        "frames: expected a mapping of frame numbers to metadata, got a list of 1 item(s)"
    ]
    assert frame_key_problem("clip") is None
    assert frame_key_problem("frames[1].clip") == (
        "key 'frames[1].clip': per-frame values are written under frames: (frames: {13: {clip: ...}})"
    )
