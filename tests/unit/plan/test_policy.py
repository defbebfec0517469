from __future__ import annotations

import pytest

from reconciler.errors import SourceLocation
from reconciler.model import Assignment
from reconciler.plan.policy import compile_glob
from reconciler.plan.semantics import CompiledManifest, plain_values
from reconciler.types import JsonValue
from tests.helpers.desired import manifest

L = SourceLocation("m.yaml", 1, 1)


def given(**kv):
    return {k.replace("__", "."): Assignment(v, L) for k, v in kv.items()}


@pytest.mark.parametrize(
    ("pattern", "name", "hit"),
    [
        ("cam*.mp4", "cam01.mp4", True),
        ("cam*.mp4", "sub/cam01.mp4", False),
        ("**/cam*.mp4", "sub/deep/cam01.mp4", True),
        ("**/cam*.mp4", "cam01.mp4", True),
        ("scan-07/*", "scan-07/a.png", True),
        ("scan-07/*", "scan-07", False),
        ("img-00[1-3].jpg", "img-002.jpg", True),
        ("img-00[!1-3].jpg", "img-002.jpg", False),
        ("a?c", "a/c", False),
        ("weird(name).jpg", "weird(name).jpg", True),
    ],
)
def test_glob(pattern, name, hit):
    assert bool(compile_glob(pattern).match(name)) is hit


def compile_(mode: str, owns: tuple[str, ...] = ()) -> CompiledManifest:
    return CompiledManifest(manifest("m.yaml", "f", mode=mode, owns=owns))


def test_merge_without_owns_touches_only_given_keys():
    live: dict[str, JsonValue] = {"a": 1, "foreign": "x", "b": 2}
    g = plain_values(given(a=5, b=None))
    c = compile_("merge")
    assert c.owned(g, live) == frozenset({"a", "b"})
    assert c.desired(g, live) == {"a": 5, "foreign": "x"}


def test_merge_with_owns_prunes_owned_keys_without_values():
    live: dict[str, JsonValue] = {"capture.site": "x", "capture.old": 1, "team.b": "keep"}
    g = plain_values(given(capture__site="london"))
    c = compile_("merge", ("capture.*",))
    assert c.owned(g, live) == frozenset({"capture.site", "capture.old"})
    assert c.desired(g, live) == {"capture.site": "london", "team.b": "keep"}


def test_overwrite_is_exactly_the_given_non_null_values():
    g = plain_values(given(a=1, b=None))
    c = compile_("overwrite")
    assert c.owned(g, {"z": 1}) is None
    assert c.desired(g, {"z": 1, "a": 0}) == {"a": 1}
