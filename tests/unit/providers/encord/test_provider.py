"""EncordProvider's logic over an in-memory fake of the API: paths, paging, children, bulk fallbacks."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from reconciler.errors import ProviderAuthError, ProviderConflictError, ProviderResponseError, UsageError
from reconciler.model import LiveFolder
from reconciler.providers.base import Capabilities, ProviderIdentity, StateProvider
from reconciler.providers.encord import EncordProvider, encord_provider_from_config
from reconciler.providers.encord.auth import BearerAuth

from .fake_api import FakeApi, U


def _tree(api: FakeApi) -> None:
    api.add_folder(U(1), "traffic")
    api.add_folder(U(2), "cams", U(1))
    api.add_folder(U(3), "2024", U(2))
    api.add_folder(U(4), "traffic-old")
    api.add_folder(U(5), "Traffic")


def test_identity_and_capabilities(provider: EncordProvider) -> None:
    assert provider.identity == ProviderIdentity("encord", "https://api.encord.com")
    assert provider.capabilities == Capabilities(
        max_batch=1000, parallel_writes=True, parallel_reads=True, paged_listing=True
    )
    assert repr(provider) == "EncordProvider('https://api.encord.com')"
    checked: StateProvider = provider  # structural check by mypy
    assert checked is provider


# -- schema -----------------------------------------------------------------------------------------------------


def test_read_schema_none_is_empty(api: FakeApi, provider: EncordProvider) -> None:
    assert provider.read_schema() == {}
    assert api.log == ["GET organisation/client-metadata-schema-v2"]


def test_read_schema_keeps_server_order(api: FakeApi, provider: EncordProvider) -> None:
    api.schema = {"z": {"ty": "variant", "hint": "text"}, "a": {"ty": "enum", "values": ["b", "a"]}}
    schema = provider.read_schema()
    assert list(schema) == ["z", "a"]
    assert schema["a"] == {"ty": "enum", "values": ["b", "a"]}


def test_read_schema_rejects_other_shapes(api: FakeApi, provider: EncordProvider) -> None:
    api.schema = ["not", "a", "map"]
    with pytest.raises(ProviderResponseError) as info:
        provider.read_schema()
    assert str(info.value) == (
        "GET organisation/client-metadata-schema-v2: Encord answered a schema that is not a map of key -> type object"
    )


def test_write_schema_posts_the_whole_map() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(204)

    schema: dict[str, dict[str, Any]] = {
        "a_num": {"ty": "variant", "hint": "number"},
        "h_emb": {"ty": "embedding", "size": 512, "api": None},
        "k_hard": {"ty": "tombstone", "deleted_ty": None},
    }
    with EncordProvider(
        "https://api.encord.com", BearerAuth("t"), transport=httpx.MockTransport(handler)
    ) as p:
        p.write_schema(schema)
        assert p.stats.writes == 1
        assert p.stats.by_route == {"POST organisation/client-metadata-schema-v2": 1}
    assert bodies == [
        b'{"a_num": {"ty": "variant", "hint": "number"}, "h_emb": {"ty": "embedding", "size": 512, "api": null}, '
        b'"k_hard": {"ty": "tombstone", "deleted_ty": null}}'
    ]


# -- folders ----------------------------------------------------------------------------------------------------


def test_list_folders(api: FakeApi, provider: EncordProvider) -> None:
    _tree(api)
    folders = provider.list_folders()
    assert [(f.path, f.uuid, f.parent) for f in folders] == [
        ("Traffic", U(5), None),
        ("traffic", U(1), None),
        ("traffic-old", U(4), None),
        ("traffic/cams", U(2), U(1)),
        ("traffic/cams/2024", U(3), U(2)),
    ]
    assert sorted(api.log) == sorted(
        [
            "GET storage/folders?isRecursive=False&order=name&desc=False&pageSize=1000",
            *(
                f"GET storage/folders/{U(n)}/folders?isRecursive=True&order=name&desc=False&pageSize=1000"
                for n in (1, 4, 5)
            ),
        ]
    )


def test_resolve_path_walks_by_exact_name(api: FakeApi, provider: EncordProvider) -> None:
    _tree(api)
    folder = provider.resolve_folder("traffic/cams/2024")
    assert folder == LiveFolder(U(3), U(2), "2024", "traffic/cams/2024")
    assert api.log == [
        "GET storage/folders?search=traffic&isRecursive=False&order=name&desc=False&pageSize=1000",
        f"GET storage/folders/{U(1)}/folders?search=cams&isRecursive=False&order=name&desc=False&pageSize=1000",
        f"GET storage/folders/{U(2)}/folders?search=2024&isRecursive=False&order=name&desc=False&pageSize=1000",
    ]


def test_resolve_top_level_path(api: FakeApi, provider: EncordProvider) -> None:
    _tree(api)
    assert provider.resolve_folder("/Traffic/") == LiveFolder(U(5), None, "Traffic", "Traffic")


def test_resolve_missing(api: FakeApi, provider: EncordProvider) -> None:
    _tree(api)
    with pytest.raises(ProviderConflictError) as info:
        provider.resolve_folder("traffic/cam")
    assert str(info.value) == "no folder 'traffic/cam': there is no folder named 'cam' in 'traffic'"
    with pytest.raises(ProviderConflictError) as info:
        provider.resolve_folder("nope")
    assert str(info.value) == "no folder 'nope': there is no folder named 'nope' at the top level"


def test_resolve_ambiguous(api: FakeApi, provider: EncordProvider) -> None:
    api.add_folder(U(7), "dup")
    api.add_folder(U(6), "dup")
    with pytest.raises(ProviderConflictError) as info:
        provider.resolve_folder("dup")
    assert str(info.value) == (
        f"folder path 'dup' is ambiguous: 2 folders are named 'dup' at the top level ({U(6)}, {U(7)}); "
        "use the folder UUID instead"
    )


@pytest.mark.parametrize("ref", ["", "/", "a//b"])
def test_resolve_invalid_path(provider: EncordProvider, ref: str) -> None:
    with pytest.raises(ProviderConflictError) as info:
        provider.resolve_folder(ref)
    assert str(info.value) == f"invalid folder path {ref.strip()!r}"


def test_resolve_uuid_uses_path_to_root(api: FakeApi, provider: EncordProvider) -> None:
    _tree(api)
    assert provider.resolve_folder(U(3).upper()) == LiveFolder(U(3), U(2), "2024", "traffic/cams/2024")
    assert api.log == [f"GET storage/folders/{U(3)}"]


def test_resolve_uuid_without_path_to_root_walks_up(api: FakeApi, provider: EncordProvider) -> None:
    _tree(api)
    api.path_to_root = False
    assert provider.resolve_folder(U(3)).path == "traffic/cams/2024"
    assert api.log == [f"GET storage/folders/{U(n)}" for n in (3, 2, 1)]


def test_resolve_unknown_uuid(api: FakeApi, provider: EncordProvider) -> None:
    with pytest.raises(ProviderConflictError) as info:
        provider.resolve_folder(U(99))
    assert str(info.value) == f"no folder with UUID {U(99)} (or no access to it)"


# -- items ------------------------------------------------------------------------------------------------------


def test_iter_items_wire_and_metadata(api: FakeApi, provider: EncordProvider) -> None:
    _tree(api)
    api.add_item(U(10), U(1), "a.jpg", metadata='{"k": 1, "nested": {"x": [1, 2]}}')
    api.add_item(U(11), U(1), "b.jpg", metadata=None)
    api.add_item(U(12), U(1), "c.jpg", metadata="")
    api.add_item(U(13), U(1), "d.jpg", metadata={"already": "object"})
    api.add_item(U(14), U(2), "deeper.jpg")
    folder = LiveFolder(U(1), None, "traffic", "traffic")
    listed = list(provider.iter_items(folder, recursive=False, children=False))
    assert [(x.rel_name, x.item.metadata) for x in listed] == [
        ("a.jpg", {"k": 1, "nested": {"x": [1, 2]}}),
        ("b.jpg", {}),
        ("c.jpg", {}),
        ("d.jpg", {"already": "object"}),
    ]
    assert listed[0].item.folder == U(1)
    assert listed[0].item.item_type == "image"
    assert api.log == [
        f"GET storage/folders/{U(1)}/items?isRecursive=False&order=name&desc=False&pageSize=1000&signUrls=False"
        "&includeClientMetadata=True&clientMetadataAsSignedUrl=False"
    ]


def test_iter_items_recursive_names(api: FakeApi, provider: EncordProvider) -> None:
    _tree(api)
    api.add_item(U(10), U(1), "top.jpg")
    api.add_item(U(11), U(2), "mid.jpg")
    api.add_item(U(12), U(3), "low.jpg")
    folder = LiveFolder(U(2), U(1), "cams", "traffic/cams")
    names = sorted(x.rel_name for x in provider.iter_items(folder, recursive=True, children=False))
    assert names == ["2024/low.jpg", "mid.jpg"]
    assert api.log[0] == (
        f"GET storage/folders/{U(2)}/folders?isRecursive=True&order=name&desc=False&pageSize=1000"
    )
    # Each folder's own items, with the plain listing the SDK's list_items makes (never isRecursive=True).
    assert sorted(line.split("?")[0] for line in api.log[1:]) == [
        f"GET storage/folders/{U(2)}/items",
        f"GET storage/folders/{U(3)}/items",
    ]
    assert all("isRecursive=False&" in line for line in api.log[1:])


def test_iter_items_pages(api: FakeApi, provider: EncordProvider) -> None:
    api.add_folder(U(1), "big")
    for n in range(2500):
        api.add_item(U(100_000 + n), U(1), f"f{n:05d}.jpg")
    folder = LiveFolder(U(1), None, "big", "big")
    assert len(list(provider.iter_items(folder, recursive=False, children=False))) == 2500
    assert provider.stats.by_route == {"GET storage/folders/{uuid}/items": 3}


def test_iter_items_children_follow_their_group(api: FakeApi, provider: EncordProvider) -> None:
    api.add_folder(U(1), "scans")
    children: list[dict[str, Any]] = [
        {
            "uuid": U(21),
            "parent": U(1),
            "name": "s1.dcm",
            "itemType": "dicomFile",
            "clientMetadata": '{"i": 1}',
        },
        {"uuid": U(22), "parent": U(1), "name": "s2.dcm", "itemType": "dicomFile", "clientMetadata": None},
    ]
    api.add_item(U(10), U(1), "a-series", item_type="dicomSeries", children=children)
    api.add_item(U(11), U(1), "b.jpg")
    api.add_item(U(12), U(1), "c-group", item_type="imageGroup")
    folder = LiveFolder(U(1), None, "scans", "scans")
    listed = list(provider.iter_items(folder, recursive=False, children=True))
    assert [(x.rel_name, x.item.parent_item, x.item.metadata) for x in listed] == [
        ("a-series", None, {}),
        ("a-series/s1.dcm", U(10), {"i": 1}),
        ("a-series/s2.dcm", U(10), {}),
        ("b.jpg", None, {}),
        ("c-group", None, {}),
    ]
    assert sorted(line for line in api.log if "child-items" in line) == [
        f"GET storage/folders/{U(1)}/items/{U(n)}/child-items?signUrls=False" for n in (10, 12)
    ]
    without = list(provider.iter_items(folder, recursive=False, children=False))
    assert [x.rel_name for x in without] == ["a-series", "b.jpg", "c-group"]


def test_bad_client_metadata(api: FakeApi, provider: EncordProvider) -> None:
    api.add_folder(U(1), "f")
    api.add_item(U(10), U(1), "a.jpg", metadata="{not json")
    api.add_item(U(11), U(1), "b.jpg", metadata="[1, 2]")
    folder = LiveFolder(U(1), None, "f", "f")
    with pytest.raises(ProviderResponseError) as info:
        list(provider.iter_items(folder, recursive=False, children=False))
    assert (
        str(info.value)
        == f"GET storage/folders/{{uuid}}/items: item {U(10)}: clientMetadata is not valid JSON"
    )
    del api.items[U(10)]
    with pytest.raises(ProviderResponseError) as info:
        list(provider.iter_items(folder, recursive=False, children=False))
    assert (
        str(info.value)
        == f"GET storage/folders/{{uuid}}/items: item {U(11)}: clientMetadata is not a JSON object"
    )


# -- bulk reads and writes --------------------------------------------------------------------------------------


def _items(api: FakeApi, count: int) -> list[str]:
    api.add_folder(U(1), "f")
    uuids = [U(100_000 + n) for n in range(count)]
    for n, u in enumerate(uuids):
        api.add_item(u, U(1), f"f{n}.jpg", metadata=json.dumps({"n": n}))
    return uuids


def test_get_items_chunks(api: FakeApi, provider: EncordProvider) -> None:
    uuids = _items(api, 2500)
    got = provider.get_items(uuids)
    assert list(got) == uuids
    assert got[uuids[1234]].metadata == {"n": 1234}
    assert provider.stats.by_route == {"POST storage/items/get-bulk": 3}


def test_get_items_isolates_missing_items(api: FakeApi, provider: EncordProvider) -> None:
    uuids = _items(api, 16)
    del api.items[uuids[5]]
    api.forbidden.add(uuids[11])
    got = provider.get_items([*uuids, "not-a-uuid", uuids[0].upper()])
    assert list(got) == [u for u in uuids if u not in (uuids[5], uuids[11])]
    # 1 + bisection of 16 down to the two single items: 16 -> 8+8 -> 4+4+4+4 -> 2+2 (x2) -> 1+1 (x2) = 15
    assert provider.stats.by_route == {"POST storage/items/get-bulk": 15}


def test_get_items_keys_are_as_given(api: FakeApi, provider: EncordProvider) -> None:
    uuids = _items(api, 2)
    got = provider.get_items([uuids[0].upper(), uuids[1]])
    assert list(got) == [uuids[0].upper(), uuids[1]]
    assert got[uuids[0].upper()].uuid == uuids[0]


def test_get_items_empty(provider: EncordProvider) -> None:
    assert provider.get_items([]) == {}
    assert provider.stats.by_route == {}


def test_patch_items_chunks_and_body(api: FakeApi, provider: EncordProvider) -> None:
    uuids = _items(api, 2500)
    result = provider.patch_items({u: {"n": -1, "é": None} for u in uuids})
    assert result == dict.fromkeys(uuids)
    assert provider.stats.by_route == {"PATCH storage/items/patch-bulk": 3}
    assert provider.stats.writes == 3
    assert json.loads(api.items[uuids[-1]]["clientMetadata"]) == {"n": -1, "é": None}


def test_patch_items_failed_request_marks_its_items(api: FakeApi, provider: EncordProvider) -> None:
    uuids = _items(api, 3)
    api.fail_patch = 422
    result = provider.patch_items({uuids[0]: {}, "bogus": {}, uuids[1]: {"a": 1}})
    reason = "PATCH storage/items/patch-bulk: Encord rejected the request (422 Unprocessable Entity): nope"
    assert result == {"bogus": "'bogus' is not a UUID", uuids[0]: reason, uuids[1]: reason}


def test_patch_items_401_raises(api: FakeApi, provider: EncordProvider) -> None:
    uuids = _items(api, 1)
    api.fail_patch = 401
    with pytest.raises(ProviderAuthError):
        provider.patch_items({uuids[0]: {}})


def test_concurrent_calls_share_one_client(api: FakeApi, provider: EncordProvider) -> None:
    uuids = _items(api, 40)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda u: provider.patch_items({u: {"t": 1}}), uuids))
        reads = list(pool.map(lambda u: provider.get_items([u]), uuids))
    assert all(r == {u: None} for r, u in zip(results, uuids, strict=True))
    assert all(list(r) == [u] for r, u in zip(reads, uuids, strict=True))
    assert provider.stats.writes == 40
    assert provider.stats.reads == 40
    assert provider.stats.by_route == {
        "PATCH storage/items/patch-bulk": 40,
        "POST storage/items/get-bulk": 40,
    }


# -- factory ----------------------------------------------------------------------------------------------------


def test_factory_default_domain() -> None:
    with encord_provider_from_config(
        None, {"ENCORD_API_TOKEN": "t"}, parallelism=2, allow_insecure_http=False
    ) as p:
        assert p.identity == ProviderIdentity("encord", "https://api.encord.com")


def test_factory_needs_credentials() -> None:
    with pytest.raises(ProviderAuthError) as info:
        encord_provider_from_config("https://api.us.encord.com", {}, parallelism=2, allow_insecure_http=False)
    assert (
        str(info.value)
        == "no Encord credentials: set ENCORD_SSH_KEY_FILE, ENCORD_SSH_KEY or ENCORD_API_TOKEN"
    )


def test_factory_checks_domain_first() -> None:
    with pytest.raises(UsageError):
        encord_provider_from_config("http://example.com", {}, parallelism=2, allow_insecure_http=False)
    with encord_provider_from_config(
        "http://example.com", {"ENCORD_API_TOKEN": "t"}, parallelism=2, allow_insecure_http=True
    ) as p:
        assert p.identity.location == "http://example.com"
