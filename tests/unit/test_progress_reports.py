"""The long phases report through the hooks with the labels of ``reconciler.progress`` (the CLI draws them:
tests/e2e/test_progress.py). Exact sequences, recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import progress
from reconciler.apply import check_stale
from reconciler.errors import SourceLocation
from reconciler.plan.planner import make_plan
from reconciler.plan.renames import Rename, scan_old_keys
from reconciler.providers import sqlite
from reconciler.providers.base import Capabilities
from reconciler.providers.sqlite import SqliteProvider
from reconciler.snapshot import write_snapshot
from tests.helpers.desired import desired, manifest, sel
from tests.helpers.states import make_snapshot

Report = tuple[str, int, "int | None"]


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Report] = []

    def on_progress(self, stage: str, done: int, total: int | None) -> None:
        self.seen.append((stage, done, total))


def seeded(tmp_path: Path, rec: Recorder | None = None) -> SqliteProvider:
    snap = make_snapshot(
        {"cams": [(f"c{i}.jpg", {"old": i}) for i in range(5)], "other": [("d.jpg", {"old": 9})]}
    )
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    return SqliteProvider(
        tmp_path / "live.db",
        seed=tmp_path / "seed.json",
        on_progress=rec.on_progress if rec else progress.no_progress,
    )


def test_seeding_reports_the_files_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite, "SEED_PROGRESS_EVERY", 2)
    rec = Recorder()
    seeded(tmp_path, rec).close()
    stage = "seeding live.db from seed.json"
    assert progress.seeding(tmp_path / "live.db", tmp_path / "seed.json") == stage
    assert rec.seen == [(stage, 0, None), (stage, 0, 6), (stage, 2, 6), (stage, 4, 6), (stage, 6, 6)]
    rec.seen.clear()
    SqliteProvider(tmp_path / "live.db", seed=tmp_path / "seed.json", on_progress=rec.on_progress).close()
    assert rec.seen == []  # an existing database is not seeded again


def test_folder_resolution_then_reading_and_planning(tmp_path: Path) -> None:
    p = seeded(tmp_path)
    rec = Recorder()
    d = desired(
        manifest("a.yaml", "cams", sel("glob", "*.jpg", path="a.yaml", k=1)), manifest("b.yaml", "other")
    )
    make_plan(d, p, hooks=rec)
    assert rec.seen == [
        (progress.RESOLVING_FOLDERS, 0, 2),
        (progress.RESOLVING_FOLDERS, 1, 2),
        (progress.RESOLVING_FOLDERS, 2, 2),
        (progress.reading("cams"), 0, None),
        (progress.reading("cams"), 5, 5),
        (progress.reading("other"), 0, None),
        (progress.reading("other"), 1, 1),
        (progress.planning("a.yaml"), 0, 5),
        (progress.planning("a.yaml"), 5, 5),
        (progress.planning("b.yaml"), 0, 1),
        (progress.planning("b.yaml"), 0, 1),
    ]


def test_the_rename_scan_reports_every_folder(tmp_path: Path) -> None:
    p = seeded(tmp_path)
    rec = Recorder()
    scan = scan_old_keys(
        p, {"old": Rename("old", "new", SourceLocation("schema.yaml", 3, 3))}, rec.on_progress
    )
    assert len(scan.items) == 6
    assert rec.seen == [(progress.RENAMES, 0, None), (progress.RENAMES, 1, 2), (progress.RENAMES, 2, 2)]


def test_the_precheck_reports_the_files_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = seeded(tmp_path)
    plan = make_plan(desired(manifest("a.yaml", "cams", sel("glob", "*.jpg", path="a.yaml", k=1))), p)
    assert len(plan.files) == 5
    monkeypatch.setattr(SqliteProvider, "capabilities", Capabilities(max_batch=2, raw_listing=True))
    rec = Recorder()
    check_stale(plan, p, rec.on_progress)
    stage = progress.PRECHECK
    assert rec.seen == [(stage, 0, 5), (stage, 2, 5), (stage, 4, 5), (stage, 5, 5)]
