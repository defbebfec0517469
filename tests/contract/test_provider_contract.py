"""What every StateProvider must do, whatever the store (alembic's testing/suite idea)."""

from __future__ import annotations

import pytest

from reconciler.errors import ProviderConflictError
from reconciler.model import LiveItem
from reconciler.providers.registry import identity_to_json
from tests.helpers.states import make_snapshot, uid

SCHEMA = {
    "a": {"ty": "variant", "hint": "number"},
    "e": {"ty": "enum", "values": ["x", "y"]},
    "emb": {"ty": "embedding", "size": 3, "api": None},
    "gone": {"ty": "tombstone", "deleted_ty": {"ty": "variant", "hint": "text"}},
    "hard": {"ty": "tombstone", "deleted_ty": None},
}


def test_schema_round_trip_keeps_order_and_shapes(make_provider):
    p = make_provider(make_snapshot({"f": []}, SCHEMA))
    assert p.read_schema() == SCHEMA
    assert list(p.read_schema()) == list(SCHEMA)
    new = {"z": {"ty": "variant", "hint": "text"}, **SCHEMA}
    p.write_schema(new)
    assert list(p.read_schema()) == ["z", *SCHEMA]


def test_empty_schema_reads_as_empty(make_provider):
    p = make_provider(make_snapshot({"f": []}))
    assert p.read_schema() == {}


def test_folders_by_path_and_uuid(make_provider):
    p = make_provider(make_snapshot({"top/mid/leaf": [("a.jpg", {})], "other": []}))
    assert [f.path for f in p.list_folders()] == ["other", "top", "top/mid", "top/mid/leaf"]
    leaf = p.resolve_folder("top/mid/leaf")
    assert (leaf.name, leaf.path, leaf.uuid) == ("leaf", "top/mid/leaf", uid("folder:top/mid/leaf"))
    assert p.resolve_folder(leaf.uuid).path == "top/mid/leaf"
    with pytest.raises(ProviderConflictError):
        p.resolve_folder("top/nope")


def test_listing_more_than_1000_files_recursive_and_flat(make_provider):
    files = [(f"f{i:05d}.jpg", {"i": i}) for i in range(2100)]
    p = make_provider(make_snapshot({"big": files, "big/sub": [("deep.jpg", {"d": True})]}))
    big = p.resolve_folder("big")
    flat = list(p.iter_items(big, recursive=False, children=False))
    assert len(flat) == 2100
    assert sorted(li.rel_name for li in flat)[:2] == ["f00000.jpg", "f00001.jpg"]
    assert {li.rel_name: li.item.metadata for li in flat}["f01234.jpg"] == {"i": 1234}
    rec = {li.rel_name for li in p.iter_items(big, recursive=True, children=False)}
    assert len(rec) == 2101 and "sub/deep.jpg" in rec


def test_child_items_of_an_image_group(make_provider):
    snap = make_snapshot({"scans": [("plain.jpg", {})]})
    folder = snap.folders[0].uuid
    group = LiveItem(uid("grp"), folder, "scan-07", "imageGroup", {"study": "S"})
    kids = [
        LiveItem(uid(f"k{i}"), folder, f"img{i}.png", "image", {"i": i}, parent_item=group.uuid)
        for i in (1, 2)
    ]
    snap.items += [group, *kids]
    p = make_provider(snap)
    f = p.resolve_folder("scans")
    assert sorted(li.rel_name for li in p.iter_items(f, recursive=False, children=False)) == [
        "plain.jpg",
        "scan-07",
    ]
    with_kids = {li.rel_name: li.item for li in p.iter_items(f, recursive=False, children=True)}
    assert sorted(with_kids) == ["plain.jpg", "scan-07", "scan-07/img1.png", "scan-07/img2.png"]
    assert with_kids["scan-07/img2.png"].parent_item == group.uuid
    assert with_kids["scan-07/img2.png"].metadata == {"i": 2}


def test_bulk_get_and_patch_replace_whole_dicts(make_provider):
    files = [(f"f{i:04d}.jpg", {"keep": i, "x": 0}) for i in range(1500)]
    p = make_provider(make_snapshot({"f": files}))
    uuids = [uid(f"item:f/{n}") for n, _ in files]
    patches = {u: {"x": 1} for u in uuids[:1000]}
    assert p.patch_items(patches) == dict.fromkeys(uuids[:1000])
    p.patch_items({u: {"x": 2, "keep": "y"} for u in uuids[1000:]})
    got = p.get_items(uuids)
    assert len(got) == 1500
    assert got[uuids[0]].metadata == {"x": 1}  # replaced wholesale, not merged
    assert got[uuids[1499]].metadata == {"x": 2, "keep": "y"}


def test_get_items_skips_files_that_no_longer_exist(make_provider):
    p = make_provider(make_snapshot({"f": [("a.jpg", {"k": 1})]}))
    a = uid("item:f/a.jpg")
    missing = "00000000-0000-4000-8000-000000000000"
    got = p.get_items([a, missing])
    assert list(got) == [a] and got[a].metadata == {"k": 1}


def test_unicode_and_nested_values_survive(make_provider):
    md = {
        "caption": "café 日本 \u00e9",
        "geo": {"latitude": 1.5, "longitude": -2},
        "kf": [1, 2, 3],
        "b": False,
    }
    p = make_provider(make_snapshot({"f": [("a.jpg", {})]}))
    a = uid("item:f/a.jpg")
    p.patch_items({a: md})
    assert p.get_items([a])[a].metadata == md


def test_identity_has_no_secrets(make_provider, provider_kind):
    from tests.contract.conftest import TOKEN

    p = make_provider(make_snapshot({"f": []}))
    assert p.identity.type == provider_kind
    assert TOKEN not in str(identity_to_json(p.identity))


#: One file's clientMetadata as stored (wire) and as every provider hands it to the engine (keys).
FRAMES_WIRE = {
    "label": "x",
    "$encord": {"other": 1, "frame_metadata": {"2": {"label": "keep"}, "13": {"clip": [0, 0, 0]}}},
}
FRAMES_KEYS = {
    "label": "x",
    "$encord": {"other": 1},
    "frames[2].label": "keep",
    "frames[13].clip": [0, 0, 0],
}


def test_per_frame_values_are_keys_on_every_read_and_wire_on_every_write(make_provider):
    p = make_provider(
        make_snapshot({"v": [("a.mp4", FRAMES_WIRE), ("b.mp4", {"plain": 1})]}, item_type="video")
    )
    a, b = uid("item:v/a.mp4"), uid("item:v/b.mp4")
    folder = p.resolve_folder("v")
    listed = {li.rel_name: li.item.metadata for li in p.iter_items(folder, recursive=False, children=False)}
    assert listed == {"a.mp4": FRAMES_KEYS, "b.mp4": {"plain": 1}}
    if p.capabilities.raw_listing:  # the raw listing decodes only what holds $encord, as keys
        raw = {rel: md for rel, _, _, md in p.iter_raw_items(folder, recursive=False, children=False)}
        assert raw == {"a.mp4": FRAMES_KEYS, "b.mp4": '{"plain": 1}'}
    assert p.get_items([a])[a].metadata == FRAMES_KEYS
    written = {**FRAMES_KEYS, "frames[13].clip": [1, 2, 3], "frames[20].label": "new"}
    del written["frames[2].label"]
    assert p.patch_items({a: written}) == {a: None}
    assert p.get_items([a])[a].metadata == written
    snap_items = {i.uuid: i.metadata for i in _stored(p)}
    assert snap_items[a] == {
        "label": "x",
        "$encord": {"other": 1, "frame_metadata": {"13": {"clip": [1, 2, 3]}, "20": {"label": "new"}}},
    }
    assert snap_items[b] == {"plain": 1}
    # Removing the last per-frame value leaves the rest of $encord as it was.
    assert p.patch_items({a: {"label": "x", "$encord": {"other": 1}}}) == {a: None}
    assert _stored_one(p, a) == {"label": "x", "$encord": {"other": 1}}


def test_per_frame_keys_beside_an_opaque_encord_value_fail_that_file_only(make_provider):
    p = make_provider(
        make_snapshot({"v": [("a.mp4", {"$encord": "opaque"}), ("b.mp4", {})]}, item_type="video")
    )
    a, b = uid("item:v/a.mp4"), uid("item:v/b.mp4")
    assert p.get_items([a])[a].metadata == {"$encord": "opaque"}
    answers = p.patch_items({a: {"$encord": "opaque", "frames[1].k": 1}, b: {"frames[1].k": 1}})
    assert answers == {
        a: "cannot write per-frame metadata: '$encord' holds str, not a mapping",
        b: None,
    }
    assert _stored_one(p, a) == {"$encord": "opaque"}
    assert _stored_one(p, b) == {"$encord": {"frame_metadata": {"1": {"k": 1}}}}


def _stored(p):
    """The items exactly as the store holds them (wire form): the SQLite rows, or the emulator's state."""
    import json
    import sqlite3

    from reconciler.providers.sqlite import SqliteProvider

    if isinstance(p, SqliteProvider):
        db = sqlite3.connect(f"file:{p.path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT uuid, metadata FROM items").fetchall()
        finally:
            db.close()
        return [LiveItem(u, "", "", "", json.loads(md)) for u, md in rows]
    import httpx

    doc = httpx.get(p._client.domain + "/_emulator/state").json()
    return [LiveItem(i["uuid"], "", "", "", i.get("client_metadata") or {}) for i in doc["items"]]


def _stored_one(p, uuid):
    return {i.uuid: i.metadata for i in _stored(p)}[uuid]
