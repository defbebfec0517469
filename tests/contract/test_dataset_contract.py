"""Datasets (Encord's legacy data units) on every store: read with their metadata, written through the storage
API when a row has a backing item and through the per-row call otherwise (SPEC §7b)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.apply import FileStatus, apply_plan
from reconciler.errors import ManifestValidationError, ProviderConflictError
from reconciler.model import FileManifest, LiveDataRow, LiveDataset
from reconciler.plan.model import DatasetRef, KeyAction, KeyChange
from reconciler.plan.planner import make_plan
from reconciler.snapshot import Snapshot, SnapshotDataRow, SnapshotDataset
from tests.helpers.desired import desired, manifest, sel
from tests.helpers.states import make_snapshot, uid

DS = "5a1f0c3e-0000-4000-8000-0000000000d1"
ORPHAN = "0f0f0f0f-1111-4222-8333-444444444401"


def dataset_state() -> Snapshot:
    snap = make_snapshot({"cams": [("a.jpg", {"k": 1}), ("b.jpg", {})]})
    snap.datasets = [
        SnapshotDataset(
            DS,
            "cams dataset",
            [
                SnapshotDataRow("dh-b", "b.jpg", "IMAGE", uid("item:cams/b.jpg")),
                SnapshotDataRow("dh-a", "a.jpg", "IMAGE", uid("item:cams/a.jpg")),
                SnapshotDataRow(ORPHAN, "legacy.png", "IMAGE", None, {"old": True}),
            ],
        )
    ]
    return snap


def test_a_dataset_reads_with_each_rows_metadata_in_order(make_provider):
    p = make_provider(dataset_state())
    assert p.read_dataset(DS) == LiveDataset(
        DS,
        "cams dataset",
        [
            LiveDataRow("dh-b", "b.jpg", "IMAGE", uid("item:cams/b.jpg"), {}),
            LiveDataRow("dh-a", "a.jpg", "IMAGE", uid("item:cams/a.jpg"), {"k": 1}),
            LiveDataRow(ORPHAN, "legacy.png", "IMAGE", None, {"old": True}),
        ],
    )


def test_an_unknown_dataset_is_a_conflict_error(make_provider):
    p = make_provider(dataset_state())
    with pytest.raises(ProviderConflictError):
        p.read_dataset("no-such-dataset")


def test_a_backed_row_is_its_items_metadata_written_through_the_storage_api(make_provider):
    p = make_provider(dataset_state())
    a = uid("item:cams/a.jpg")
    assert p.patch_items({a: {"k": 2, "new": "x"}}) == {a: None}
    assert p.read_dataset(DS).rows[1].metadata == {"k": 2, "new": "x"}


def test_rows_without_a_backing_item_are_written_one_call_each(make_provider):
    p = make_provider(dataset_state())
    before = p.stats.writes
    assert p.write_data_rows(DS, {ORPHAN: {"new": 1}}) == {ORPHAN: None}
    assert p.stats.writes == before + 1
    assert p.read_dataset(DS).rows[2].metadata == {"new": 1}
    result = p.write_data_rows(DS, {"dh-unknown": {}})
    assert list(result) == ["dh-unknown"] and result["dh-unknown"] is not None


def test_a_store_that_cannot_list_datasets_says_so(make_provider):
    p = make_provider(dataset_state())
    if p.capabilities.lists_datasets:
        assert p.list_datasets() == [(DS, "cams dataset")]
    else:
        from reconciler.errors import ProviderError

        with pytest.raises(ProviderError, match="--dataset HASH"):
            p.list_datasets()


def dataset_manifest(path: str, *selectors, mode: str = "merge") -> FileManifest:
    return replace(manifest(path, "", *selectors, mode=mode), dataset=DS)


def test_plan_apply_plan_on_a_dataset(make_provider):
    p = make_provider(dataset_state())
    d = desired(dataset_manifest("d.yaml", sel("glob", "*.jpg", k=5), sel("name", "legacy.png", old=False)))
    plan = make_plan(d, p)
    assert [(f.uuid, f.folder, f.name, f.dataset, f.changes) for f in plan.files] == [
        (
            uid("item:cams/a.jpg"),
            "cams dataset",
            "a.jpg",
            DatasetRef(DS, "cams dataset", "dh-a", uid("item:cams/a.jpg")),
            (KeyChange("k", KeyAction.UPDATE, 1, 5),),
        ),
        (
            uid("item:cams/b.jpg"),
            "cams dataset",
            "b.jpg",
            DatasetRef(DS, "cams dataset", "dh-b", uid("item:cams/b.jpg")),
            (KeyChange("k", KeyAction.ADD, None, 5),),
        ),
        (
            ORPHAN,
            "cams dataset",
            "legacy.png",
            DatasetRef(DS, "cams dataset", ORPHAN, None),
            (KeyChange("old", KeyAction.UPDATE, True, False),),
        ),
    ]
    assert plan.data_row_writes == 1
    result = apply_plan(plan, p)
    assert [r.status for r in result.files] == [FileStatus.WRITTEN] * 3
    assert [r.metadata for r in p.read_dataset(DS).rows] == [{"k": 5}, {"k": 5}, {"old": False}]
    assert not make_plan(d, p).has_changes


def test_a_dataset_and_a_folder_manifest_owning_one_key_conflict(make_provider):
    p = make_provider(dataset_state())
    d = desired(
        dataset_manifest("d.yaml", sel("name", "a.jpg", k=2)),
        manifest("f.yaml", "cams", sel("glob", "*.jpg", k=3)),
    )
    with pytest.raises(ManifestValidationError) as info:
        make_plan(d, p)
    assert [str(x) for x in info.value.issues] == [
        "f.yaml:1:1: conflict: d.yaml and f.yaml both own key 'k' on cams dataset/a.jpg"
    ]
