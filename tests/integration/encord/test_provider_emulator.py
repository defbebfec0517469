"""EncordProvider against the Encord API emulator over real HTTP on 127.0.0.1: shapes, paging, counts, faults."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ProviderAuthError, ProviderConflictError, ProviderConnectionError
from reconciler.model import LiveFolder, LiveItem
from reconciler.providers.encord import (
    EncordProvider,
    RetryPolicy,
    auth_from_env,
    encord_provider_from_config,
)
from reconciler.snapshot import Snapshot
from reconciler.testing.emulator import Emulator
from reconciler.types import JsonValue
from tests.helpers.keys import make_ed25519_key

from .conftest import Keys, Sleeps, U, base_snapshot


def _counts(emulator: Emulator) -> dict[str, int]:
    by_route: dict[str, int] = emulator.request_counts()["by_route"]
    return by_route


def _big_snapshot(count: int) -> Snapshot:
    snap = base_snapshot()
    snap.folders.append(LiveFolder(U(9), None, "big", "big"))
    snap.items += [LiveItem(U(1_000_000 + n), U(9), f"f{n:05d}.jpg", "image", {"n": n}) for n in range(count)]
    return snap


# -- schema -----------------------------------------------------------------------------------------------------


def test_read_schema(provider: EncordProvider, emulator: Emulator) -> None:
    assert provider.read_schema() == {"capture.weather": {"ty": "enum", "values": ["rain", "snow", "sunny"]}}
    assert _counts(emulator) == {"GET organisation/client-metadata-schema-v2": 1}


def test_read_empty_schema(provider: EncordProvider, emulator: Emulator) -> None:
    emulator.load(Snapshot())
    assert provider.read_schema() == {}


def test_write_schema(provider: EncordProvider, emulator: Emulator) -> None:
    schema: dict[str, dict[str, Any]] = {
        "capture.weather": {"ty": "enum", "values": ["fog", "rain", "snow", "sunny"]},
        "capture.time": {"ty": "variant", "hint": "datetime"},
        "clip": {"ty": "embedding", "size": 512, "api": None},
        "legacy.note": {"ty": "tombstone", "deleted_ty": {"ty": "variant", "hint": "varchar"}},
    }
    provider.write_schema(schema)
    assert emulator.snapshot().schema == schema
    assert provider.read_schema() == schema
    assert list(provider.read_schema()) == list(schema)
    assert provider.stats.writes == 1
    assert _counts(emulator) == {
        "GET organisation/client-metadata-schema-v2": 2,
        "POST organisation/client-metadata-schema-v2": 1,
    }


# -- folders ----------------------------------------------------------------------------------------------------


def test_list_folders(provider: EncordProvider, emulator: Emulator) -> None:
    assert [(f.path, f.uuid, f.parent) for f in provider.list_folders()] == [
        ("scans", U(5), None),
        ("traffic", U(1), None),
        ("traffic-archive", U(4), None),
        ("traffic/cams", U(2), U(1)),
        ("traffic/cams/2024", U(3), U(2)),
    ]
    assert _counts(emulator) == {"GET storage/folders": 1, "GET storage/folders/{uuid}/folders": 3}


def test_resolve_folder_by_path(provider: EncordProvider, emulator: Emulator) -> None:
    assert provider.resolve_folder("traffic/cams/2024") == LiveFolder(U(3), U(2), "2024", "traffic/cams/2024")
    # "traffic" also matches "traffic-archive" in Encord's loose search: only the exact name counts.
    assert provider.resolve_folder("traffic") == LiveFolder(U(1), None, "traffic", "traffic")
    assert _counts(emulator) == {"GET storage/folders": 2, "GET storage/folders/{uuid}/folders": 2}


def test_resolve_folder_by_uuid(provider: EncordProvider, emulator: Emulator) -> None:
    assert provider.resolve_folder(U(3)) == LiveFolder(U(3), U(2), "2024", "traffic/cams/2024")
    assert _counts(emulator) == {"GET storage/folders/{uuid}": 1}


def test_resolve_folder_missing_and_ambiguous(provider: EncordProvider, emulator: Emulator) -> None:
    with pytest.raises(ProviderConflictError) as info:
        provider.resolve_folder("traffic/bikes")
    assert str(info.value) == "no folder 'traffic/bikes': there is no folder named 'bikes' in 'traffic'"
    with pytest.raises(ProviderConflictError) as info:
        provider.resolve_folder(U(77))
    assert str(info.value) == f"no folder with UUID {U(77)} (or no access to it)"
    snap = base_snapshot()
    snap.folders.append(LiveFolder(U(8), None, "traffic", "traffic"))
    emulator.load(snap)
    with pytest.raises(ProviderConflictError) as info:
        provider.resolve_folder("traffic/cams")
    assert str(info.value) == (
        f"folder path 'traffic/cams' is ambiguous: 2 folders are named 'traffic' at the top level "
        f"({U(1)}, {U(8)}); use the folder UUID instead"
    )


def test_many_top_level_folders_page(provider: EncordProvider, emulator: Emulator) -> None:
    snap = Snapshot(folders=[LiveFolder(U(10_000 + n), None, f"d{n:04d}", f"d{n:04d}") for n in range(1200)])
    emulator.load(snap)
    emulator.reset_counts()
    provider_folders = provider.resolve_folder("d0042")
    assert provider_folders.uuid == U(10_042)
    assert _counts(emulator) == {"GET storage/folders": 1}


# -- listing ----------------------------------------------------------------------------------------------------


def test_list_2500_items_in_three_pages(provider: EncordProvider, emulator: Emulator) -> None:
    emulator.load(_big_snapshot(2500))
    folder = provider.resolve_folder("big")
    emulator.reset_counts()
    listed = list(provider.iter_items(folder, recursive=False, children=False))
    assert [x.rel_name for x in listed] == [f"f{n:05d}.jpg" for n in range(2500)]
    assert listed[1234].item == LiveItem(U(1_001_234), U(9), "f01234.jpg", "image", {"n": 1234})
    assert _counts(emulator) == {"GET storage/folders/{uuid}/items": 3}
    assert provider.stats.by_route["GET storage/folders/{uuid}/items"] == 3


def test_listing_metadata_and_names(provider: EncordProvider) -> None:
    cams = provider.resolve_folder("traffic/cams")
    listed = {x.rel_name: x.item for x in provider.iter_items(cams, recursive=False, children=False)}
    assert listed == {
        "cam01.mp4": LiveItem(U(100), U(2), "cam01.mp4", "video", {"capture.weather": "sunny"}),
        "cam02.mp4": LiveItem(U(101), U(2), "cam02.mp4", "video", {}),
    }


def test_recursive_listing_names(provider: EncordProvider, emulator: Emulator) -> None:
    top = provider.resolve_folder("traffic")
    emulator.reset_counts()
    names = sorted(x.rel_name for x in provider.iter_items(top, recursive=True, children=False))
    assert names == ["cams/2024/night.mp4", "cams/cam01.mp4", "cams/cam02.mp4", "readme.pdf"]
    # One recursive folder listing, then one plain item listing per folder (traffic, cams, cams/2024).
    assert _counts(emulator) == {
        "GET storage/folders/{uuid}/folders": 1,
        "GET storage/folders/{uuid}/items": 3,
    }
    cams = provider.resolve_folder("traffic/cams")
    night = [x for x in provider.iter_items(cams, recursive=True, children=False) if x.item.uuid == U(102)]
    assert night[0].rel_name == "2024/night.mp4"
    assert night[0].item.metadata == {"n": 1.5, "tags": ["a", "b"]}


def test_child_items(provider: EncordProvider, emulator: Emulator) -> None:
    scans = provider.resolve_folder("scans")
    emulator.reset_counts()
    top_only = [x.rel_name for x in provider.iter_items(scans, recursive=False, children=False)]
    assert sorted(top_only) == ["plain.png", "scan-07", "series-1"]
    emulator.reset_counts()
    listed = list(provider.iter_items(scans, recursive=False, children=True))
    assert sorted((x.rel_name, x.item.parent_item, x.item.uuid) for x in listed) == [
        ("plain.png", None, U(220)),
        ("scan-07", None, U(200)),
        ("scan-07/slice-1.png", U(200), U(201)),
        ("scan-07/slice-2.png", U(200), U(202)),
        ("series-1", None, U(210)),
        ("series-1/1.dcm", U(210), U(211)),
    ]
    names = [x.rel_name for x in listed]
    assert names.index("scan-07/slice-1.png") == names.index("scan-07") + 1  # children follow their group
    child = next(x.item for x in listed if x.item.uuid == U(201))
    assert child == LiveItem(U(201), U(5), "slice-1.png", "image", {"i": 1}, parent_item=U(200))
    assert _counts(emulator) == {
        "GET storage/folders/{uuid}/items": 1,
        "GET storage/folders/{uuid}/items/{uuid}/child-items": 2,
    }


# -- bulk reads and writes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 1000, 1001, 2500])
def test_get_and_patch_in_chunks_of_1000(provider: EncordProvider, emulator: Emulator, count: int) -> None:
    emulator.load(_big_snapshot(count))
    uuids = [U(1_000_000 + n) for n in range(count)]
    emulator.reset_counts()
    got = provider.get_items(uuids)
    assert list(got) == uuids
    assert got[uuids[-1]].metadata == {"n": count - 1}
    patches: dict[str, dict[str, JsonValue]] = {u: {"n": -n, "batch": "x"} for n, u in enumerate(uuids)}
    results: dict[str, str | None] = {}
    for start in range(0, count, 1000):  # the engine sends at most max_batch per call
        results.update(provider.patch_items(dict(list(patches.items())[start : start + 1000])))
    assert results == dict.fromkeys(uuids)
    chunks = math.ceil(count / 1000)
    assert _counts(emulator) == {
        "POST storage/items/get-bulk": chunks,
        "PATCH storage/items/patch-bulk": chunks,
    }
    live = {i.uuid: i.metadata for i in emulator.snapshot().items if i.folder == U(9)}
    assert live == {u: {"n": -n, "batch": "x"} for n, u in enumerate(uuids)}
    assert provider.stats.writes == chunks


def test_patch_items_more_than_1000_in_one_call(provider: EncordProvider, emulator: Emulator) -> None:
    emulator.load(_big_snapshot(2500))
    emulator.reset_counts()
    uuids = [U(1_000_000 + n) for n in range(2500)]
    assert provider.patch_items({u: {} for u in uuids}) == dict.fromkeys(uuids)
    assert _counts(emulator) == {"PATCH storage/items/patch-bulk": 3}


def test_patch_replaces_the_whole_dict(provider: EncordProvider, emulator: Emulator) -> None:
    assert provider.patch_items({U(100): {"other": 1}}) == {U(100): None}
    assert provider.get_items([U(100)])[U(100)].metadata == {"other": 1}


def test_get_items_skips_items_that_are_gone(provider: EncordProvider, emulator: Emulator) -> None:
    snap = _big_snapshot(1500)
    gone = {U(1_000_007), U(1_001_300)}
    snap.items = [i for i in snap.items if i.uuid not in gone]
    emulator.load(snap)
    uuids = [U(1_000_000 + n) for n in range(1500)]
    got = provider.get_items(uuids)
    assert list(got) == [u for u in uuids if u not in gone]


def test_patch_of_a_missing_item_marks_its_request(provider: EncordProvider, emulator: Emulator) -> None:
    result = provider.patch_items({U(100): {"a": 1}, U(999): {"a": 1}})
    assert set(result) == {U(100), U(999)}
    assert result[U(100)] == result[U(999)]
    reason = result[U(999)]
    assert reason is not None
    assert reason.startswith("PATCH storage/items/patch-bulk: no access to, or no such, file/folder")


# -- retries under faults ---------------------------------------------------------------------------------------


def test_retries_converge_under_faults(emulator: Emulator, keys: Keys, sleeps: Sleeps) -> None:
    emulator.load(_big_snapshot(2500))
    uuids = [U(1_000_000 + n) for n in range(2500)]
    # 30% of requests fail. The draws are seeded, so the sequence of outcomes is fixed; 10 attempts make a
    # budget running out (which request meets a run of failures depends on thread timing) vanishingly rare.
    emulator.set_faults(rate_429=0.15, retry_after_s=1, rate_503=0.1, rate_drop=0.05, seed=7)
    policy = RetryPolicy(sleep=sleeps, base_delay=0.01, max_delay=0.05, max_attempts=10)
    with EncordProvider(emulator.url, auth_from_env({"ENCORD_SSH_KEY": keys.pem}), retry=policy) as p:
        big = p.resolve_folder("big")
        for _ in range(3):
            listed = list(p.iter_items(big, recursive=False, children=False))
            assert len(listed) == 2500
            assert p.patch_items({u: {"ok": True} for u in uuids[:1000]}) == dict.fromkeys(uuids[:1000])
            assert list(p.get_items(uuids)) == uuids
        stats = dict(p.stats.by_route)
    counts = _counts(emulator)
    emulator.set_faults()
    assert all(i.metadata == {"ok": True} for i in emulator.snapshot().items if i.uuid in set(uuids[:1000]))
    assert 1.0 in sleeps.waits  # Retry-After from the 429s was honoured
    assert any(w < 1.0 for w in sleeps.waits)  # 503s and drops used the (tiny) backoff
    # Every attempt, failed or not, was counted on both sides.
    assert stats == counts
    assert sum(counts.values()) == 1 + 3 * (3 + 1 + 3) + len(sleeps.waits)


def test_429_storm_exhausts_the_budget(provider: EncordProvider, emulator: Emulator, sleeps: Sleeps) -> None:
    emulator.set_faults(rate_429=1.0, retry_after_s=2)
    with pytest.raises(ProviderConnectionError) as info:
        provider.read_schema()
    assert str(info.value) == (
        f"GET organisation/client-metadata-schema-v2 at {emulator.url} still failing after 6 attempt(s) and "
        "10.0 s of backoff (last: 429 Too Many Requests); try again later or lower parallelism"
    )
    assert sleeps.waits == [2.0] * 5
    assert _counts(emulator) == {"GET organisation/client-metadata-schema-v2": 6}


def test_dropped_connections_exhaust_the_budget(emulator: Emulator, keys: Keys, sleeps: Sleeps) -> None:
    emulator.set_faults(rate_drop=1.0)
    policy = RetryPolicy(sleep=sleeps, base_delay=0.01, max_attempts=3)
    with EncordProvider(emulator.url, auth_from_env({"ENCORD_SSH_KEY": keys.pem}), retry=policy) as p:
        with pytest.raises(ProviderConnectionError) as info:
            p.read_schema()
        assert str(info.value).startswith(
            f"GET organisation/client-metadata-schema-v2 at {emulator.url} still failing after 3 attempt(s) and "
        )
        assert str(info.value).endswith(
            "(last: RemoteProtocolError: Server disconnected without sending a response.); try again later or "
            "lower parallelism"
        )
        # A write batch that cannot get through is reported per file, like any failed request.
        result = p.patch_items({U(100): {}, U(101): {}})
        assert list(result) == [U(100), U(101)]
        assert all(r is not None and "still failing after 3 attempt(s)" in r for r in result.values())
    assert len(sleeps.waits) == 4


def test_real_retry_after_sleep_is_short(emulator: Emulator, keys: Keys) -> None:
    # One real (not injected) sleep, to show the default sleep path works: Retry-After 0 retries at once.
    emulator.set_faults(rate_429=0.5, retry_after_s=0, seed=3)
    with EncordProvider(emulator.url, auth_from_env({"ENCORD_SSH_KEY": keys.pem})) as p:
        for _ in range(5):
            assert p.read_schema() != {}


# -- credentials ------------------------------------------------------------------------------------------------


def test_wrong_key_is_401(emulator: Emulator) -> None:
    other_pem, _ = make_ed25519_key()
    auth = auth_from_env({"ENCORD_SSH_KEY": other_pem})
    with EncordProvider(emulator.url, auth) as p, pytest.raises(ProviderAuthError) as info:
        p.read_schema()
    assert str(info.value) == (
        f"Encord refused the credentials (401) at {emulator.url}: wrong key, or wrong region? "
        "US-region organisations use https://api.us.encord.com"
    )
    assert _counts(emulator) == {"GET organisation/client-metadata-schema-v2": 1}  # 401 is never retried


def test_bearer_token(emulator: Emulator) -> None:
    with EncordProvider(emulator.url, auth_from_env({"ENCORD_API_TOKEN": "tok-integration"})) as p:
        assert p.resolve_folder("traffic/cams").uuid == U(2)
        assert p.patch_items({U(101): {"via": "token"}}) == {U(101): None}
    wrong = auth_from_env({"ENCORD_API_TOKEN": "tok-wrong"})
    with EncordProvider(emulator.url, wrong) as p, pytest.raises(ProviderAuthError):
        p.read_schema()


def test_factory_with_encrypted_key_file(emulator: Emulator, tmp_path: Path) -> None:
    pem, pub = make_ed25519_key(b"s3cret")
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(pem)
    with Emulator(base_snapshot(), authorized_keys=[pub]) as emu:
        env = {"ENCORD_SSH_KEY_FILE": str(key_file), "ENCORD_SSH_KEY_PASSWORD": "s3cret"}
        with encord_provider_from_config(emu.url, env, parallelism=2, allow_insecure_http=False) as p:
            assert p.identity.location == emu.url
            assert p.resolve_folder(U(2)).path == "traffic/cams"
