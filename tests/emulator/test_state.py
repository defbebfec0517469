"""The emulator's state store: loading checks, UUID normalisation, cached listings."""

from __future__ import annotations

import time

import pytest

from reconciler.model import LiveFolder, LiveItem
from reconciler.snapshot import Snapshot
from reconciler.testing._state import ListingKey, State
from tests.emulator.conftest import IDS, standard_state, uid

F = uid("folder:f")


def key(folder: str | None = F) -> ListingKey:
    return ListingKey(
        folder, recursive=False, search=None, item_types=(), in_dataset=None, order="name", desc=False
    )


def one_folder(*items: LiveItem) -> Snapshot:
    return Snapshot(folders=[LiveFolder(F, None, "f", "f")], items=list(items))


@pytest.mark.parametrize(
    ("snapshot", "message"),
    [
        (
            Snapshot(folders=[LiveFolder(F, None, "a", "a"), LiveFolder(F, None, "b", "b")]),
            f"duplicate folder uuid {F}",
        ),
        (Snapshot(folders=[LiveFolder("nope", None, "a", "a")]), "badly formed hexadecimal UUID string"),
        (
            Snapshot(folders=[LiveFolder(F, uid("x"), "a", "a")]),
            f"folder {F}: unknown parent folder {uid('x')}",
        ),
        (
            Snapshot(folders=[LiveFolder(F, uid("g"), "a", "a"), LiveFolder(uid("g"), F, "b", "b")]),
            f"folder {F}: parents form a cycle",
        ),
        (one_folder(LiveItem(uid("i"), F, "x", "photo", {})), f"item {uid('i')}: unknown item_type 'photo'"),
        (
            one_folder(LiveItem(uid("i"), F, "x", "image", {}), LiveItem(uid("i"), F, "y", "image", {})),
            f"duplicate item uuid {uid('i')}",
        ),
        (
            one_folder(LiveItem(uid("i"), F, "x", "image", {}, uid("p"))),
            f"item {uid('i')}: unknown parent_item {uid('p')}",
        ),
        (
            one_folder(LiveItem(uid("i"), F, "x", "image", {"v": float("nan")})),
            "Out of range float values are not JSON compliant",
        ),
        (
            one_folder(LiveItem(uid("i"), F, "", "image", {})),
            f"item {uid('i')}: name must be a non-empty string",
        ),
        (Snapshot(schema={"k": {"ty": "bogus"}}), "schema key 'k': unknown type 'bogus'"),
        (
            Snapshot(schema={"k": {"ty": "number", "bound": float("inf")}}),
            "schema: Out of range float values are not JSON compliant",
        ),
    ],
)
def test_invalid_snapshots_are_refused(snapshot, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        State.from_snapshot(snapshot)


def test_uuids_are_normalised_to_lowercase():
    item = uid("i")
    state = State.from_snapshot(one_folder(LiveItem(item.upper(), F.upper(), "x", "image", {"k": 1})))
    snap = state.to_snapshot()
    assert [(i.uuid, i.folder, i.metadata) for i in snap.items] == [(item, F, {"k": 1})]


def test_round_trip_keeps_order_paths_and_children():
    snap = State.from_snapshot(standard_state()).to_snapshot()
    assert snap == standard_state()


def test_snapshot_is_a_deep_copy():
    state = State.from_snapshot(standard_state())
    snap = state.to_snapshot()
    snap.items[0].metadata["changed"] = True
    snap.schema["capture.weather"]["values"].append("x")
    assert state.to_snapshot() == standard_state()


def test_created_at_follows_snapshot_order():
    state = State.from_snapshot(standard_state())
    b, a = state.items[IDS.b], state.items[IDS.a]
    assert state.created_at(b.seq) < state.created_at(a.seq)


def test_listings_are_cached_until_a_rename():
    n = 100_000
    snap = one_folder(*(LiveItem(uid(f"i{i}"), F, f"n{(i * 7919) % n:06}", "image", {}) for i in range(n)))
    state = State.from_snapshot(snap)
    start = time.perf_counter()
    first = state.list_items(key())
    sort_time = time.perf_counter() - start
    assert len(first) == n
    assert [state.items[i].name for i in first[:2]] == ["n000000", "n000001"]
    start = time.perf_counter()
    assert state.list_items(key()) is first  # no re-sort per page
    assert time.perf_counter() - start < sort_time
    state.update_item(first[0], metadata_json='{"k": 1}', name=None, description=None, now="t")
    assert state.list_items(key()) is first  # metadata writes keep the order
    state.update_item(first[0], metadata_json=None, name="zzz", description=None, now="t")
    renamed = state.list_items(key())
    assert renamed is not first
    assert state.items[renamed[-1]].name == "zzz"
