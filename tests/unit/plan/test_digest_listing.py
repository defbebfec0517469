"""The embedded store's digest listing plans exactly what the text listing plans.

A digest listing (``Capabilities.digest_listing``) keeps ``hash()`` of each file's metadata text instead of
the text, tells an unchanged file by the digest of its source row's metadata text, and re-reads from the
store the files it compares value by value. Random live states and source rows (the live text itself,
other layouts, nulls, per-frame metadata, escapes, big integers, uuid rows, any order) are planned both
ways: the plans are equal, the digest listing re-reads only what it compares, and in listing order a run
at a time.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestValidationError, ProviderConflictError, SourceLocation
from reconciler.model import Assignment, FileSelector, SelectorKind, SourceSpec
from reconciler.plan import listing
from reconciler.plan.listing import LiveIndex, read_index
from reconciler.plan.planner import make_plan
from reconciler.providers.sqlite import SqliteProvider
from reconciler.snapshot import write_snapshot
from tests.helpers.desired import desired, manifest
from tests.helpers.states import make_snapshot, uid

L = SourceLocation("m.yaml", 1, 1)
NAMES = [f"f{i:03d}.jpg" for i in range(60)]
VALUES: list[Any] = [
    0,
    1,
    2.5,
    True,
    "x",
    "",
    "null",
    "é",
    "a\u0001b",
    "$x",
    "back\\slash",
    [1, 2],
    {"k": None},
    2**70,
    None,
]
KEYS = ["a", "b", "c", "$encord", "n.x"]


def rand_md(rng: random.Random) -> dict[str, Any]:
    md = {k: rng.choice(VALUES) for k in rng.sample(KEYS[:3] + KEYS[4:], rng.randint(0, 4))}
    if rng.random() < 0.1:  # per-frame values, in the stored (wire) form
        md["$encord"] = {"frame_metadata": {str(rng.randint(0, 3)): {"a": rng.choice(VALUES[:6])}}}
    return md


def line(rng: random.Random, name: str, md: dict[str, Any]) -> str:
    if rng.random() < 0.15:
        return json.dumps({"uuid": uid(f"item:f/{name}").upper(), "metadata": md})
    if rng.random() < 0.3:  # another layout: the text differs, the values may not
        return json.dumps({"name": name, "metadata": md}, separators=(",", ":"), ensure_ascii=True)
    return json.dumps({"name": name, "metadata": md}, ensure_ascii=False)


def plan_both(root: Path, m: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, int]:
    """(digest listing plan or error, text listing plan or error, files re-read)."""
    reread = [0]
    original = SqliteProvider.read_raw_metadata

    def counting(self: SqliteProvider, uuids: Any, rowids: Any = ()) -> Any:
        reread[0] += len(uuids)
        return original(self, uuids, rowids)

    out: list[Any] = []
    with monkeypatch.context() as mp:
        mp.setattr(SqliteProvider, "read_raw_metadata", counting)
        for digest_listing in (True, False):
            caps = dataclasses.replace(SqliteProvider.capabilities, digest_listing=digest_listing)
            mp.setattr(SqliteProvider, "capabilities", caps)
            provider = SqliteProvider(root / "live.db", seed=root / "seed.json")
            try:
                plan = make_plan(
                    desired(m, root=str(root)), provider, now=__import__("datetime").datetime(2026, 1, 1)
                )
                out.append((plan.files, plan.unchanged, plan.warnings, plan.reads))
            except ManifestValidationError as exc:
                out.append(str(exc))
            finally:
                provider.close()
    return out[0], out[1], reread[0]


@pytest.mark.parametrize("ahead", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_a_digest_listing_plans_what_the_text_listing_plans(
    tmp_path: Path, seed: int, ahead: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ahead``: the source read by a second process too (``manifest.source.ReadAhead``), its usual rows
    matched by digest and by whether a value is ``null``, the text listing's plan the reference still."""
    from reconciler.manifest import source as source_mod

    rng = random.Random(seed)
    by_digest = 0
    used = [0]
    if ahead:
        rows = source_mod.ReadAhead.rows

        def counted_rows(self: Any, *args: Any) -> Any:
            used[0] += 1
            return rows(self, *args)

        for name, value in (("AHEAD_MIN_BYTES", 0), ("_BLOCK_BYTES", 512), ("_FRAME_BYTES", 2048)):
            monkeypatch.setattr(source_mod, name, value)
        monkeypatch.setattr(source_mod, "_SPLIT_MIN", 0 if seed % 2 else 1 << 30)
        monkeypatch.setattr(source_mod.ReadAhead, "rows", counted_rows)
    for round_ in range(8):
        root = tmp_path / f"r{round_}"
        root.mkdir()
        live = {name: rand_md(rng) for name in NAMES}
        snap = make_snapshot({"f": list(live.items())})
        write_snapshot(root / "seed.json", snap.schema, snap.folders, snap.items)
        names = list(NAMES) if rng.random() < 0.5 else rng.sample(NAMES, rng.randint(0, len(NAMES)))
        lines = []
        for name in names:
            md = dict(live[name]) if rng.random() < 0.6 else rand_md(rng)
            md.pop("$encord", None)  # (per-frame values in a row go under "frames", not in the wire form)
            lines.append(line(rng, name, md))
        (root / "rows.jsonl").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
        mode = rng.choice(["merge", "merge", "overwrite"])
        sels = []
        if rng.random() < 0.3:
            sels.append(FileSelector(SelectorKind.GLOB, "f00*", {"c": Assignment(1, L)}, L))
        m = dataclasses.replace(
            manifest("m.yaml", "f", *sels, mode=mode, on_missing="ignore"),
            source=SourceSpec("rows.jsonl", "jsonl", L),
        )
        with_digests, with_texts, _ = plan_both(root, m, monkeypatch)
        assert with_digests == with_texts, (m, lines)
        if not isinstance(with_digests, str):
            by_digest += with_digests[1]
    assert by_digest > 0
    assert (used[0] > 0) == ahead  # (a manifest with a glob of its own values is not read ahead)


def test_files_compared_value_by_value_are_re_read_a_run_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"f{i:04d}.jpg" for i in range(2000)]
    live = {name: {"a": i, "b": "x"} for i, name in enumerate(names)}
    snap = make_snapshot({"f": list(live.items())})
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    m = dataclasses.replace(manifest("m.yaml", "f"), source=SourceSpec("rows.jsonl", "jsonl", L))

    def plan(rows: list[str]) -> tuple[Any, int, int]:
        (tmp_path / "rows.jsonl").write_text("".join(r + "\n" for r in rows))
        calls = [0]
        original = SqliteProvider.read_raw_metadata

        def counting(self: SqliteProvider, uuids: Any, rowids: Any = ()) -> Any:
            calls[0] += 1
            return original(self, uuids, rowids)

        with monkeypatch.context() as mp:
            mp.setattr(SqliteProvider, "read_raw_metadata", counting)
            provider = SqliteProvider(tmp_path / "live.db", seed=tmp_path / "seed.json")
            try:
                p = make_plan(desired(m, root=str(tmp_path)), provider)
            finally:
                provider.close()
        return p, calls[0], len(p.files)

    # As json.dumps writes them: the text of the stored metadata, nothing read again.
    same = [json.dumps({"name": n, "metadata": live[n]}) for n in names]
    p, calls, changed = plan(same)
    assert (p.unchanged, changed, calls) == (2000, 0, 0)
    # Written without spaces, in listing order: every file compared, read again 1, 2, 4, ... 512 at a time.
    compact = [json.dumps({"name": n, "metadata": live[n]}, separators=(",", ":")) for n in names]
    p, calls, changed = plan(compact)
    assert (p.unchanged, changed) == (2000, 0)
    assert calls == 12  # 1, 2, 4, ..., 512 (1,023 files in 10 reads), then 512 and the last 465
    # In another order, (mostly) one at a time: the same plan.
    rng = random.Random(5)
    shuffled = rng.sample(compact, len(compact))
    p, calls, changed = plan(shuffled)
    assert (p.unchanged, changed) == (2000, 0)
    assert 1000 < calls <= 2000
    # One changed file among unchanged ones: it alone is read again.
    changed_rows = list(same)
    changed_rows[700] = json.dumps({"name": names[700], "metadata": {"a": -1, "b": "x"}})
    p, calls, changed = plan(changed_rows)
    assert (p.unchanged, changed, calls) == (1999, 1, 1)


def test_a_file_removed_while_planning_is_an_error_naming_it(tmp_path: Path) -> None:
    snap = make_snapshot({"f": [("a.jpg", {"n": 1}), ("b.jpg", {"n": 2})]})
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    provider = SqliteProvider(tmp_path / "live.db", seed=tmp_path / "seed.json")
    try:
        folder = provider.resolve_folder("f")
        index = read_index(provider, folder, recursive=False, children=False, on_progress=lambda *a: None)
        assert isinstance(index, LiveIndex) and index.digests is not None
        with sqlite3.connect(tmp_path / "live.db") as db:
            db.execute("DELETE FROM items WHERE name = 'b.jpg'")
        assert index.metadata(0) == {"n": 1}
        with pytest.raises(ProviderConflictError) as info:
            index.metadata(1)
        assert str(info.value) == (
            f"file {uid('item:f/b.jpg')} (f/b.jpg) was removed while the plan was being made; run the plan again"
        )
    finally:
        provider.close()


def test_a_digest_listing_keeps_no_text(tmp_path: Path) -> None:
    snap = make_snapshot(
        {
            "f": [
                ("a.jpg", {"n": 1}),
                ("b.jpg", {"n": None}),
                ("c.jpg", {"$encord": {"frame_metadata": {"3": {"k": 1}}}}),
                ("d.jpg", {"s": "\u0001"}),
            ]
        }
    )
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    provider = SqliteProvider(tmp_path / "live.db", seed=tmp_path / "seed.json")
    try:
        folder = provider.resolve_folder("f")
        index = read_index(provider, folder, recursive=False, children=False, on_progress=lambda *a: None)
    finally:
        provider.close()
    assert index.metadata_raw == []
    assert index.digests is not None
    assert [d == -1 for d in index.digests] == [False, False, True, False]  # per-frame values
    assert index.decoded == {2: {"frames[3].k": 1}}
    assert index.same_text(0, b'{"n": 1}') and not index.same_text(0, b'{"n":1}')
    assert not index.same_text(1, b'{"n": null}')
    assert index.same_text(3, b'{"s": "\\u0001"}')
    assert listing.REREAD_MAX == 512


def test_pages_list_what_the_raw_listing_lists_in_its_order(tmp_path: Path) -> None:
    from reconciler.model import LiveItem

    snap = make_snapshot(
        {
            "top": [("b.jpg", {"n": 2}), ("a.jpg", {"w": "é"})],
            "top/sub/deep": [("c.jpg", {})],
            "top/sub": [("d.jpg", {"$encord": {"frame_metadata": {"1": {"k": 1}}}})],
        }
    )
    top = snap.folders[0]
    group = LiveItem(uid("g"), top.uuid, "scan-07", "imageGroup", {"k": 1})
    snap.items += [group] + [
        LiveItem(uid(f"k{i}"), top.uuid, f"s{i}.png", "image", {"i": i}, parent_item=group.uuid)
        for i in (2, 1)
    ]
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    p = SqliteProvider(tmp_path / "live.db", seed=tmp_path / "seed.json")
    try:
        folder = p.resolve_folder("top")
        for recursive in (False, True):
            for children in (False, True):
                want = [
                    (rel, u, f, raw)
                    for rel, u, f, raw in p.iter_raw_items(folder, recursive=recursive, children=children)
                ]
                got = [
                    (rel, u, f, blob.decode())
                    for f, page in p.iter_raw_pages(folder, recursive=recursive, children=children)
                    for rel, u, blob, _ in page
                ]
                assert [w[:3] for w in want] == [g[:3] for g in got], (recursive, children)
                for (*_, raw), (*_, text) in zip(want, got, strict=True):
                    if isinstance(raw, str):  # (else per-frame values, decoded: compared just below)
                        assert raw == text
                index = read_index(
                    p, folder, recursive=recursive, children=children, on_progress=lambda *a: None
                )
                assert [index.metadata(i) for i in range(len(index))] == [
                    json.loads(raw) if isinstance(raw, str) else raw for *_, raw in want
                ]
    finally:
        p.close()


def test_a_re_read_by_rowid_falls_back_to_the_uuid(tmp_path: Path) -> None:
    """Rowids are a hint: a row that is not the file listed (the table was rebuilt) is found by its uuid."""
    snap = make_snapshot({"f": [("a.jpg", {"n": 1}), ("b.jpg", {"n": 2}), ("c.jpg", {"n": 3})]})
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    provider = SqliteProvider(tmp_path / "live.db", seed=tmp_path / "seed.json")
    try:
        a, b, c = (uid(f"item:f/{n}") for n in ("a.jpg", "b.jpg", "c.jpg"))
        with sqlite3.connect(tmp_path / "live.db") as db:
            rowid = dict(db.execute("SELECT uuid, rowid FROM items"))
        assert provider.read_raw_metadata([a, b], [rowid[a], rowid[b]]) == {a: '{"n": 1}', b: '{"n": 2}'}
        swapped = provider.read_raw_metadata([a, b, c], [rowid[b], rowid[a], 10**9])
        assert swapped == {a: '{"n": 1}', b: '{"n": 2}', c: '{"n": 3}'}
        assert provider.read_raw_metadata([uid("gone")], [rowid[a]]) == {}
    finally:
        provider.close()


@pytest.mark.parametrize("seed", range(4))
def test_a_text_listing_counts_unchanged_files_as_the_file_planner_would(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """selected() finds a row unchanged by its text (``texts``) as ``_FilePlanner.single`` would (the reference:
    the same plan with that shortcut off)."""
    from reconciler.plan import files

    rng = random.Random(50 + seed)
    caps = dataclasses.replace(SqliteProvider.capabilities, digest_listing=False)
    monkeypatch.setattr(SqliteProvider, "capabilities", caps)
    original = files.selected  # type: ignore[attr-defined]  # (imported there)
    shortcut = [0]

    def plan(root: Path, m: Any, fast: bool) -> Any:
        def choosing(*args: Any) -> Any:
            args = (*args[:9], args[9] if fast else None)
            shortcut[0] += fast and args[9] is not None
            return original(*args)

        provider = SqliteProvider(root / "live.db", seed=root / "seed.json")
        try:
            with monkeypatch.context() as mp:
                mp.setattr(files, "selected", choosing)
                p = make_plan(
                    desired(m, root=str(root)), provider, now=__import__("datetime").datetime(2026, 1, 1)
                )
            return p
        except ManifestValidationError as exc:
            return str(exc)
        finally:
            provider.close()

    unchanged = 0
    for round_ in range(8):
        root = tmp_path / f"r{round_}"
        root.mkdir()
        live = {name: rand_md(rng) for name in NAMES}
        snap = make_snapshot({"f": list(live.items())})
        write_snapshot(root / "seed.json", snap.schema, snap.folders, snap.items)
        names = list(NAMES) if rng.random() < 0.5 else rng.sample(NAMES, rng.randint(0, len(NAMES)))
        lines = []
        for name in names:
            md = dict(live[name]) if rng.random() < 0.6 else rand_md(rng)
            md.pop("$encord", None)
            lines.append(line(rng, name, md))
        (root / "rows.jsonl").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
        sels = []
        if rng.random() < 0.3:
            sels.append(FileSelector(SelectorKind.GLOB, "f00*", {"c": Assignment(1, L)}, L))
        m = dataclasses.replace(
            manifest("m.yaml", "f", *sels, mode=rng.choice(["merge", "overwrite"]), on_missing="ignore"),
            source=SourceSpec("rows.jsonl", "jsonl", L),
        )
        want = plan(root, m, fast=False)
        assert plan(root, m, fast=True) == want, (m, lines)
        if not isinstance(want, str):
            unchanged += want.unchanged
    assert unchanged > 0 and shortcut[0] > 0


def test_names_listed_in_increasing_order_make_by_name_only_when_asked(tmp_path: Path) -> None:
    """A digest listing whose names come strictly increasing (so all differ) makes ``by_name`` only when it is
    asked for; any other listing makes it as it lists (and finds the names files share): the same index as a
    text listing either way."""
    from reconciler.model import LiveItem

    snap = make_snapshot(
        {
            "top": [("b.jpg", {"n": 2}), ("a.jpg", {"n": 1})],
            "top/x": [("y.jpg", {"n": 4})],  # (top/x/y.jpg, and the top-level item named x/y.jpg)
            "top/z": [("c.jpg", {}), ("d.jpg", {})],
            "top/z/w": [("a.jpg", {})],
        }
    )
    top = snap.folders[0]
    group = LiveItem(uid("g"), top.uuid, "grp", "imageGroup", {})
    snap.items += [
        group,
        LiveItem(uid("k"), top.uuid, "c1.png", "image", {}, parent_item=group.uuid),
        LiveItem(uid("slash"), top.uuid, "x/y.jpg", "image", {"n": 3}),
    ]
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    p = SqliteProvider(tmp_path / "live.db", seed=tmp_path / "seed.json")
    try:
        made = {}
        for path in ("top", "top/z", "top/z/w"):
            folder = p.resolve_folder(path)
            for recursive in (False, True):
                for children in (False, True):
                    got = {}
                    for digests in (True, False):
                        index = read_index(
                            p,
                            folder,
                            recursive=recursive,
                            children=children,
                            on_progress=lambda *a: None,
                            digests=digests,
                        )
                        lazy = index._by_name is None
                        got[digests] = (lazy, index.rels, index.ambiguous, index.by_name)
                    assert got[True][1:] == got[False][1:], (path, recursive, children)
                    assert not got[False][0]
                    made[(path, recursive, children)] = got[True][0]
                    assert got[True][0] == (list(got[True][1]) == sorted(set(got[True][1])))
    finally:
        p.close()
    assert made[("top", False, False)] and made[("top/z", True, False)]
    assert not made[("top", True, False)]  # x/y.jpg twice
    assert not made[("top", False, True)]  # grp/c1.png is listed after x/y.jpg
