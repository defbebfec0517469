"""plan/listing.py: the compact folder listing, shared names recorded, raw text parsed on use, read-ahead."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import ProviderResponseError, SourceLocation
from reconciler.model import LiveFolder, LiveItem, SourceSpec
from reconciler.plan import listing
from reconciler.plan.listing import LiveIndex, RawListingProvider, read_index, read_index_and_source
from reconciler.providers.base import Capabilities, ListedItem
from tests.helpers.desired import manifest

F = LiveFolder("f-uuid", None, "f", "f")


class Listed:
    """A provider that lists parsed items only (like the Encord provider)."""

    capabilities = Capabilities()

    def __init__(self, items: list[tuple[str, str, dict]]) -> None:
        self.items = items

    def iter_items(self, folder: LiveFolder, *, recursive: bool, children: bool) -> Iterator[ListedItem]:
        for rel, uuid, md in self.items:
            yield ListedItem(rel, LiveItem(uuid, "sub-uuid" if "/" in rel else folder.uuid, rel, "image", md))


class Raw(Listed):
    """A provider that lists JSON text (like the embedded store)."""

    capabilities = Capabilities(raw_listing=True)

    def iter_raw_items(
        self, folder: LiveFolder, *, recursive: bool, children: bool
    ) -> Iterator[tuple[str, str, str, str]]:
        for rel, uuid, md in self.items:
            yield rel, uuid, "sub-uuid" if "/" in rel else folder.uuid, json.dumps(md)


def progress() -> tuple[list[tuple[str, int, int | None]], listing.Progress]:
    seen: list[tuple[str, int, int | None]] = []
    return seen, lambda stage, done, total: seen.append((stage, done, total))


@pytest.mark.parametrize("kind", [Listed, Raw])
def test_index_by_ordinal_name_and_uuid(kind):
    p = kind([("a.jpg", "U1", {"n": 1}), ("x/b.jpg", "U2", {})])
    assert isinstance(p, RawListingProvider) is (kind is Raw)
    seen, on_progress = progress()
    index = read_index(p, F, recursive=True, children=False, on_progress=on_progress)
    assert (index.uuids, index.rels, index.by_name) == (
        ["U1", "U2"],
        ["a.jpg", "x/b.jpg"],
        {"a.jpg": 0, "x/b.jpg": 1},
    )
    assert index.folders == {"f-uuid", "sub-uuid"}
    assert index.ordinal_of_uuid("u2") == 1 and index.ordinal_of_uuid("nope") is None
    assert index.metadata(0) == {"n": 1}
    assert index.ambiguous == {}
    assert seen == [("reading f", 0, None), ("reading f", 2, 2)]


def test_a_name_two_files_share_is_recorded_with_both_ordinals():
    p = Raw([("a.jpg", "U1", {}), ("x/y.jpg", "U2", {}), ("a.jpg", "U3", {}), ("x/y.jpg", "U4", {})])
    index = read_index(p, F, recursive=True, children=True, on_progress=lambda *a: None)  # type: ignore[arg-type]
    assert index.ambiguous == {"a.jpg": [0, 2], "x/y.jpg": [1, 3]}


def test_live_metadata_that_is_not_a_json_object_is_a_provider_error():
    index = LiveIndex(F)
    index.uuids += ["U1", "U2", "U3"]
    index.metadata_raw += ["{bad", "[1]", "  "]
    with pytest.raises(ProviderResponseError, match="file U1: its live metadata is not valid JSON"):
        index.metadata(0)
    with pytest.raises(ProviderResponseError, match="file U2: its live metadata is not a JSON object"):
        index.metadata(1)
    assert index.metadata(2) == {}


def test_read_ahead_reads_source_rows_while_listing(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(listing, "READ_AHEAD_ROWS", 2)
    (tmp_path / "rows.jsonl").write_text(
        "".join(json.dumps({"name": f"{i}.jpg", "metadata": {"n": i}}) + "\n" for i in range(5))
    )
    import dataclasses

    m = dataclasses.replace(
        manifest("m.yaml", "f"), source=SourceSpec("rows.jsonl", "jsonl", SourceLocation("m.yaml", 7, 9))
    )
    p = Listed([(f"{i}.jpg", f"U{i}", {}) for i in range(5)])
    errors: list = []
    index, rows = read_index_and_source(p, F, m, tmp_path, {}, errors, lambda *a: None)  # type: ignore[arg-type]
    assert len(index) == 5
    assert [(r.key, r.values) for r in rows] == [(f"{i}.jpg", {"n": i}) for i in range(5)]
    assert errors == []


def test_a_failed_listing_is_raised_on_the_planning_thread(tmp_path: Path):
    class Failing(Listed):
        def iter_items(self, folder, *, recursive, children):
            raise ProviderResponseError("listing failed")
            yield  # pragma: no cover

    (tmp_path / "rows.jsonl").write_text('{"name": "a.jpg", "metadata": {}}\n')
    import dataclasses

    m = dataclasses.replace(
        manifest("m.yaml", "f"), source=SourceSpec("rows.jsonl", "jsonl", SourceLocation("m.yaml", 7, 9))
    )
    with pytest.raises(ProviderResponseError, match="listing failed"):
        read_index_and_source(Failing([]), F, m, tmp_path, {}, [], lambda *a: None)  # type: ignore[arg-type]
