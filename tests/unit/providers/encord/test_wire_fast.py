"""The fast paths of the Encord provider against the careful ones they stand for.

``read_item`` takes a validator-free path for items whose declared keys all have the plain types a JSON
decoder gives; anything else goes through ``checked_item``. On random items, good and bad, both must give
the same item (every field, the server's text and the signed URL included) or the same one-line error.
A UUID already in canonical form is taken as it is; every other spelling goes through the ``uuid`` module.
"""

from __future__ import annotations

import json
import random
import uuid
from functools import partial
from typing import Any

import pytest

from reconciler.errors import ProviderResponseError
from reconciler.jsoncodec import try_loads_noting_strings
from reconciler.providers.encord.provider import _canonical
from reconciler.providers.encord.wire import WireItem, checked_item, plain_rows, read_item

_ABSENT = object()

_TEXTS: list[Any] = [
    _ABSENT,
    None,
    "",
    '{"a": 1}',
    '{"a": [1.5, true, null], "b": {"c": "d"}}',
    '{"big": 12345678901234567890123}',
    '{"$encord": {"frame_metadata": {"3": {"k": 1}}}, "x": 2}',
    '{"\\u0024encord": {"frame_metadata": {"0": {"k": 1}}}}',
    '{"$encord": {"other": 1}}',
    "[1, 2]",
    "12",
    '"text"',
    "not json",
    '{"a": 1',
    {"a": 1},
    {"$encord": {"frame_metadata": {"1": {"k": True}}}},
    [1],
    5,
    True,
]
_STRINGS: list[Any] = [_ABSENT, None, "", "x", "f0001.jpg", 0, 1.5, True, ["x"], {"x": 1}]
_UUIDS: list[Any] = [
    _ABSENT,
    None,
    "",
    "00000000-0000-4000-8000-000000000001",
    "00000000-0000-4000-8000-0000000000AB",
    7,
]
_URLS: list[Any] = [_ABSENT, None, "", "https://storage.example/md.json", 3, False]


def _random_item(rng: random.Random) -> object:
    if rng.random() < 0.03:
        return rng.choice([None, [], "item", 3])
    item: dict[str, Any] = {}
    choices: dict[str, list[Any]] = {
        "uuid": _UUIDS,
        "parent": _UUIDS,
        "name": _STRINGS,
        "itemType": _STRINGS,
        "clientMetadata": _TEXTS,
        "client_metadata": _TEXTS,
        "clientMetadataSignedUrl": _URLS,
    }
    for key, values in choices.items():
        # Mostly the good shape, so that the fast path is taken often.
        good = {
            "uuid": "00000000-0000-4000-8000-000000000001",
            "parent": "00000000-0000-4000-8000-0000000000f0",
            "name": "f0001.jpg",
            "itemType": "image",
            "clientMetadata": '{"k": "v", "n": 1.25}',
            "client_metadata": _ABSENT,
            "clientMetadataSignedUrl": _ABSENT,
        }[key]
        value = good if rng.random() < 0.7 else rng.choice(values)
        if value is not _ABSENT:
            item[key] = value
    if rng.random() < 0.3:
        item["description"] = rng.choice(["", None, 3])
    return item


def _outcome(fn: Any, raw: object, parent_item: str | None, folder: str | None) -> tuple[object, ...]:
    try:
        w: WireItem = fn(raw, parent_item=parent_item, folder=folder)
    except ProviderResponseError as exc:
        return ("error", str(exc))
    i = w.item
    return (
        i.uuid,
        i.folder,
        i.name,
        i.item_type,
        json.dumps(i.metadata, sort_keys=True),
        type(i.metadata),
        i.parent_item,
        i.metadata_text,
        w.metadata_url,
    )


@pytest.mark.parametrize("seed", range(4))
def test_fast_reader_agrees_with_the_validator(seed: int) -> None:
    rng = random.Random(seed)
    fast = flagged = 0
    for _ in range(3000):
        raw = _random_item(rng)
        parent_item = rng.choice([None, "00000000-0000-4000-8000-0000000000aa"])
        folder = rng.choice([None, "00000000-0000-4000-8000-0000000000f1"])
        want = _outcome(checked_item, raw, parent_item, folder)
        got = _outcome(read_item, raw, parent_item, folder)
        assert got == want, raw
        # As a page would vouch for its strings (no long integer, no \u escape anywhere in its text).
        _, plain = try_loads_noting_strings(json.dumps({"results": [raw]}).encode())
        vouched = _outcome(partial(read_item, plain_strings=plain), raw, parent_item, folder)
        assert vouched == want, raw
        fast += isinstance(raw, dict) and want[0] != "error"
        flagged += plain
    assert fast > 500  # the comparison covered many readable items, not only errors
    assert flagged > 1000


def test_a_page_vouches_for_its_strings_only_without_long_digits_or_escapes() -> None:
    def flag(page: object) -> bool:
        return try_loads_noting_strings(json.dumps(page).encode())[1]

    assert flag({"results": [{"clientMetadata": '{"n": 123456789012345678}'}]})
    assert not flag({"results": [{"clientMetadata": '{"n": 1234567890123456789}'}]})
    assert not flag({"results": [{"name": "caf\u00e9"}]})
    assert not flag({"results": [{"clientMetadata": '{"n": "\\u0031"}'}]})
    assert try_loads_noting_strings(b'{"results": [1}')[1] is False


def test_the_fast_reader_keeps_the_servers_text() -> None:
    raw = {
        "uuid": "00000000-0000-4000-8000-000000000001",
        "parent": "00000000-0000-4000-8000-0000000000f0",
        "name": "a.jpg",
        "itemType": "image",
        "clientMetadata": '{"b": 2, "a": [1.0, 2]}',
        "owner": "someone",
    }
    w = read_item(raw)
    assert w.metadata_url is None
    assert w.item.metadata == {"b": 2, "a": [1.0, 2]}
    assert w.item.metadata_text == '{"b": 2, "a": [1.0, 2]}'
    assert w.item.folder == "00000000-0000-4000-8000-0000000000f0"


def test_canonical_uuids_match_the_uuid_module() -> None:
    rng = random.Random(7)
    forms = [
        lambda u: str(u),
        lambda u: str(u).upper(),
        lambda u: u.hex,
        lambda u: "{" + str(u) + "}",
        lambda u: "urn:uuid:" + str(u),
        lambda u: str(u)[:-1],
        lambda u: str(u) + "0",
        lambda u: str(u).replace("-", "_"),
        lambda u: " " + str(u),
        lambda u: str(u) + "\n",
    ]
    for _ in range(5000):
        ref = rng.choice(forms)(uuid.UUID(int=rng.getrandbits(128)))
        try:
            want: str | None = str(uuid.UUID(ref))
        except ValueError:
            want = None
        assert _canonical(ref) == want, ref


_FOLDER = "00000000-0000-4000-8000-0000000000f0"


def _careful_rows(page: list[Any], plain: bool) -> list[tuple[object, ...]] | None:
    """What the listing makes of a page item by item: read_item per item, or None where the page needs more
    than the fast path can say (an error, a signed URL, per-frame values, an item of another folder)."""
    rows: list[tuple[object, ...]] = []
    for raw in page:
        try:
            w = read_item(raw, plain_strings=plain)
        except ProviderResponseError:
            return None
        i = w.item
        if w.metadata_url is not None or i.folder != _FOLDER or (i.metadata_text is None and i.metadata):
            return None
        rows.append((i.name, i.uuid, i.folder, i.metadata if i.metadata_text is None else i.metadata_text))
    return rows


@pytest.mark.parametrize("seed", range(4))
def test_a_page_read_without_item_objects_agrees_with_read_item(seed: int) -> None:
    rng = random.Random(100 + seed)
    taken = 0
    for _ in range(1500):
        page = [_random_item(rng) for _ in range(rng.choice([0, 1, 2, 3, 8]))]
        if rng.random() < 0.7:  # mostly good pages, so that the fast path is taken often
            page = [x for x in page if _careful_rows([x], False) is not None]
        _, plain = try_loads_noting_strings(json.dumps({"results": page}).encode())
        got = plain_rows(page, _FOLDER, plain)
        want = _careful_rows(page, plain)
        if got is not None:
            assert want is not None and got == want, page
            assert all(type(r[3]) is str or r[3] == {} for r in got)
            taken += bool(page)
        # (Declining is always allowed: the page is then read item by item.)
    assert taken > 300
