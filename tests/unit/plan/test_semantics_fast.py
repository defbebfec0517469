"""Each fast path of the file semantics (plan/semantics.py, plan/files.py) says what the rule says.

The references below are the rules as README and SPEC state them, written the plain way: ``fnmatchcase``
for ``owns``, dict updates for layering, a built desired dict compared with ``values_equal`` for
"unchanged". Random manifests, live dicts, ``owns`` patterns and nulls are run through both.
"""

from __future__ import annotations

import fnmatch
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import SourceLocation
from reconciler.model import Assignment, FileSelector, SelectorKind, SourceSpec
from reconciler.plan.differ import values_equal
from reconciler.plan.model import KeyAction
from reconciler.plan.planner import make_plan
from reconciler.plan.policy import compile_glob
from reconciler.plan.semantics import CompiledManifest, conflict, plain_values
from reconciler.providers.sqlite import SqliteProvider
from reconciler.snapshot import write_snapshot
from tests.helpers.desired import desired, manifest
from tests.helpers.states import make_snapshot

KEYS = ["a", "b", "ab", "team.a", "team.b", "x", "b?", "[a]"]
PATTERNS = ["*", "a*", "b?", "[ab]*", "team.*", "x", "\\[a]", "[[]a]", "*.b", "nothing"]
VALUES: list[Any] = [0, 1, 1.0, 2.5, True, False, "1", "a", "", [1, 2], [1.0, 2], {"k": 1}, {"k": True}, None]
NAMES = [f"{d}{i}.jpg" for d in ("a", "b") for i in range(4)] + ["c/d.png"]
L = SourceLocation("m.yaml", 1, 1)


#: Keys a source row may carry (the unit-level tests also use keys that look like patterns).
ROW_KEYS = ["a", "b", "ab", "team.a", "team.b", "x", "a b"]


def rand_dict(rng: random.Random, nulls: bool, keys: list[str] = KEYS) -> dict[str, Any]:
    pool = VALUES if nulls else VALUES[:-1]
    return {k: rng.choice(pool) for k in rng.sample(keys, rng.randint(0, 5))}


def rand_manifest(rng: random.Random, source: SourceSpec | None = None) -> Any:
    mode = rng.choice(["merge", "merge", "overwrite"])
    owns = tuple(rng.sample(PATTERNS, rng.randint(0, 2))) if mode == "merge" else ()
    sels: list[FileSelector] = []
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(["glob", "name"])
        pattern = (
            rng.choice(["*.jpg", "a*", "b?.jpg", "**/*.png", "*"]) if kind == "glob" else rng.choice(NAMES)
        )
        if kind == "name" and any(s.kind is SelectorKind.NAME and s.pattern == pattern for s in sels):
            continue
        md = {k: Assignment(v, L) for k, v in rand_dict(rng, True).items()}
        sels.append(FileSelector(SelectorKind(kind), pattern, md, L))
    defaults = rand_dict(rng, True) if rng.random() < 0.5 else {}
    m = manifest("m.yaml", "f", *sels, mode=mode, owns=owns, defaults=defaults, on_missing="ignore")
    if source is not None:
        import dataclasses

        m = dataclasses.replace(m, source=source)
    return m


# --------------------------------------------------------------------------------------------- references


def ref_owns(m: Any, key: str, given: Mapping[str, Any]) -> bool:
    return m.mode.value == "overwrite" or key in given or any(fnmatch.fnmatchcase(key, p) for p in m.owns)


def ref_layer(
    m: Any, rel: str | None, row: Mapping[str, Any] | None, exact: FileSelector | None
) -> dict[str, Any]:
    out = {k: a.value for k, a in m.defaults.items()}
    if rel is not None:
        for s in m.files:
            if s.kind is SelectorKind.GLOB and compile_glob(s.pattern).match(rel):
                out.update({k: a.value for k, a in s.metadata.items()})
    out.update(row or {})
    if exact is not None:
        out.update({k: a.value for k, a in exact.metadata.items()})
    return out


def ref_desired(m: Any, given: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    if m.mode.value == "overwrite":
        return {k: v for k, v in given.items() if v is not None}
    out = dict(live)
    for key in set(given) | set(live):
        if ref_owns(m, key, given):
            if given.get(key) is None:
                out.pop(key, None)
            else:
                out[key] = given[key]
    return out


def same_dict(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------------------------- unit level


@pytest.mark.parametrize("seed", range(4))
def test_compiled_manifest_matches_the_rules(seed):
    rng = random.Random(seed)
    unchanged_seen = changed_seen = 0
    for _ in range(400):
        m = rand_manifest(rng)
        c = CompiledManifest(m)
        live = rand_dict(rng, nulls=rng.random() < 0.2)
        rel = rng.choice(NAMES)
        exact = rng.choice([None, *[s for s in m.files if s.kind is SelectorKind.NAME]])
        row = rand_dict(rng, True) if rng.random() < 0.5 else None
        given = c.layer(rel, row, exact)
        assert dict(given) == ref_layer(m, rel, row, exact)
        assert plain_values(
            c.layer_located(rel, {k: Assignment(v, L) for k, v in (row or {}).items()}, exact)
        ) == (ref_layer(m, rel, row, exact))
        if rng.random() < 0.5:  # a given close to live, so "unchanged" is often true
            given = {k: live[k] for k in rng.sample(sorted(live), rng.randint(0, len(live)))}
            if rng.random() < 0.3:
                given[rng.choice(KEYS)] = None
        for key in KEYS:
            assert c.owns(key, given) is ref_owns(m, key, given), (m.owns, key)
            assert c.owns_pattern(key) is any(fnmatch.fnmatchcase(key, p) for p in c.patterns)
        want = ref_desired(m, given, live)
        assert c.desired(given, live) == want
        fast = c.is_unchanged(given, live)
        assert fast is same_dict(want, live), (m.mode, m.owns, given, live)
        unchanged_seen += fast
        changed_seen += not fast
    assert unchanged_seen > 50 and changed_seen > 50  # both answers are exercised


@pytest.mark.parametrize("seed", range(3))
def test_conflict_matches_the_rule(seed):
    rng = random.Random(seed)
    found = 0
    for _ in range(500):
        ma, mb = rand_manifest(rng), rand_manifest(rng)
        ga, gb = rand_dict(rng, True), rand_dict(rng, True)
        live = rand_dict(rng, False)
        got = conflict(CompiledManifest(ma), ga, CompiledManifest(mb), gb, live)
        if "overwrite" in (ma.mode.value, mb.mode.value):
            assert got is None
            continue
        keys = set(ga) | set(gb) | set(live)
        assert got == sorted(k for k in keys if ref_owns(ma, k, ga) and ref_owns(mb, k, gb))
        found += bool(got)
    assert found > 50


# --------------------------------------------------------------------------------------------- whole plans


@pytest.mark.parametrize("seed", range(6))
def test_streaming_plan_matches_the_rules(tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file planner's fast paths (row text equal to the live JSON, values compared without a desired
    dict, the plain-row shortcut) give the plan the rules give, on the embedded store."""
    rng = random.Random(seed)
    compared = [0]
    is_unchanged = CompiledManifest.is_unchanged

    def counting(self: CompiledManifest, given: Any, live: Any) -> bool:
        same = is_unchanged(self, given, live)
        compared[0] += same
        return same

    monkeypatch.setattr(CompiledManifest, "is_unchanged", counting)
    by_text = 0
    for round_ in range(12):
        root = tmp_path / f"r{round_}"
        root.mkdir()
        live = {name: rand_dict(rng, rng.random() < 0.1, ROW_KEYS) for name in NAMES}
        snap = make_snapshot({"f": list(live.items())})
        write_snapshot(root / "seed.json", snap.schema, snap.folders, snap.items)
        source = SourceSpec("rows.jsonl", "jsonl", L) if rng.random() < 0.7 else None
        m = rand_manifest(rng, source)
        if rng.random() < 0.4:  # no defaults, no globs: rows are the files' values (the plain shortcuts)
            import dataclasses

            m = dataclasses.replace(
                m, defaults={}, files=tuple(s for s in m.files if s.kind is SelectorKind.NAME)
            )
        exact = {s.pattern: s for s in m.files if s.kind is SelectorKind.NAME}
        rows: dict[str, dict[str, Any]] = {}
        lines = []
        for name in rng.sample(NAMES, rng.randint(0, len(NAMES))):
            if name in exact:
                continue  # a file is selected exactly once per manifest
            # Often the live dict itself, written as json.dumps writes it (the text fast path).
            md = dict(live[name]) if rng.random() < 0.5 else rand_dict(rng, True, ROW_KEYS)
            rows[name] = md
            lines.append(json.dumps({"name": name, "metadata": md}))
        (root / "rows.jsonl").write_text("".join(line + "\n" for line in lines))
        if source is None:
            rows = {}
        compared[0] = 0
        provider = SqliteProvider(root / "live.db", seed=root / "seed.json")
        try:
            plan = make_plan(desired(m, root=str(root)), provider)
        finally:
            provider.close()
        want: dict[str, dict[str, Any]] = {}
        selected = 0
        for name in NAMES:
            hit = (
                name in rows
                or name in exact
                or any(s.kind is SelectorKind.GLOB and compile_glob(s.pattern).match(name) for s in m.files)
            )
            if not hit:
                continue
            selected += 1
            after = ref_desired(m, ref_layer(m, name, rows.get(name), exact.get(name)), live[name])
            if not same_dict(after, live[name]):
                want[name] = after
        got: dict[str, dict[str, Any]] = {}
        for f in plan.files:
            after = dict(live[f.name])
            for kc in f.changes:
                if kc.action is KeyAction.REMOVE:
                    after.pop(kc.key)
                else:
                    after[kc.key] = kc.after
            got[f.name] = after
        assert got == want, (m, rows)
        assert plan.unchanged == selected - len(want)
        by_text += plan.unchanged - compared[0]  # unchanged files never decoded: row text == live JSON
    assert by_text > 0
