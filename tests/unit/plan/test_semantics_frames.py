"""The ownership rule for per-frame keys (plan/semantics.py): an ``owns`` pattern owns ``frames[N].KEY`` when it
matches the whole key or ``KEY``, and ``frames[F].K`` patterns match the frame number and the key."""

from __future__ import annotations

import pytest

from reconciler.plan.semantics import _patterns_overlap, owns_test


@pytest.mark.parametrize(
    ("pattern", "owned", "not_owned"),
    [
        ("*", ["clip", "frames[13].clip", "$encord"], []),
        ("clip", ["clip", "frames[0].clip", "frames[13].clip"], ["clips", "frames[13].clip2", "label"]),
        ("cap.*", ["cap.x", "frames[2].cap.x"], ["frames[2].label", "capx"]),
        ("frames[*].clip", ["frames[0].clip", "frames[13].clip"], ["clip", "frames[13].label"]),
        (
            "frames[13].*",
            ["frames[13].clip", "frames[13].a.b"],
            ["frames[1].clip", "frames[130].clip", "clip"],
        ),
        ("frames[1?].clip", ["frames[10].clip", "frames[19].clip"], ["frames[1].clip", "frames[100].clip"]),
        ("frames[13].clip", ["frames[13].clip"], ["frames[1].clip", "frames[3].clip", "clip"]),
    ],
)
def test_one_pattern(pattern: str, owned: list[str], not_owned: list[str]) -> None:
    test = owns_test((pattern,))
    assert test is not None
    assert [k for k in owned if test(k)] == owned
    assert [k for k in not_owned if test(k)] == []


def test_any_of_several_patterns_and_none_without_patterns() -> None:
    assert owns_test(()) is None
    test = owns_test(("label", "frames[*].clip"))
    assert test is not None
    keys = ["label", "clip", "frames[2].label", "frames[2].clip", "x"]
    assert [k for k in keys if test(k)] == ["label", "frames[2].label", "frames[2].clip"]


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("clip", "frames[*].clip", True),
        ("clip", "frames[13].label", False),
        ("frames[1].clip", "frames[2].clip", False),
        ("frames[*].clip", "frames[2].*", True),
        ("cap.*", "frames[*].cap.x", True),
        ("a", "b", False),
        ("*", "frames[3].x", True),
    ],
)
def test_offline_pattern_overlap(a: str, b: str, overlap: bool) -> None:
    assert (_patterns_overlap(a, b), _patterns_overlap(b, a)) == (overlap, overlap)
