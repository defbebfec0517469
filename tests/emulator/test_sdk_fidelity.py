"""The official Encord SDK (encord==0.1.211), unchanged, against the emulator.

Each test drives the SDK the way Encord's documentation scripts do and asserts what the emulator stored
and how many requests of each route it received (encord-api.md §9).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from uuid import UUID

import pytest

from reconciler.model import LiveFolder, LiveItem
from reconciler.snapshot import Snapshot
from reconciler.testing import Emulator
from tests.emulator.conftest import IDS, SCHEMA, standard_state, uid
from tests.helpers.keys import make_ed25519_key

# encord 0.1.211 trips a pydantic 2.12 deprecation warning at import time; pytest turns warnings into errors.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from encord.exceptions import AuthenticationError, AuthorisationError, RateLimitExceededError
    from encord.http.bundle import Bundle
    from encord.http.constants import RequestsSettings
    from encord.orm.storage import StorageItemType
    from encord.user_client import EncordUserClient

LIST_ITEMS = "GET storage/folders/{uuid}/items"
PATCH_BULK = "PATCH storage/items/patch-bulk"


@pytest.fixture
def client(emu: Emulator, ed_key: tuple[str, str]) -> EncordUserClient:
    return EncordUserClient.create_with_ssh_private_key(ed_key[0], domain=emu.url)


def cams_with(n: int) -> Snapshot:
    """traffic/cams with n images named f0000.jpg ... (metadata {"i": n})."""
    traffic, cams = uid("folder:traffic"), uid("folder:traffic/cams")
    return Snapshot(
        folders=[
            LiveFolder(traffic, None, "traffic", "traffic"),
            LiveFolder(cams, traffic, "cams", "traffic/cams"),
        ],
        items=[LiveItem(uid(f"item:cams/{i}"), cams, f"f{i:04}.jpg", "image", {"i": i}) for i in range(n)],
    )


@pytest.fixture
def cams250(emu: Emulator) -> Iterator[str]:
    emu.load(cams_with(250))
    emu.reset_counts()
    yield uid("folder:traffic/cams")


# ---- metadata schema ---------------------------------------------------------------------------------


def test_schema_edit_save_and_reload(client, emu):
    emu.load(Snapshot())
    schema = client.metadata_schema()
    assert list(schema.keys()) == []
    schema.add_scalar("capture.time", data_type="datetime")
    schema.add_scalar("caption", data_type="long_string")
    schema.add_enum("capture.weather", values=["sunny", "Rain"])
    schema.add_enum_options("capture.weather", values=["snow"])
    schema.add_embedding("clip", size=8)
    schema.add_scalar("legacy.note", data_type="varchar")
    schema.delete_key("legacy.note")
    schema.save()
    assert emu.snapshot().schema == {
        "capture.time": {"ty": "variant", "hint": "datetime"},
        "caption": {"ty": "variant", "hint": "text"},
        "capture.weather": {"ty": "enum", "values": ["Rain", "snow", "sunny"]},
        "clip": {"ty": "embedding", "size": 8, "api": None},
        "legacy.note": {"ty": "tombstone", "deleted_ty": {"ty": "variant", "hint": "varchar"}},
    }

    reloaded = client.metadata_schema()
    assert list(reloaded.keys()) == ["capture.time", "caption", "capture.weather", "clip", "legacy.note"]
    assert reloaded.is_key_deleted("legacy.note")
    assert reloaded.get_key_type("capture.weather") == "enum"
    reloaded.restore_key("legacy.note")
    reloaded.delete_key("clip", hard=True)
    reloaded.save()
    assert emu.snapshot().schema == {
        "capture.time": {"ty": "variant", "hint": "datetime"},
        "caption": {"ty": "variant", "hint": "text"},
        "capture.weather": {"ty": "enum", "values": ["Rain", "snow", "sunny"]},
        "clip": {"ty": "tombstone", "deleted_ty": None},
        "legacy.note": {"ty": "variant", "hint": "varchar"},
    }
    client.metadata_schema().save()  # nothing changed: no POST
    assert emu.request_counts()["by_route"] == {
        "GET organisation/client-metadata-schema-v2": 3,
        "POST organisation/client-metadata-schema-v2": 2,
    }


def test_schema_from_the_state_is_read(client):
    schema = client.metadata_schema()
    assert list(schema.keys()) == list(SCHEMA)
    assert schema.get_key_type("capture.weather") == "enum"


# ---- folders and items -------------------------------------------------------------------------------


def test_folders(client, emu):
    top = list(client.list_storage_folders())
    assert [f.name for f in top] == ["archive", "traffic"]
    traffic = top[1]
    assert (traffic.uuid, traffic.parent_uuid, traffic.client_metadata) == (UUID(IDS.traffic), None, None)
    assert [f.name for f in traffic.list_subfolders()] == ["cams"]
    assert [f.name for f in traffic.find_subfolders()] == ["cams", "night"]
    night = client.get_storage_folder(IDS.night)
    assert [p.name for p in night.path_to_root] == ["night", "cams", "traffic"]
    assert night.parent_uuid == UUID(IDS.cams)
    assert [f.name for f in client.find_storage_folders(search="am")] == ["cams"]
    with pytest.raises(AuthorisationError):
        client.get_storage_folder(uid("folder:missing"))


def test_listing_250_items_takes_three_pages(client, emu, cams250):
    folder = client.get_storage_folder(cams250)
    items = list(folder.list_items())
    assert [i.name for i in items] == [f"f{i:04}.jpg" for i in range(250)]
    assert items[17].client_metadata == {"i": 17}
    assert items[17].item_type is StorageItemType.IMAGE
    assert items[17].parent_folder_uuid == UUID(cams250)
    assert emu.request_counts() == {
        "total": 4,
        "by_route": {"GET storage/folders/{uuid}": 1, LIST_ITEMS: 3},
    }
    emu.reset_counts()
    assert len(list(folder.list_items(page_size=1000))) == 250
    assert emu.request_counts()["by_route"] == {LIST_ITEMS: 1}


def test_list_items_resolving_metadata_locally(client, emu):
    folder = client.get_storage_folder(IDS.cams)
    items = list(folder.list_items(resolve_client_metadata_locally=True, page_size=3))
    assert [(i.name, i.client_metadata) for i in items] == [
        ("a.jpg", {}), ("b.mp4", {"capture.weather": "rain", "n": 1}), ("c.jpg", {"note": "é"}),
        ("scan-07", {"kind": "group"}),
    ]  # fmt: skip
    assert emu.request_counts()["by_route"] == {"GET storage/folders/{uuid}": 1, LIST_ITEMS: 2}


def test_find_items(client, emu):
    cams = client.get_storage_folder(IDS.cams)
    assert [i.name for i in cams.find_items(search=".jpg")] == ["a.jpg", "c.jpg", "n1.jpg"]
    assert [i.name for i in cams.find_items(item_types=[StorageItemType.VIDEO])] == ["b.mp4"]


def test_bundled_update_sends_one_patch_bulk(client, emu, cams250):
    folder = client.get_storage_folder(cams250)
    items = list(folder.list_items())
    emu.reset_counts()
    with Bundle() as bundle:
        for item in items:
            md = item.client_metadata
            md["capture.site"] = "london" if md["i"] % 2 else "paris"
            item.update(client_metadata=md, bundle=bundle)
    assert emu.request_counts() == {"total": 1, "by_route": {PATCH_BULK: 1}}
    stored = {i.name: i.metadata for i in emu.snapshot().items}
    assert stored["f0003.jpg"] == {"i": 3, "capture.site": "london"}
    assert stored["f0004.jpg"] == {"i": 4, "capture.site": "paris"}
    assert items[3].client_metadata == {"i": 3, "capture.site": "london"}  # refreshed from the answer


def test_bundle_size_splits_patch_bulk(client, emu, cams250):
    items = list(client.get_storage_folder(cams250).list_items(page_size=1000))
    emu.reset_counts()
    with Bundle(bundle_size=100) as bundle:
        for item in items:
            item.update(client_metadata={"n": 1}, bundle=bundle)
    assert emu.request_counts() == {"total": 3, "by_route": {PATCH_BULK: 3}}
    assert {str(i.metadata) for i in emu.snapshot().items} == {"{'n': 1}"}


def test_get_then_update_without_bundle(client, emu):
    item = client.get_storage_item(IDS.b)
    md = item.client_metadata
    md["capture.weather"] = "sunny"
    item.update(client_metadata=md)
    assert item.client_metadata == {"capture.weather": "sunny", "n": 1}
    assert next(i.metadata for i in emu.snapshot().items if i.uuid == IDS.b) == {
        "capture.weather": "sunny",
        "n": 1,
    }
    assert emu.request_counts()["by_route"] == {
        "GET storage/items/{uuid}": 1,
        "PATCH storage/folders/{uuid}/items/{uuid}": 1,
    }


def test_get_storage_items(client, emu):
    items = client.get_storage_items([IDS.c, IDS.a, IDS.child2])
    assert [(i.name, i.client_metadata) for i in items] == [
        ("c.jpg", {"note": "é"}), ("a.jpg", {}), ("img-2.jpg", {"frame": 2}),
    ]  # fmt: skip
    assert emu.request_counts()["by_route"] == {"POST storage/items/get-bulk": 1}
    with pytest.raises(AuthorisationError):
        client.get_storage_items([IDS.a, uid("item:missing")])


def test_child_items_of_an_image_group(client, emu):
    group = client.get_storage_item(IDS.group)
    assert group.item_type is StorageItemType.IMAGE_GROUP
    children = list(group.get_child_items())
    assert [(c.name, c.client_metadata) for c in children] == [
        ("img-2.jpg", {"frame": 2}), ("img-1.jpg", {"frame": 1}), ("img-3.jpg", {"frame": 3}),
    ]  # fmt: skip
    assert list(client.get_storage_item(IDS.a).get_child_items()) == []  # an image: no request
    assert emu.request_counts()["by_route"] == {
        "GET storage/folders/{uuid}/items/{uuid}/child-items": 1,
        "GET storage/items/{uuid}": 2,
    }


# ---- authentication and errors -----------------------------------------------------------------------


def test_wrong_key_is_refused(emu):
    other, _ = make_ed25519_key()
    stranger = EncordUserClient.create_with_ssh_private_key(other, domain=emu.url)
    with pytest.raises(AuthenticationError):
        stranger.metadata_schema()


def test_encrypted_key_works(ed_key):
    key, pub = make_ed25519_key(password=b"s3cret")
    with Emulator(standard_state(), authorized_keys=[pub]) as emulator:
        c = EncordUserClient.create_with_ssh_private_key(key, password="s3cret", domain=emulator.url)
        assert [f.name for f in c.list_storage_folders()] == ["archive", "traffic"]


def test_bearer_token_flow(client, emu):
    token = client.get_bearer_token()
    bearer = EncordUserClient.create_with_bearer_token(token, domain=emu.url)
    assert [f.name for f in bearer.list_storage_folders()] == ["archive", "traffic"]


def test_sdk_retries_429_honouring_retry_after(emu, ed_key):
    settings = RequestsSettings(max_retries=2)
    client = EncordUserClient.create_with_ssh_private_key(
        ed_key[0], domain=emu.url, requests_settings=settings
    )
    emu.set_faults(rate_429=1, retry_after_s=1)
    start = time.perf_counter()
    with pytest.raises(RateLimitExceededError) as info:
        client.metadata_schema()
    elapsed = time.perf_counter() - start
    assert info.value.retry_after == 1
    assert 2.0 <= elapsed < 2.9  # two waits of Retry-After: 1 s, instead of the 0 s + 3 s backoff
    assert emu.request_counts()["by_route"] == {"GET organisation/client-metadata-schema-v2": 3}


def test_sdk_retries_a_503_then_succeeds(emu, ed_key):
    settings = RequestsSettings(max_retries=3, backoff_factor=0.01)
    client = EncordUserClient.create_with_ssh_private_key(
        ed_key[0], domain=emu.url, requests_settings=settings
    )
    emu.set_faults(rate_503=0.5, seed=1)  # with seed 1 the first draw is a 503, the second is not
    assert [f.name for f in client.list_storage_folders()] == ["archive", "traffic"]
    assert emu.request_counts() == {"total": 2, "by_route": {"GET storage/folders": 2}}
