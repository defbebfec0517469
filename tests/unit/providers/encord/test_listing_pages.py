"""``EncordProvider.iter_listed_pages`` (how the planner lists a folder) against ``iter_items`` (the careful
reader, item objects and all): on random folders, good and bad items mixed, the same files in the same order
with the same metadata, or the same one-line error; and ``read_index`` makes the same index either way."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestValidationError, ProviderResponseError, SourceLocation
from reconciler.model import LiveFolder, SourceSpec
from reconciler.plan import listing
from reconciler.plan.listing import LiveIndex, read_index
from reconciler.plan.planner import make_plan
from reconciler.providers.encord import EncordProvider
from reconciler.providers.encord import provider as encord_provider
from reconciler.providers.encord.provider import GROUP_ITEM_TYPES
from tests.helpers.desired import desired, manifest

from .fake_api import FakeApi, U

L = SourceLocation("m.yaml", 1, 1)
_ABSENT = object()
_TEXTS: list[Any] = [
    _ABSENT,
    None,
    "",
    "{}",
    '{"a": 1}',
    '{"a": [1.5, true, null], "b": {"c": "d"}}',
    '{"big": 12345678901234567890123}',
    '{"$encord": {"frame_metadata": {"3": {"k": 1}}}, "x": 2}',
    '{"\\u0024encord": {"frame_metadata": {"0": {"k": 1}}}}',
    '{"caf\\u00e9": NaN}',
    "[1, 2]",
    "not json",
    {"a": 1},
    5,
]


def _fill(api: FakeApi, rng: random.Random, bad: float) -> None:
    api.add_folder(U(1), "f")
    api.add_folder(U(2), "sub", U(1))
    for n in range(rng.randint(0, 40)):
        folder = U(2) if rng.random() < 0.2 else U(1)
        good = rng.random() >= bad
        md = rng.choice(_TEXTS[3:6]) if good else rng.choice(_TEXTS)
        kind: Any = "image" if good or rng.random() < 0.5 else rng.choice(["", 3, None, "image_group"])
        api.add_item(U(100 + n), folder, f"n{rng.randint(0, 30):02d}.jpg", kind, md)  # (names may repeat)
        item = api.items[U(100 + n)]
        if md is _ABSENT:
            del item["clientMetadata"]
        if not good and rng.random() < 0.2:
            item[rng.choice(["uuid", "parent"])] = rng.choice([None, "", 7])
        if not good and rng.random() < 0.1:
            item["client_metadata"] = rng.choice(_TEXTS[1:])
        if not good and rng.random() < 0.1:
            item["clientMetadataSignedUrl"] = rng.choice([None, "", 3])
        if item["itemType"] in GROUP_ITEM_TYPES:
            item["_children"] = []


def _careful(provider: EncordProvider, folder: LiveFolder, recursive: bool, children: bool) -> object:
    try:
        listed = provider.iter_items(folder, recursive=recursive, children=children)
        return [
            (li.rel_name, li.item.uuid, li.item.folder, li.item.metadata_text or li.item.metadata)
            for li in listed
        ]
    except ProviderResponseError as exc:
        return str(exc)


def _paged(
    provider: EncordProvider, folder: LiveFolder, recursive: bool, children: bool, defer: bool = False
) -> object:
    """The pages' rows; ``defer``: with texts left undecoded, each then checked (check_listed_text)."""
    flags: list[bool] | None = [] if defer else None
    try:
        rows = []
        for page in provider.iter_listed_pages(
            folder, recursive=recursive, children=children, unchecked=flags
        ):
            rows.extend(page)
            if flags is not None and flags[-1]:
                for row in page:
                    if type(row[3]) is str:
                        provider.check_listed_text(row[1], row[3])
        return rows
    except ProviderResponseError as exc:
        return str(exc)


class _ItemsOnly:
    """The provider as a reader that only has ``iter_items`` (read_index's file-by-file way)."""

    def __init__(self, provider: EncordProvider) -> None:
        self.capabilities = dataclasses.replace(provider.capabilities, paged_listing=False)
        self.iter_items = provider.iter_items


def _index(provider: object, folder: LiveFolder, recursive: bool, keep: Any) -> object:
    reports: list[tuple[object, ...]] = []
    try:
        index = read_index(
            provider,  # type: ignore[arg-type]  # (a reader with iter_items only, in one of the two)
            folder,
            recursive=recursive,
            children=False,
            on_progress=lambda *a: reports.append(a),
            keep=keep,
        )
        assert isinstance(index, LiveIndex)
        index.check_all()  # (the plan checks the texts it did not need: plan_files)
    except ProviderResponseError as exc:
        return str(exc)
    return (
        index.uuids,
        index.rels,
        index.metadata_raw,
        index.by_name,
        index.folders,
        index.ambiguous,
        list(index.elsewhere),
        reports,
    )


@pytest.mark.parametrize("seed", range(6))
def test_pages_list_what_iter_items_lists(
    api: FakeApi, provider: EncordProvider, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of 7 and a report every 5 files, so that pages and reports fall at every offset to each other.
    monkeypatch.setattr(encord_provider, "PAGE_SIZE", 7)
    monkeypatch.setattr(listing, "PROGRESS_EVERY", 5)
    rng = random.Random(seed)
    folder = LiveFolder(U(1), None, "f", "f")
    fast = 0
    for _ in range(25):
        api.items.clear()
        api.folders.clear()
        _fill(api, rng, bad=rng.choice([0.0, 0.0, 0.05, 0.3]))
        for recursive, children in ((False, False), (True, False), (False, True)):
            want = _careful(provider, folder, recursive, children)
            assert _paged(provider, folder, recursive, children) == want
            assert _paged(provider, folder, recursive, children, defer=True) == want
            fast += isinstance(want, list) and bool(want) and not recursive
        keep = (lambda u: u[-1] in "02468") if rng.random() < 0.3 else None
        recursive = rng.random() < 0.3
        assert _index(provider, folder, recursive, keep) == _index(
            _ItemsOnly(provider), folder, recursive, keep
        )
    assert fast > 10


@pytest.mark.parametrize("parallelism", [1, 4])
@pytest.mark.parametrize("bad", ["{not json", "[1, 2]"])
@pytest.mark.parametrize("row", ["none", "other", "same layout"])
def test_a_plan_meets_a_bad_live_text_as_the_listing_did(
    api: FakeApi, provider: EncordProvider, tmp_path: Path, bad: str, row: str, parallelism: int
) -> None:
    """Texts left undecoded by the listing are checked by the plan: a file no row selects, one whose row has
    other values, and one whose row is written like the server's text all get the listing's error."""
    api.add_folder(U(1), "f")
    for n in range(30):
        api.add_item(U(100 + n), U(1), f"n{n:02d}.jpg", "image", '{"a": 1}')
    api.items[U(117)]["clientMetadata"] = bad
    names = [f"n{n:02d}.jpg" for n in range(30) if row != "none" or n != 17]
    lines = [
        json.dumps({"name": n, "metadata": {"a": 2 if row == "other" and n == "n17.jpg" else 1}})
        for n in names
    ]
    if row == "same layout":
        lines[17] = '{"name": "n17.jpg", "metadata": ' + bad + "}"
    (tmp_path / "rows.jsonl").write_text("".join(x + "\n" for x in lines))
    m = dataclasses.replace(
        manifest("m.yaml", "f", on_missing="ignore"), source=SourceSpec("rows.jsonl", "jsonl", L)
    )
    with pytest.raises(ProviderResponseError) as info:
        make_plan(desired(m, root=str(tmp_path)), provider, parallelism=parallelism)
    what = "not valid JSON" if bad.startswith("{") else "not a JSON object"
    assert str(info.value) == f"GET storage/folders/{{uuid}}/items: item {U(117)}: clientMetadata is {what}"


@pytest.mark.parametrize("seed", range(4))
def test_plans_through_pages_equal_plans_through_items(
    api: FakeApi, provider: EncordProvider, tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan made from the paged listing (texts decoded only where needed) is the plan, or the error, of
    one made from iter_items (every item read and decoded by the listing)."""
    rng = random.Random(200 + seed)
    values: list[Any] = [0, 1, 2.5, True, "x", "", "null", "é", [1, 2], {"k": None}, None, 2**70]
    plans = 0

    for round_ in range(10):
        api.items.clear()
        api.folders.clear()
        api.add_folder(U(1), "f")
        live: dict[str, dict[str, Any]] = {}
        for n in range(25):
            name = f"n{n:02d}.jpg"
            live[name] = {k: rng.choice(values) for k in rng.sample(["a", "b", "c"], rng.randint(0, 3))}
            text = json.dumps(live[name], ensure_ascii=rng.random() < 0.8)
            if rng.random() < 0.03:
                text = rng.choice(["{not json", "[1]", '{"a": NaN}', ""])
            api.add_item(U(100 + n), U(1), name, "image", text)
        lines = []
        for name in rng.sample(sorted(live), rng.randint(0, 25)):
            md = dict(live[name]) if rng.random() < 0.7 else {"a": rng.choice(values)}
            compact = rng.random() < 0.3
            lines.append(
                json.dumps({"name": name, "metadata": md}, separators=(",", ":") if compact else None)
            )
        root = tmp_path / f"r{round_}"
        root.mkdir()
        (root / "rows.jsonl").write_text("".join(x + "\n" for x in lines))
        m = dataclasses.replace(
            manifest("m.yaml", "f", mode=rng.choice(["merge", "overwrite"]), on_missing="ignore"),
            source=SourceSpec("rows.jsonl", "jsonl", L),
        )
        out: list[object] = []
        for paged in (True, False):
            with monkeypatch.context() as mp:
                if not paged:
                    caps = dataclasses.replace(provider.capabilities, paged_listing=False)
                    mp.setattr(provider, "capabilities", caps)
                try:
                    p = make_plan(desired(m, root=str(root)), provider, now=dt.datetime(2026, 1, 1))
                    out.append((p.files, p.unchanged, p.warnings))
                except (ProviderResponseError, ManifestValidationError, ValueError) as exc:
                    out.append(f"{type(exc).__name__}: {exc}")  # (NaN in a live text: no fingerprint)
        assert out[0] == out[1], lines
        plans += not isinstance(out[0], str)
    assert plans > 3
