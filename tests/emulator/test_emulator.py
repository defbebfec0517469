"""The emulator over raw HTTP (httpx): shapes, paging, status codes, auth, control endpoints, faults."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from reconciler.model import LiveFolder, LiveItem
from reconciler.snapshot import Snapshot
from reconciler.testing import Emulator
from tests.emulator.conftest import IDS, SCHEMA, TOKEN, standard_state, uid
from tests.emulator.signing import SignedAuth, load_ed25519, sign_headers
from tests.helpers.keys import make_ed25519_key

ITEM_KEYS = {
    "uuid", "parent", "itemType", "name", "description", "clientMetadata", "owner", "createdAt",
    "lastEditedAt", "isTombstone", "isPlaceholder", "backedDataUnitsCount", "storageLocation",
    "integrationHash", "url", "signedUrl", "fileSize", "mimeType", "duration", "fps", "height", "width",
    "dicomInstanceUid", "dicomStudyUid", "dicomSeriesUid", "frameCount", "audioSampleRate", "audioBitDepth",
    "audioCodec", "audioNumChannels",
}  # fmt: skip
NULL_ITEM_KEYS = ITEM_KEYS - {
    "uuid", "parent", "itemType", "name", "description", "clientMetadata", "owner", "createdAt",
    "lastEditedAt", "isTombstone", "isPlaceholder", "backedDataUnitsCount", "storageLocation",
}  # fmt: skip
FOLDER_KEYS = {
    "uuid", "parent", "name", "description", "clientMetadata", "owner", "createdAt", "lastEditedAt",
    "userRole", "syncedDatasetHash", "pathToRoot", "folderType", "integrationHash", "remoteUrl",
}  # fmt: skip
LISTING = {"isRecursive": "False", "order": "name", "desc": "False", "pageSize": "100", "signUrls": "False"}


def names(page: dict[str, Any]) -> list[str]:
    return [r["name"] for r in page["results"]]


def many_items(n: int, folder_name: str = "many") -> Snapshot:
    fid = uid("folder:" + folder_name)
    return Snapshot(
        folders=[LiveFolder(fid, None, folder_name, folder_name)],
        items=[
            LiveItem(uid(f"item:{folder_name}/{i}"), fid, f"f{i:04}.jpg", "image", {"i": i}) for i in range(n)
        ],
    )


def assert_iso_with_offset(text: str) -> None:
    assert datetime.fromisoformat(text).utcoffset() is not None


# ---- schema ------------------------------------------------------------------------------------------


def test_schema_get_returns_the_wire_map(api):
    r = api.get("organisation/client-metadata-schema-v2")
    assert (r.status_code, r.json()) == (200, SCHEMA)


def test_schema_is_null_when_never_set(api, emu):
    emu.load(Snapshot())
    r = api.get("organisation/client-metadata-schema-v2")
    assert (r.status_code, r.text) == (200, "null")


def test_schema_post_replaces_the_whole_map(api, emu):
    new = {
        "b": {"ty": "variant", "hint": "number"},
        "a": {"ty": "tombstone", "deleted_ty": {"ty": "embedding", "size": 3, "api": None}},
    }
    r = api.post("organisation/client-metadata-schema-v2", json=new)
    assert (r.status_code, r.content) == (204, b"")
    got = api.get("organisation/client-metadata-schema-v2").json()
    assert (got, list(got)) == (new, ["b", "a"])  # the whole map replaced, its key order kept
    assert emu.snapshot().schema == new
    assert list(emu.snapshot().schema) == ["b", "a"]  # key order kept


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"[1]", 400, "the schema must be a JSON object mapping keys to type objects"),
        (b"{not json", 400, None),
        (b'{"k": "number"}', 422, "schema key 'k': expected a type object"),
        (b'{"k": {"ty": "nope"}}', 422, "schema key 'k': unknown type 'nope'"),
    ],
)
def test_schema_post_validates(api, emu, body, status, message):
    r = api.post(
        "organisation/client-metadata-schema-v2", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == status
    if message:
        assert r.json() == {"message": message}
    assert emu.snapshot().schema == SCHEMA


# ---- folders -----------------------------------------------------------------------------------------


def test_top_level_folders_shape(api):
    r = api.get(
        "storage/folders",
        params={"isRecursive": "False", "order": "name", "desc": "False", "pageSize": "100"},
    )
    page = r.json()
    assert r.status_code == 200
    assert page["nextPageToken"] is None
    assert names(page) == ["archive", "traffic"]
    traffic = page["results"][1]
    assert set(traffic) == FOLDER_KEYS
    assert_iso_with_offset(traffic["createdAt"])
    assert {k: v for k, v in traffic.items() if k not in ("createdAt", "lastEditedAt")} == {
        "uuid": IDS.traffic,
        "parent": None,
        "name": "traffic",
        "description": "",
        "clientMetadata": None,
        "owner": "emulator@reconciler.invalid",
        "userRole": "admin",
        "syncedDatasetHash": None,
        "pathToRoot": [
            {"uuid": IDS.traffic, "parentUuid": None, "name": "traffic", "syncedDatasetHash": None}
        ],
        "folderType": "generic",
        "integrationHash": None,
        "remoteUrl": None,
    }


def test_get_folder_with_path_to_root(api):
    r = api.get(f"storage/folders/{IDS.night}")
    assert r.status_code == 200
    assert [(p["name"], p["parentUuid"]) for p in r.json()["pathToRoot"]] == [
        ("night", IDS.cams),
        ("cams", IDS.traffic),
        ("traffic", None),
    ]


def test_subfolders_direct_and_recursive(api):
    direct = api.get(f"storage/folders/{IDS.traffic}/folders", params={"isRecursive": "False"}).json()
    deep = api.get(f"storage/folders/{IDS.traffic}/folders", params={"isRecursive": "True"}).json()
    assert names(direct) == ["cams"]
    assert names(deep) == ["cams", "night"]


def test_folder_search_is_recursive_from_the_root(api):
    assert names(api.get("storage/search/folders", params={"search": "NIG"}).json()) == ["night"]
    assert names(api.get("storage/folders", params={"isRecursive": "true", "desc": "true"}).json()) == [
        "traffic", "night", "cams", "archive",
    ]  # fmt: skip


def test_unknown_folder_is_403(api):
    missing = uid("folder:missing")
    for path in (
        f"storage/folders/{missing}",
        f"storage/folders/{missing}/items",
        f"storage/folders/{missing}/folders",
    ):
        r = api.get(path)
        assert r.status_code == 403
        assert r.json() == {"message": f"folder {missing} does not exist or you have no access to it"}


def test_folder_paging(api, emu):
    fid = uid("folder:root")
    emu.load(
        Snapshot(
            folders=[LiveFolder(fid, None, "root", "root")]
            + [LiveFolder(uid(f"folder:sub{i}"), fid, f"sub{i:02}", f"root/sub{i:02}") for i in range(5)]
        )
    )
    first = api.get(f"storage/folders/{fid}/folders", params={"pageSize": "2"}).json()
    second = api.get(
        f"storage/folders/{fid}/folders", params={"pageSize": "2", "pageToken": first["nextPageToken"]}
    ).json()
    third = api.get(
        f"storage/folders/{fid}/folders", params={"pageSize": "2", "pageToken": second["nextPageToken"]}
    ).json()
    assert (names(first), names(second), names(third)) == (["sub00", "sub01"], ["sub02", "sub03"], ["sub04"])
    assert third["nextPageToken"] is None


# ---- items: listing ----------------------------------------------------------------------------------


def test_item_shape(api):
    page = api.get(
        f"storage/folders/{IDS.cams}/items", params={**LISTING, "includeClientMetadata": "True"}
    ).json()
    b = next(r for r in page["results"] if r["name"] == "b.mp4")
    assert set(b) == ITEM_KEYS
    assert {k: b[k] for k in NULL_ITEM_KEYS} == dict.fromkeys(NULL_ITEM_KEYS)
    assert {k: b[k] for k in ITEM_KEYS - NULL_ITEM_KEYS - {"createdAt", "lastEditedAt"}} == {
        "uuid": IDS.b,
        "parent": IDS.cams,
        "itemType": "video",
        "name": "b.mp4",
        "description": "",
        "clientMetadata": '{"capture.weather": "rain", "n": 1}',
        "owner": "emulator@reconciler.invalid",
        "isTombstone": False,
        "isPlaceholder": False,
        "backedDataUnitsCount": 0,
        "storageLocation": "encord",
    }
    assert_iso_with_offset(b["createdAt"])
    assert b["lastEditedAt"] == b["createdAt"]


def test_listing_shows_top_level_items_sorted_by_name(api):
    page = api.get(f"storage/folders/{IDS.cams}/items", params=LISTING).json()
    assert names(page) == ["a.jpg", "b.mp4", "c.jpg", "scan-07"]
    assert page["nextPageToken"] is None
    assert [r["itemType"] for r in page["results"]] == ["image", "video", "image", "imageGroup"]


def test_listing_orders_filters_and_recursion(api):
    url = f"storage/folders/{IDS.cams}/items"
    assert names(api.get(url, params={**LISTING, "desc": "True"}).json()) == [
        "scan-07",
        "c.jpg",
        "b.mp4",
        "a.jpg",
    ]
    by_created = api.get(url, params={**LISTING, "order": "createdAt"}).json()
    assert names(by_created) == ["b.mp4", "a.jpg", "c.jpg", "scan-07"]
    assert names(api.get(url, params={**LISTING, "search": "JPG"}).json()) == ["a.jpg", "c.jpg"]
    both = api.get(url, params=[("itemTypes", "video"), ("itemTypes", "imageGroup")]).json()
    assert names(both) == ["b.mp4", "scan-07"]
    assert names(api.get(url, params={"isRecursive": "true"}).json()) == [
        "a.jpg", "b.mp4", "c.jpg", "n1.jpg", "scan-07",
    ]  # fmt: skip
    assert names(api.get(url, params={"isInDataset": "True"}).json()) == []
    assert names(api.get(url, params={"isInDataset": "False"}).json()) == [
        "a.jpg",
        "b.mp4",
        "c.jpg",
        "scan-07",
    ]
    assert names(api.get("storage/search/items", params={"search": "n1"}).json()) == ["n1.jpg"]


def test_listing_without_client_metadata(api):
    page = api.get(f"storage/folders/{IDS.cams}/items", params={"includeClientMetadata": "False"}).json()
    assert [r["clientMetadata"] for r in page["results"]] == ["{}", "{}", "{}", "{}"]


def test_listing_with_metadata_as_signed_url(api, control, emu):
    page = api.get(f"storage/folders/{IDS.cams}/items", params={"clientMetadataAsSignedUrl": "True"}).json()
    b = page["results"][1]
    assert b["clientMetadata"] == "{}"
    assert b["clientMetadataSignedUrl"] == f"{emu.url}/_emulator/client-metadata/{IDS.b}"
    blob = httpx.get(b["clientMetadataSignedUrl"])
    assert (blob.status_code, blob.json()) == (200, {"capture.weather": "rain", "n": 1})
    assert control.get(f"/_emulator/client-metadata/{uid('item:none')}").status_code == 404
    assert emu.request_counts()["total"] == 1  # the blob download is not an API request


def test_paging_250_items(api, emu):
    emu.load(many_items(250))
    url = f"storage/folders/{uid('folder:many')}/items"
    seen, token, pages = [], None, 0
    while True:
        params = dict(LISTING)
        if token is not None:
            params["pageToken"] = token
        page = api.get(url, params=params).json()
        pages += 1
        seen += names(page)
        token = page["nextPageToken"]
        assert token != ""
        if token is None:
            break
    assert pages == 3
    assert seen == [f"f{i:04}.jpg" for i in range(250)]


def test_last_full_page_has_null_token(api, emu):
    emu.load(many_items(200))
    url = f"storage/folders/{uid('folder:many')}/items"
    first = api.get(url, params=LISTING).json()
    second = api.get(url, params={**LISTING, "pageToken": first["nextPageToken"]}).json()
    assert len(second["results"]) == 100
    assert second["nextPageToken"] is None


@pytest.mark.parametrize("size", ["0", "1001", "-5", "ten"])
def test_page_size_out_of_range_is_400(api, size):
    r = api.get(f"storage/folders/{IDS.cams}/items", params={"pageSize": size})
    assert r.status_code == 400
    assert "pageSize" in r.json()["message"]


def test_page_size_bounds_accepted(api):
    one = api.get(f"storage/folders/{IDS.cams}/items", params={"pageSize": "1"}).json()
    assert names(one) == ["a.jpg"]
    assert one["nextPageToken"] is not None
    assert api.get(f"storage/folders/{IDS.cams}/items", params={"pageSize": "1000"}).status_code == 200


def test_bad_page_tokens_are_400(api, emu):
    url = f"storage/folders/{IDS.cams}/items"
    token = api.get(url, params={"pageSize": "1"}).json()["nextPageToken"]
    for bad in ("", "garbage!", "eyJvIjoxfQ"):
        r = api.get(url, params={"pageSize": "1", "pageToken": bad})
        assert r.status_code == 400, bad
    other_listing = api.get(url, params={"pageSize": "1", "desc": "True", "pageToken": token})
    assert other_listing.status_code == 400
    assert api.get(url, params={"pageSize": "1", "pageToken": token}).status_code == 200
    emu.load(standard_state())
    stale = api.get(url, params={"pageSize": "1", "pageToken": token})
    assert stale.status_code == 400
    assert stale.json() == {
        "message": "invalid pageToken: it does not belong to this listing (or the state was reloaded)"
    }


@pytest.mark.parametrize(
    ("param", "value"), [("isRecursive", "maybe"), ("order", "size"), ("itemTypes", "photo")]
)
def test_bad_query_values_are_400(api, param, value):
    assert api.get(f"storage/folders/{IDS.cams}/items", params={param: value}).status_code == 400


# ---- items: get, get-bulk ----------------------------------------------------------------------------


def test_get_item(api):
    r = api.get(f"storage/items/{IDS.c}", params={"signUrl": "False"})
    assert r.status_code == 200
    assert (r.json()["name"], json.loads(r.json()["clientMetadata"])) == ("c.jpg", {"note": "é"})
    assert api.get(f"storage/items/{IDS.child1}").json()["name"] == "img-1.jpg"


def test_get_unknown_item_is_403(api):
    missing = uid("item:missing")
    r = api.get(f"storage/items/{missing}")
    assert (r.status_code, r.json()) == (
        403,
        {"message": f"item {missing} does not exist or you have no access to it"},
    )


def test_get_bulk_keeps_request_order(api):
    r = api.post(
        "storage/items/get-bulk", json={"itemUuids": [IDS.c, IDS.a, IDS.child3, IDS.b], "signUrls": False}
    )
    assert r.status_code == 200
    assert list(r.json()) == ["results"]
    assert names(r.json()) == ["c.jpg", "a.jpg", "img-3.jpg", "b.mp4"]


def test_get_bulk_accepts_uppercase_uuids(api):
    r = api.post("storage/items/get-bulk", json={"itemUuids": [IDS.a.upper()]})
    assert [x["uuid"] for x in r.json()["results"]] == [IDS.a]


def test_get_bulk_refuses_unknown_oversized_and_malformed(api):
    missing = uid("item:missing")
    r = api.post("storage/items/get-bulk", json={"itemUuids": [IDS.a, missing]})
    assert (r.status_code, r.json()) == (
        403,
        {"message": f"item {missing} does not exist or you have no access to it"},
    )
    r = api.post("storage/items/get-bulk", json={"itemUuids": [IDS.a] * 1001})
    assert (r.status_code, r.json()) == (
        413,
        {"message": "at most 1000 item uuids per get-bulk request, got 1001"},
    )
    assert api.post("storage/items/get-bulk", json={"itemUuids": [IDS.a] * 1000}).status_code == 200
    assert api.post("storage/items/get-bulk", json={"itemUuids": ["nope"]}).status_code == 400
    assert api.post("storage/items/get-bulk", json={"uuids": []}).status_code == 400
    r = api.post("storage/items/get-bulk", content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["message"].startswith("malformed JSON body")


# ---- items: writes -----------------------------------------------------------------------------------


def test_patch_bulk_replaces_metadata_wholesale(api, emu):
    body = {"itemPatches": {IDS.b: {"clientMetadata": {"x": [1, 2]}}, IDS.child1: {"clientMetadata": {}}}}
    r = api.patch("storage/items/patch-bulk", json=body)
    assert r.status_code == 200
    results = r.json()["results"]
    assert [(x["uuid"], x["clientMetadata"]) for x in results] == [
        (IDS.b, '{"x": [1, 2]}'),
        (IDS.child1, "{}"),
    ]
    assert set(results[0]) == ITEM_KEYS
    assert results[0]["lastEditedAt"] != results[0]["createdAt"]
    md = {i.uuid: i.metadata for i in emu.snapshot().items}
    assert (md[IDS.b], md[IDS.child1], md[IDS.a]) == ({"x": [1, 2]}, {}, {})
    again = api.get(f"storage/items/{IDS.b}").json()
    assert again["clientMetadata"] == '{"x": [1, 2]}'


def test_values_orjson_cannot_hold_keep_exactly_through_bodies_and_answers(api, emu):
    # Bodies are decoded, and answers written, by orjson where it gives the standard library's value; an
    # integer beyond 64 bits takes the standard library's way both ways, in a patch and in an answer that
    # holds metadata as an object (the state), so every value stays exact.
    metadata = {"big": 2**70, "neg": -(10**30), "name": "café ☃", "tiny": 1e-7, "n": 5, "ok": True}
    patch = {IDS.b: {"clientMetadata": metadata, "name": "b ☃.mp4"}}
    r = api.patch("storage/items/patch-bulk", json={"itemPatches": patch})
    assert r.status_code == 200
    assert r.content.startswith(b'{"results":[{"uuid":')  # compact
    assert '"name":"b ☃.mp4"'.encode() in r.content  # non-ASCII as UTF-8
    assert r.json()["results"][0]["clientMetadata"] == json.dumps(metadata)
    assert {i.uuid: i.metadata for i in emu.snapshot().items}[IDS.b] == metadata
    state = httpx.get(emu.url + "/_emulator/state")
    assert b"1180591620717411303424" in state.content
    assert {i["uuid"]: i["client_metadata"] for i in state.json()["items"]}[IDS.b] == metadata
    listed = api.get(f"storage/folders/{IDS.cams}/items", params=LISTING)
    assert {x["uuid"]: json.loads(x["clientMetadata"]) for x in listed.json()["results"]}[IDS.b] == metadata


def test_patch_bulk_is_atomic_on_unknown_items(api, emu):
    missing = uid("item:missing")
    body = {"itemPatches": {IDS.a: {"clientMetadata": {"x": 1}}, missing: {"clientMetadata": {"x": 1}}}}
    r = api.patch("storage/items/patch-bulk", json=body)
    assert (r.status_code, r.json()) == (
        403,
        {"message": f"item {missing} does not exist or you have no access to it"},
    )
    assert emu.snapshot() == standard_state_as_loaded(emu)


def standard_state_as_loaded(emu: Emulator) -> Snapshot:
    with Emulator(standard_state()) as fresh:
        return fresh.snapshot()


def test_patch_bulk_limits_and_validation(api, emu):
    emu.load(many_items(1001))
    ids = [uid(f"item:many/{i}") for i in range(1001)]
    r = api.patch(
        "storage/items/patch-bulk", json={"itemPatches": {i: {"clientMetadata": {"k": 1}} for i in ids}}
    )
    assert (r.status_code, r.json()) == (
        413,
        {"message": "at most 1000 item patches per patch-bulk request, got 1001"},
    )
    r = api.patch(
        "storage/items/patch-bulk",
        json={"itemPatches": {i: {"clientMetadata": {"k": 1}} for i in ids[:1000]}},
    )
    assert r.status_code == 200
    assert len(r.json()["results"]) == 1000
    bad = api.patch("storage/items/patch-bulk", json={"itemPatches": {ids[0]: {"clientMetadata": "{}"}}})
    assert (bad.status_code, bad.json()["message"]) == (
        400,
        f"item {ids[0]}: clientMetadata must be an object",
    )
    nan = api.patch(
        "storage/items/patch-bulk",
        content=b'{"itemPatches": {"' + ids[0].encode() + b'": {"clientMetadata": {"x": NaN}}}}',
        headers={"Content-Type": "application/json"},
    )
    assert nan.status_code == 400
    assert api.patch("storage/items/patch-bulk", json={"patches": {}}).status_code == 400


def test_patch_bulk_can_rename_and_listing_follows(api):
    r = api.patch("storage/items/patch-bulk", json={"itemPatches": {IDS.a: {"name": "z.jpg"}}})
    assert r.json()["results"][0]["clientMetadata"] == "{}"
    assert names(api.get(f"storage/folders/{IDS.cams}/items").json()) == [
        "b.mp4",
        "c.jpg",
        "scan-07",
        "z.jpg",
    ]


def test_single_item_patch(api, emu):
    r = api.patch(f"storage/folders/{IDS.cams}/items/{IDS.c}", json={"clientMetadata": {"y": True}})
    assert r.status_code == 200
    assert (r.json()["uuid"], r.json()["clientMetadata"]) == (IDS.c, '{"y": true}')
    assert next(i.metadata for i in emu.snapshot().items if i.uuid == IDS.c) == {"y": True}
    wrong_folder = api.patch(f"storage/folders/{IDS.archive}/items/{IDS.c}", json={"clientMetadata": {}})
    assert wrong_folder.status_code == 403


def test_child_items(api):
    r = api.get(f"storage/folders/{IDS.cams}/items/{IDS.group}/child-items", params={"signUrls": "False"})
    assert r.status_code == 200
    page = r.json()
    assert names(page) == ["img-2.jpg", "img-1.jpg", "img-3.jpg"]  # the group's own order
    assert page["nextPageToken"] is None
    assert [json.loads(x["clientMetadata"]) for x in page["results"]] == [
        {"frame": 2},
        {"frame": 1},
        {"frame": 3},
    ]
    empty = api.get(f"storage/folders/{IDS.cams}/items/{IDS.a}/child-items").json()
    assert empty == {"results": [], "nextPageToken": None}
    assert api.get(f"storage/folders/{IDS.night}/items/{IDS.group}/child-items").status_code == 403


# ---- routing -----------------------------------------------------------------------------------------


def test_unknown_routes_and_methods(api, control):
    assert api.get("storage/nothing").status_code == 404
    assert api.get("storage/folders/").status_code == 404
    r = api.delete(f"storage/items/{IDS.a}")
    assert (r.status_code, r.headers["Allow"]) == (405, "GET")
    assert api.post("storage/items/patch-bulk", json={}).status_code == 405
    assert control.get("/v1/whatever").status_code == 404


# ---- authentication ----------------------------------------------------------------------------------


def test_requests_without_credentials_are_401(emu):
    r = httpx.get(emu.url + "/v2/public/storage/folders")
    assert r.status_code == 401
    assert r.json() == {
        "message": "missing credentials: send 'Authorization: Bearer <token>' or an Ed25519 request signature"
    }


def test_bearer_tokens(emu):
    ok = httpx.get(emu.url + "/v2/public/storage/folders", headers={"Authorization": f"Bearer {TOKEN}"})
    bad = httpx.get(emu.url + "/v2/public/storage/folders", headers={"Authorization": "Bearer wrong"})
    assert ok.status_code == 200
    assert (bad.status_code, bad.json()) == (401, {"message": "unknown bearer token"})


def test_unknown_key_is_401(emu):
    other, _ = make_ed25519_key()
    with httpx.Client(base_url=emu.url, auth=SignedAuth(load_ed25519(other))) as client:
        r = client.get("/v2/public/storage/folders")
    assert (r.status_code, r.json()) == (401, {"message": "unknown public key"})


def test_accept_any_key(ed_key):
    other, _ = make_ed25519_key()
    with (
        Emulator(standard_state(), accept_any_key=True) as emulator,
        httpx.Client(base_url=emulator.url, auth=SignedAuth(load_ed25519(other))) as client,
    ):
        assert client.get("/v2/public/storage/folders").status_code == 200


@pytest.mark.parametrize(("skew", "status"), [(-120, 401), (-50, 200), (50, 200), (120, 401)])
def test_clock_skew_window(emu, ed_key, skew, status):
    with httpx.Client(base_url=emu.url, auth=SignedAuth(load_ed25519(ed_key[0]), skew_s=skew)) as client:
        r = client.get("/v2/public/storage/folders")
    assert r.status_code == status
    if status == 401:
        assert "away from the server clock" in r.json()["message"]


def test_digest_mismatch_is_401(emu, ed_key):
    key = load_ed25519(ed_key[0])
    target = "/v2/public/storage/items/get-bulk"
    body = json.dumps({"itemUuids": [IDS.a]}).encode()
    headers = sign_headers(key, "POST", target, b"{}", int(time.time()))
    r = httpx.post(emu.url + target, content=body, headers=headers)
    assert (r.status_code, r.json()) == (401, {"message": "Content-Digest does not match the request body"})


def test_signature_over_another_path_is_401(emu, ed_key):
    key = load_ed25519(ed_key[0])
    headers = sign_headers(key, "GET", "/v2/public/storage/folders", b"", int(time.time()))
    r = httpx.get(emu.url + f"/v2/public/storage/folders/{IDS.traffic}", headers=headers)
    assert (r.status_code, r.json()) == (401, {"message": "signature does not verify"})


def test_signature_covers_the_raw_query(emu, ed_key):
    key = load_ed25519(ed_key[0])
    target = "/v2/public/storage/search/folders?search=n%C3%AFght+x&isRecursive=True"
    headers = sign_headers(key, "GET", target, b"", int(time.time()))
    r = httpx.get(emu.url + target, headers=headers)
    assert r.status_code == 200
    assert r.json()["results"] == []


def test_no_credentials_configured_refuses_everything():
    with Emulator(standard_state()) as emulator:
        r = httpx.get(emulator.url + "/v2/public/storage/folders", headers={"Authorization": "Bearer x"})
        assert r.status_code == 401


def test_bearer_token_from_a_signed_request(api, emu):
    token = api.get("user/bearer-token").json()["token"]
    with httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/v2/public/storage/folders").status_code == 200
        assert client.get("/v2/public/user/bearer-token").status_code == 403


# ---- request counts and control endpoints ------------------------------------------------------------


def test_request_counts(api, control, emu):
    api.get(f"storage/folders/{IDS.cams}/items")
    api.get(f"storage/folders/{IDS.night}/items")
    api.patch("storage/items/patch-bulk", json={"itemPatches": {}})
    api.get("nope")
    httpx.get(emu.url + "/v2/public/storage/folders")  # refused (401), still counted
    control.get("/_emulator/state")
    expected = {
        "total": 5,
        "by_route": {
            "GET nope": 1,
            "GET storage/folders": 1,
            "GET storage/folders/{uuid}/items": 2,
            "PATCH storage/items/patch-bulk": 1,
        },
    }
    assert emu.request_counts() == expected
    assert control.get("/_emulator/requests").json() == expected
    assert control.delete("/_emulator/requests").status_code == 204
    assert emu.request_counts() == {"total": 0, "by_route": {}}
    api.get("organisation/client-metadata-schema-v2")
    emu.reset_counts()
    assert emu.request_counts() == {"total": 0, "by_route": {}}


def test_state_round_trip(control, emu):
    doc = control.get("/_emulator/state").json()
    assert doc["format_version"] == "1"
    assert doc["schema"] == SCHEMA
    assert doc["folders"][2] == {"uuid": IDS.night, "parent": IDS.cams, "name": "night"}
    assert doc["items"][4] == {
        "uuid": IDS.child2, "folder": IDS.cams, "name": "img-2.jpg", "item_type": "image",
        "client_metadata": {"frame": 2}, "parent_item": IDS.group,
    }  # fmt: skip
    doc["items"] = doc["items"][:1]
    doc["items"][0]["client_metadata"] = {"new": True}
    assert control.put("/_emulator/state", json=doc).status_code == 204
    snap = emu.snapshot()
    assert [(i.name, i.metadata) for i in snap.items] == [("b.mp4", {"new": True})]
    assert [f.path for f in snap.folders] == ["traffic", "traffic/cams", "traffic/cams/night", "archive"]


def test_state_put_jsonl(control, emu):
    lines = [
        {"record": "header", "format_version": "1"},
        {"record": "folder", "uuid": IDS.archive, "parent": None, "name": "archive"},
        {"record": "item", "uuid": IDS.a, "folder": IDS.archive, "name": "a.jpg", "item_type": "image"},
    ]
    body = "\n".join(json.dumps(x) for x in lines).encode()
    r = control.put("/_emulator/state", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 204
    assert [(i.uuid, i.metadata) for i in emu.snapshot().items] == [(IDS.a, {})]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "<request body>:1:2: invalid JSON: Expecting property name enclosed in double quotes"),
        (
            b'{"format_version": "9"}',
            "<request body>:1: unsupported snapshot format_version '9' (this reconciler reads '1')",
        ),
        (
            b'{"format_version": "1", "folders": [{"uuid": "f", "parent": null, "name": "x"}]}',
            "invalid state: badly formed hexadecimal UUID string",
        ),
    ],
)
def test_state_put_refuses_bad_snapshots(control, emu, body, message):
    r = control.put("/_emulator/state", content=body)
    assert (r.status_code, r.json()) == (400, {"message": message})
    assert len(emu.snapshot().items) == 8


def test_control_routing(control):
    assert control.get("/_emulator/nothing").status_code == 404
    r = control.post("/_emulator/state", json={})
    assert (r.status_code, r.headers["Allow"]) == (405, "GET, PUT")


# ---- faults ------------------------------------------------------------------------------------------


def test_fault_settings(control, emu):
    r = control.put("/_emulator/faults", json={"rate_429": 0.5, "seed": 3})
    assert r.json() == {
        "latency_ms": 0.0, "rate_429": 0.5, "retry_after_s": 1, "rate_503": 0.0, "rate_drop": 0.0, "seed": 3,
    }  # fmt: skip
    assert control.get("/_emulator/faults").json()["rate_429"] == 0.5
    for bad, message in [
        (
            {"rate_500": 1},
            "unknown fault field 'rate_500' (known: latency_ms, rate_429, rate_503, rate_drop, retry_after_s, seed)",
        ),
        ({"rate_429": 2}, "rate_429 must be between 0 and 1"),
        ({"rate_429": 0.6, "rate_503": 0.6}, "rate_429 + rate_503 + rate_drop must not exceed 1"),
        ({"latency_ms": "slow"}, "latency_ms must be a number"),
        ({"retry_after_s": 1.5}, "retry_after_s must be an integer"),
        ({"seed": True}, "seed must be an integer"),
    ]:
        r = control.put("/_emulator/faults", json=bad)
        assert (r.status_code, r.json()) == (400, {"message": message})
    assert control.put("/_emulator/faults", json=[1]).status_code == 400
    with pytest.raises(ValueError, match="unknown fault field 'bogus'"):
        emu.set_faults(bogus=1)


def test_fault_429_with_retry_after(api, control, emu):
    control.put("/_emulator/faults", json={"rate_429": 1, "retry_after_s": 7})
    r = api.get("storage/folders")
    assert (r.status_code, r.headers["Retry-After"], r.json()) == (
        429, "7", {"message": "rate limit exceeded (emulated fault)"},
    )  # fmt: skip
    control.put("/_emulator/faults", json={"rate_503": 1})
    assert api.get("storage/folders").status_code == 503
    assert control.get("/_emulator/state").status_code == 200  # control endpoints are never faulted
    assert emu.request_counts()["by_route"] == {"GET storage/folders": 2}


def test_fault_drop_closes_the_connection(api, emu):
    emu.set_faults(rate_drop=1)
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("storage/folders")
    emu.set_faults()
    assert api.get("storage/folders").status_code == 200
    assert emu.request_counts()["total"] == 2


def test_fault_latency(api, emu):
    emu.set_faults(latency_ms=120)
    start = time.perf_counter()
    assert api.get("storage/folders").status_code == 200
    assert time.perf_counter() - start >= 0.12


def test_faults_are_deterministic_with_a_seed(api, emu):
    def run() -> list[int]:
        emu.set_faults(rate_429=0.3, rate_503=0.2, retry_after_s=0, seed=7)
        return [api.get("storage/folders").status_code for _ in range(30)]

    first, second = run(), run()
    assert first == second
    assert set(first) == {200, 429, 503}


def test_latency_at_construction():
    with Emulator(latency_ms=15) as emulator:
        assert emulator.faults().latency_ms == 15.0


# ---- the Python API and concurrency ------------------------------------------------------------------


def test_python_api_guards():
    emulator = Emulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.url
    emulator.stop()  # harmless before start
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        Emulator(authorized_keys=["abc"])
    with pytest.raises(ValueError, match="bearer token"):
        Emulator(tokens=["has space"])
    with pytest.raises(ValueError, match="unknown folder"):
        Emulator(Snapshot(items=[LiveItem(uid("i"), uid("f"), "x", "image", {})]))


def test_url_and_restart():
    emulator = Emulator(tokens=["t"]).start()
    try:
        assert emulator.url.startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError, match="already running"):
            emulator.start()
    finally:
        emulator.stop()
    emulator.stop()


def test_stop_closes_idle_keep_alive_connections(ed_key):
    emulator = Emulator(standard_state(), tokens=[TOKEN]).start()
    client = httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        assert client.get("/v2/public/storage/folders").status_code == 200
        assert client.get("/v2/public/storage/folders").status_code == 200  # same connection (keep-alive)
        emulator.stop()
        with pytest.raises(httpx.TransportError):
            client.get("/v2/public/storage/folders")
    finally:
        client.close()


def test_concurrent_patches(ed_key, emu):
    emu.load(many_items(400))
    ids = [uid(f"item:many/{i}") for i in range(400)]
    errors = []

    def worker(part: int) -> None:
        with httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for start in range(part * 100, part * 100 + 100, 20):
                body = {"itemPatches": {i: {"clientMetadata": {"w": part}} for i in ids[start : start + 20]}}
                r = client.patch("/v2/public/storage/items/patch-bulk", json=body)
                if r.status_code != 200:
                    errors.append(r.status_code)

    threads = [threading.Thread(target=worker, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [i.metadata for i in emu.snapshot().items] == [{"w": n // 100} for n in range(400)]
    assert emu.request_counts()["by_route"] == {"PATCH storage/items/patch-bulk": 20}


def test_large_state_listing_is_cached(emu):
    emu.load(many_items(20_000))
    with httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        url = f"/v2/public/storage/folders/{uid('folder:many')}/items"
        token, count, start = None, 0, time.perf_counter()
        while True:
            params = {"pageSize": "1000", **({"pageToken": token} if token else {})}
            page = client.get(url, params=params).json()
            count += len(page["results"])
            token = page["nextPageToken"]
            if token is None:
                break
        elapsed = time.perf_counter() - start
    assert count == 20_000
    assert elapsed < 5
