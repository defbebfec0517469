"""The legacy v1 dataset calls (encord-api.md §6) against the emulator, through the official SDK unchanged.

A data row with a backing item has one metadata value, shared with that storage item: what the SDK writes
through ``DataRow.save()`` is what the storage API (and reconciler) reads back, and the reverse.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.snapshot import (
    Snapshot,
    SnapshotDataRow,
    SnapshotDataset,
    SnapshotError,
    read_snapshot,
    write_snapshot,
)
from reconciler.testing import Emulator
from reconciler.types import JsonValue
from tests.emulator.conftest import IDS, TOKEN, standard_state

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from encord.exceptions import AuthenticationError, AuthorisationError
    from encord.orm.dataset import DatasetAccessSettings
    from encord.user_client import EncordUserClient

DS = "5a1f0c3e-0000-4000-8000-00000000d5e7"
ORPHAN = "0f0f0f0f-1111-4222-8333-444444444444"


def with_dataset() -> Snapshot:
    snap = standard_state()
    snap.datasets = [
        SnapshotDataset(
            DS,
            "cams dataset",
            [
                SnapshotDataRow("dh-a", "a.jpg", "IMAGE", IDS.a),
                SnapshotDataRow("dh-b", "b.mp4", "VIDEO", IDS.b),
                SnapshotDataRow(ORPHAN, "legacy.png", "IMAGE", None, {"old": True}),
            ],
        )
    ]
    return snap


@pytest.fixture
def dsemu(ed_key: tuple[str, str]) -> Iterator[Emulator]:
    with Emulator(with_dataset(), authorized_keys=[ed_key[1]], tokens=[TOKEN]) as emu:
        yield emu


@pytest.fixture
def client(dsemu: Emulator, ed_key: tuple[str, str]) -> EncordUserClient:
    return EncordUserClient.create_with_ssh_private_key(ed_key[0], domain=dsemu.url)


def _item_md(emu: Emulator, uuid: str) -> dict[str, JsonValue]:
    return next(i.metadata for i in emu.snapshot().items if i.uuid == uuid)


def test_get_dataset_without_and_with_client_metadata(client, dsemu):
    dataset = client.get_dataset(DS)
    assert dataset.title == "cams dataset"
    rows = dataset.data_rows
    assert [(r.uid, r.title, r.client_metadata) for r in rows] == [
        ("dh-a", "a.jpg", None),
        ("dh-b", "b.mp4", None),
        (ORPHAN, "legacy.png", None),
    ]
    dataset.set_access_settings(DatasetAccessSettings(fetch_client_metadata=True))
    rows = dataset.data_rows
    assert [dict(r.client_metadata) for r in rows] == [{}, {"capture.weather": "rain", "n": 1}, {"old": True}]
    assert [str(r.backing_item_uuid) for r in rows[:2]] == [IDS.a, IDS.b]
    assert dsemu.request_counts()["by_route"] == {"POST public dataset GET": 2}


def test_list_data_rows_title_eq(client):
    dataset = client.get_dataset(DS, DatasetAccessSettings(fetch_client_metadata=True))
    rows = dataset.list_data_rows(title_eq="b.mp4")
    assert [(r.uid, dict(r.client_metadata)) for r in rows] == [("dh-b", {"capture.weather": "rain", "n": 1})]
    assert dataset.list_data_rows(title_eq="nope.jpg") == []
    assert [r.uid for r in dataset.list_data_rows(title_like="%.jp_")] == ["dh-a"]


def test_sdk_save_through_a_row_is_read_back_through_the_storage_item(client, dsemu):
    dataset = client.get_dataset(DS, DatasetAccessSettings(fetch_client_metadata=True))
    row = dataset.list_data_rows(title_eq="a.jpg")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        row.client_metadata = {"capture.weather": "sunny", "from": "datarow"}
        row.save()
    assert dict(row.client_metadata) == {"capture.weather": "sunny", "from": "datarow"}
    assert _item_md(dsemu, IDS.a) == {"capture.weather": "sunny", "from": "datarow"}
    item = client.get_storage_item(IDS.a)
    assert item.client_metadata == {"capture.weather": "sunny", "from": "datarow"}
    assert item.backed_data_units_count == 1


def test_storage_write_is_read_back_through_the_data_row(client, dsemu):
    item = client.get_storage_item(IDS.b)
    item.update(client_metadata={"capture.weather": "sunny"})
    dataset = client.get_dataset(DS, DatasetAccessSettings(fetch_client_metadata=True))
    row = dataset.list_data_rows(title_eq="b.mp4")[0]
    assert dict(row.client_metadata) == {"capture.weather": "sunny"}


def test_row_without_backing_item_keeps_its_own_metadata(client, dsemu):
    dataset = client.get_dataset(DS, DatasetAccessSettings(fetch_client_metadata=True))
    row = dataset.list_data_rows(title_eq="legacy.png")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        row.client_metadata = {"new": 1}
        row.save()
    ds = dsemu.snapshot().datasets[0]
    assert ds.rows[2] == SnapshotDataRow(ORPHAN, "legacy.png", "IMAGE", None, {"new": 1})
    assert dsemu.request_counts()["by_route"]["POST public datarow POST"] == 1


def test_bearer_token_works_for_v1(dsemu):
    client = EncordUserClient.create_with_bearer_token(TOKEN, domain=dsemu.url)
    assert client.get_dataset(DS).title == "cams dataset"


def test_errors_come_in_the_envelope(client, dsemu, ed_key):
    with pytest.raises(AuthorisationError):
        client.get_dataset("no-such-dataset")
    other = EncordUserClient.create_with_bearer_token("wrong-token", domain=dsemu.url)
    with pytest.raises(AuthenticationError):
        other.get_dataset(DS)
    answer = httpx.post(
        dsemu.url + "/public",
        content=b'{"query_type": "dataset", "query_method": "GET", "values": {"uid": null, "payload": null}}',
        headers={"ResourceType": "dataset", "ResourceID": DS},
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "status": 401,
        "response": ["AUTHENTICATION_ERROR"],
        "payload": "missing credentials: the v1 API needs an Authorization header",
    }


def test_unknown_data_row_is_resource_not_found(dsemu):
    body = {"query_type": "datarow", "query_method": "GET", "values": {"uid": "nope", "payload": None}}
    answer = httpx.post(
        dsemu.url + "/public",
        json=body,
        headers={"ResourceType": "dataset", "ResourceID": DS, "Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.json() == {
        "status": 404,
        "response": ["RESOURCE_NOT_FOUND_ERROR"],
        "payload": f"no data row 'nope' in dataset '{DS}'",
    }


# ---- the datasets section of snapshots -------------------------------------------------------------


def test_snapshot_datasets_round_trip_json_and_jsonl(tmp_path: Path, dsemu):
    snap = dsemu.snapshot()
    for name in ("s.json", "s.jsonl"):
        path = tmp_path / name
        write_snapshot(path, snap.schema, snap.folders, snap.items, snap.datasets)
        back = read_snapshot(path)
        assert back.datasets == with_dataset().datasets
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["datasets"][0]["rows"][0] == {
        "data_hash": "dh-a",
        "title": "a.jpg",
        "data_type": "IMAGE",
        "backing_item": IDS.a,
    }
    assert dsemu.snapshot().datasets == with_dataset().datasets


def test_snapshot_without_datasets_writes_no_datasets_key(tmp_path: Path):
    path = tmp_path / "s.json"
    write_snapshot(path, {}, [], [])
    assert "datasets" not in json.loads(path.read_text())


def test_emulator_state_endpoint_serves_and_takes_datasets(dsemu):
    state = httpx.get(dsemu.url + "/_emulator/state").json()
    assert state["datasets"][0]["rows"][2] == {
        "data_hash": ORPHAN,
        "title": "legacy.png",
        "data_type": "IMAGE",
        "backing_item": None,
        "client_metadata": {"old": True},
    }
    state["datasets"][0]["title"] = "renamed"
    assert httpx.put(dsemu.url + "/_emulator/state", json=state).status_code == 204
    assert dsemu.snapshot().datasets[0].title == "renamed"


def _doc(rows: list[object], **extra: object) -> dict[str, object]:
    item = {"uuid": IDS.a, "folder": IDS.cams, "name": "a.jpg", "item_type": "image", "client_metadata": {}}
    return {
        "format_version": "1",
        "schema": {},
        "folders": [{"uuid": IDS.cams, "parent": None, "name": "cams"}],
        "items": [item],
        "datasets": [{"hash": "h1", "title": "d", "rows": rows, **extra}],
    }


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([{"title": "x"}], {}, "datasets[0].rows[0]: 'data_hash' must be a non-empty string"),
        (
            [{"data_hash": "a", "title": "x", "data_type": "JPEG"}],
            {},
            "datasets[0].rows[0]: unknown data_type 'JPEG'",
        ),
        (
            [{"data_hash": "a", "title": "x"}, {"data_hash": "a", "title": "y"}],
            {},
            "datasets[0].rows[1]: duplicate data_hash 'a'",
        ),
        (
            [{"data_hash": "a", "title": "x", "backing_item": IDS.b}],
            {},
            f"datasets[0].rows[0]: backing_item {IDS.b} is not an item of this snapshot",
        ),
        (
            [{"data_hash": "a", "title": "x", "backing_item": IDS.a, "client_metadata": {"k": 1}}],
            {},
            "datasets[0].rows[0]: a row with a backing_item has no client_metadata of its own",
        ),
        (
            [{"data_hash": "a", "title": "x", "client_metadata": [1]}],
            {},
            "'client_metadata' must be an object",
        ),
        ([{"data_hash": "a", "title": "x", "colour": 1}], {}, "datasets[0].rows[0]: unknown field 'colour'"),
        ([], {"owner": "me"}, "datasets[0]: unknown field 'owner'"),
        ("rows", {}, "datasets[0].rows: must be an object"),
    ],
)
def test_bad_datasets_sections_are_located_errors(tmp_path: Path, rows, extra, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_doc(rows, **extra)))
    with pytest.raises(SnapshotError) as err:
        read_snapshot(path)
    assert str(err.value).startswith(f"{path}:1: ")
    assert message in str(err.value)


def test_bad_jsonl_data_row_names_its_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    lines = [
        {"record": "header", "format_version": "1"},
        {"record": "dataset", "hash": "h1", "title": "d"},
        {"record": "data_row", "dataset": "h2", "data_hash": "a", "title": "x"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(SnapshotError) as err:
        read_snapshot(path)
    assert str(err.value) == f"{path}:3: line 3: unknown dataset 'h2' (its dataset record comes first)"
