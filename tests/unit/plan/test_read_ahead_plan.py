"""A plan whose JSONL source is read ahead by a forked process is the plan of reading it here.

Random live states and sources on the embedded store (the live text itself, changed values, bad values, bad
JSON, blank lines, names listed twice or not at all, undeclared keys) are planned with the read-ahead and
without it (``read_ahead`` giving ``None``, as where a process cannot fork): the plans, or the errors, are
equal, and the read-ahead was used.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import random
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestValidationError, SourceLocation
from reconciler.manifest import source as source_mod
from reconciler.model import SourceSpec
from reconciler.plan.planner import make_plan
from reconciler.providers.sqlite import SqliteProvider
from reconciler.schema import FieldSpec, KeyType
from reconciler.snapshot import write_snapshot
from tests.helpers.desired import desired, manifest, schema
from tests.helpers.states import make_snapshot

L = SourceLocation("m.yaml", 1, 1)


@pytest.fixture(autouse=True)
def _small_sources_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_mod, "AHEAD_MIN_BYTES", 0)  # (the sources here are small)


NAMES = [f"f{i:03d}.jpg" for i in range(150)]
VALUES: dict[str, list[Any]] = {
    "a": [1, 2.5, -3, "x", None],
    "b": ["x", "y", "", 5, None],
    "c": [True, False, None],
    "free": ["z", 7],
}


GOOD: dict[str, list[Any]] = {"a": [1, 2.5, -3, None], "b": ["x", "y", "", "null"], "c": [True, False]}


def rand_md(rng: random.Random) -> dict[str, Any]:
    return {k: rng.choice(v) for k, v in GOOD.items() if rng.random() < 0.8}


def row_line(rng: random.Random, name: str, live: dict[str, Any], good: bool) -> str:
    r = rng.random() * (0.8 if good else 1)
    if r < 0.55:
        return json.dumps({"name": name, "metadata": live}, ensure_ascii=False)  # the live text itself
    if r < 0.8:
        if good:
            return json.dumps({"name": name, "metadata": rand_md(rng)})
        md = {k: rng.choice(v) for k, v in VALUES.items() if rng.random() < 0.6}
        return json.dumps({"name": name, "metadata": md})
    if r < 0.85:
        return json.dumps({"name": rng.choice(NAMES), "metadata": live})  # maybe listed twice
    if r < 0.9:
        return json.dumps({"name": "nope.jpg", "metadata": {}})
    if r < 0.95:
        return rng.choice(["", "{", "[1]", '{"name": "f000.jpg"}'])
    return json.dumps({"metadata": live, "name": name})  # metadata not last


def plan(root: Path, m: Any) -> Any:
    provider = SqliteProvider(root / "live.db", seed=root / "seed.json")
    keys = schema(a=FieldSpec(KeyType.NUMBER), b=FieldSpec(KeyType.VARCHAR), c=FieldSpec(KeyType.BOOLEAN))
    try:
        p = make_plan(
            desired(m, schema_manifest=keys, root=str(root)),
            provider,
            now=datetime.datetime(2026, 1, 1),
        )
        return (p.files, p.unchanged, p.warnings, p.reads, p.schema_changes)
    except ManifestValidationError as exc:
        return str(exc)
    finally:
        provider.close()


@pytest.mark.parametrize("seed", range(6))
def test_a_read_ahead_plans_what_reading_here_plans(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = plan_rounds(tmp_path, seed, monkeypatch)
    assert outcomes == {str}  # (bad rows in every round: the errors are compared)


@pytest.mark.parametrize("seed", range(4))
def test_a_read_ahead_plans_what_reading_here_plans_good_rows(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = plan_rounds(tmp_path, seed, monkeypatch, good=True)
    assert outcomes == {tuple}


def plan_rounds(tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch, good: bool = False) -> set[type]:
    rng = random.Random(seed)
    monkeypatch.setattr(source_mod, "_BLOCK_BYTES", 256)
    monkeypatch.setattr(source_mod, "_FRAME_BYTES", 1024)
    if seed % 2:
        monkeypatch.setattr(source_mod, "_SPLIT_MIN", 0)  # the planning process reads the last part itself
    made: list[object] = []
    original = source_mod.read_ahead

    def counted(*args: Any) -> Any:
        reader = original(*args)
        made.append(reader)
        return reader

    used = [0]
    rows = source_mod.ReadAhead.rows

    def counted_rows(self: Any, *args: Any) -> Any:
        used[0] += 1
        return rows(self, *args)

    monkeypatch.setattr(source_mod.ReadAhead, "rows", counted_rows)
    outcomes = set()
    for round_ in range(5):
        root = tmp_path / f"r{round_}"
        root.mkdir()
        live = {name: rand_md(rng) for name in NAMES}
        snap = make_snapshot({"f": list(live.items())})
        write_snapshot(root / "seed.json", snap.schema, snap.folders, snap.items)
        names = rng.sample(NAMES, rng.randint(100, len(NAMES)))
        if rng.random() < 0.5:
            names.sort()  # (in listing order: runs of rows selected together, selection.selected)
        lines = [row_line(rng, name, live[name], good) for name in names]
        (root / "rows.jsonl").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
        m = dataclasses.replace(
            manifest("m.yaml", "f", mode=rng.choice(["merge", "overwrite"]), on_missing="warn"),
            source=SourceSpec("rows.jsonl", "jsonl", L),
        )
        monkeypatch.setattr(source_mod, "read_ahead", counted)
        with_reader = plan(root, m)
        monkeypatch.setattr(source_mod, "read_ahead", lambda *args: None)
        without = plan(root, m)
        assert with_reader == without, lines
        outcomes.add(type(without))
    assert len(made) == 5 and all(r is not None for r in made) and used[0] == 5
    return outcomes


def test_the_reader_is_stopped_when_the_listing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.errors import ProviderError

    rng = random.Random(1)
    live = {name: rand_md(rng) for name in NAMES}
    snap = make_snapshot({"f": list(live.items())})
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    lines = [row_line(rng, name, live[name], True) for name in NAMES]
    (tmp_path / "rows.jsonl").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    m = dataclasses.replace(manifest("m.yaml", "f"), source=SourceSpec("rows.jsonl", "jsonl", L))
    made: list[Any] = []
    original = source_mod.read_ahead

    def counted(*args: Any) -> Any:
        made.append(original(*args))
        return made[-1]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ProviderError("the store broke")

    monkeypatch.setattr(source_mod, "read_ahead", counted)
    monkeypatch.setattr(SqliteProvider, "iter_raw_pages", broken)
    with pytest.raises(ProviderError, match="the store broke"):
        plan(tmp_path, m)
    assert len(made) == 1 and made[0] is not None and made[0].pid is None


def test_a_row_changed_in_the_file_after_the_reader_read_it_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed file's row is built from the source's bytes the reader checked, without checking them again:
    where those bytes changed meanwhile (the file was rewritten during the plan), the row is an error, not a
    value nobody checked."""
    live = {name: {"a": 1} for name in NAMES[:20]}
    snap = make_snapshot({"f": list(live.items())})
    write_snapshot(tmp_path / "seed.json", snap.schema, snap.folders, snap.items)
    lines = [json.dumps({"name": name, "metadata": {"a": 1 if n != 7 else 2}}) for n, name in enumerate(live)]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    m = dataclasses.replace(manifest("m.yaml", "f"), source=SourceSpec("rows.jsonl", "jsonl", L))
    usual_row = source_mod.ReadAhead.usual_row

    def rewritten_first(self: Any, *args: Any) -> Any:
        data = source.read_bytes()
        source.write_bytes(data.replace(b'{"a": 2}', b'{"a": "x"}'))  # (no longer a number)
        return usual_row(self, *args)

    monkeypatch.setattr(source_mod.ReadAhead, "usual_row", rewritten_first)
    assert plan(tmp_path, m) == "rows.jsonl:8: the source file changed while it was being read; plan again"
    monkeypatch.setattr(source_mod.ReadAhead, "usual_row", usual_row)
    source.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    files = plan(tmp_path, m)[0]
    assert [(f.name, [(c.key, c.before, c.after) for c in f.changes]) for f in files] == [
        ("f007.jpg", [("a", 1, 2)])
    ]
