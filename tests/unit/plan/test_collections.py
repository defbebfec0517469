"""A plan runs the cyclic garbage collector less often (``planner.fewer_collections``), and only while it runs."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from reconciler.plan import planner
from reconciler.plan.planner import PLAN_GC_THRESHOLD, fewer_collections, make_plan
from reconciler.providers.sqlite import SqliteProvider
from reconciler.snapshot import write_snapshot
from tests.helpers.desired import desired, manifest, sel
from tests.helpers.states import make_snapshot


def test_the_threshold_is_raised_inside_and_restored_after_even_on_error() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == (max(before[0], PLAN_GC_THRESHOLD), *before[1:])
        assert gc.isenabled()
    assert gc.get_threshold() == before
    with pytest.raises(KeyError), fewer_collections():
        raise KeyError("x")
    assert gc.get_threshold() == before


def test_a_higher_threshold_set_by_the_caller_is_kept() -> None:
    before = gc.get_threshold()
    gc.set_threshold(PLAN_GC_THRESHOLD * 3, *before[1:])
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == PLAN_GC_THRESHOLD * 3
        assert gc.get_threshold()[0] == PLAN_GC_THRESHOLD * 3
    finally:
        gc.set_threshold(*before)


def test_make_plan_lists_and_plans_under_the_raised_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = make_snapshot({"f": [("a.jpg", {"n": 1})]})
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    seen: list[int] = []
    original = planner.plan_files  # type: ignore[attr-defined]  # (imported there)

    def recording(*args: object, **kwargs: object) -> object:
        seen.append(gc.get_threshold()[0])
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(planner, "plan_files", recording)
    before = gc.get_threshold()
    provider = SqliteProvider(tmp_path / "live.db", seed=tmp_path / "seed.json")
    try:
        m = manifest("m.yaml", "f", sel("name", "a.jpg", n=2))
        plan = make_plan(desired(m, root=str(tmp_path)), provider)
    finally:
        provider.close()
    assert [f.name for f in plan.files] == ["a.jpg"]
    assert seen == [max(before[0], PLAN_GC_THRESHOLD)]
    assert gc.get_threshold() == before
