"""``plan --shard K/N`` (plan/shard.py): the N shard plans together are the unsharded plan, whichever way
the rule splits (whole folder groups, or files by uuid inside fewer folders than shards); conflicts and
selection errors are still found; a shard keeps only its own files."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestValidationError, SourceLocation
from reconciler.model import DesiredState, FileManifest, SourceSpec
from reconciler.plan import listing
from reconciler.plan.model import Plan
from reconciler.plan.planner import make_plan
from reconciler.plan.shard import Shard, ShardRule, uuid_shard
from reconciler.providers.base import StateProvider
from reconciler.providers.sqlite import SqliteProvider
from reconciler.schema import FieldSpec, KeyType
from reconciler.snapshot import Snapshot, SnapshotDataRow, SnapshotDataset, write_snapshot
from tests.helpers.desired import desired, manifest, schema, sel
from tests.helpers.states import make_snapshot, uid

FOLDERS = ["a", "a/b", "a/b/c", "b", "c", "c/d", "e", "f", "g"]
KEYS = ["k0", "k1", "k2", "k3"]


def sqlite(tmp_path: Path, snap: Snapshot, name: str = "live") -> SqliteProvider:
    seed = tmp_path / f"{name}.json"
    write_snapshot(seed, snap.schema, snap.folders, snap.items, snap.datasets)
    return SqliteProvider(tmp_path / f"{name}.db", seed=seed)


def with_source(m: FileManifest, path: str) -> FileManifest:
    return dataclasses.replace(m, source=SourceSpec(path, "jsonl", SourceLocation(m.path, 7, 9)))


def random_case(rng: random.Random, root: Path) -> tuple[Snapshot, DesiredState]:
    """A random organisation and random manifests on it: globs, names, uuids, source rows (one naming no
    file), recursive listings, owns patterns, layering on shared folders; now and then an overwrite
    manifest or a key two manifests give (conflicts)."""
    folders: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for f in rng.sample(FOLDERS, rng.randint(1, len(FOLDERS))):
        files = []
        for n in range(rng.randint(0, 30)):
            md = {k: rng.randint(0, 2) for k in [*KEYS, "m0", "m1", "m2"] if rng.random() < 0.4}
            files.append((f"{rng.choice('xyz')}{n}.{rng.choice(['jpg', 'png'])}", md))
        folders[f] = files
    snap = make_snapshot(folders, {k: {"ty": "variant", "hint": "number"} for k in KEYS[:2]})
    manifests: list[FileManifest] = []
    for n in range(rng.randint(1, 6)):
        path = f"m{n}.yaml"
        folder = rng.choice(sorted(folders))
        names = [name for name, _ in folders[folder]]
        rng.shuffle(names)

        def key() -> str:
            return "k0" if rng.random() < 0.05 else f"m{n}"  # noqa: B023

        sels = []
        if rng.random() < 0.6:
            sels.append(sel("glob", rng.choice(["*.jpg", "x*", "*"]), path, **{key(): rng.randint(0, 2)}))
        exact = names[: rng.randint(0, 3)]
        for name in exact:
            kind = rng.choice(["name", "uuid"])
            pattern = name if kind == "name" else uid(f"item:{folder}/{name}")
            sels.append(sel(kind, pattern, path, **{key(): rng.choice([0, 1, 2, None])}))
        m = manifest(
            path,
            folder,
            *sels,
            mode="overwrite" if rng.random() < 0.05 else "merge",
            owns=(f"m{n}*",) if rng.random() < 0.3 else (),
            recursive=rng.random() < 0.3,
            on_missing=rng.choice(["warn", "ignore"]),
        )
        if rng.random() < 0.5:
            rows = [
                json.dumps({"name": name, "metadata": {key(): rng.randint(0, 2)}})
                for name in names[len(exact) : len(exact) + len(names) // 2]
            ]
            rows.append(json.dumps({"name": "nowhere.jpg", "metadata": {f"m{n}": 1}}))
            (root / f"rows{n}.jsonl").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
            m = with_source(m, f"rows{n}.jsonl")
        manifests.append(m)
    keys: dict[str, Any] = {k: FieldSpec(KeyType.NUMBER) for k in KEYS[: rng.randint(1, 4)]}
    sm = schema(**keys)
    return snap, desired(*manifests, schema_manifest=sm, root=str(root))


def plan_or_errors(d: DesiredState, p: StateProvider, shard: Shard | None) -> Plan | list[str]:
    try:
        return make_plan(d, p, shard=shard)
    except ManifestValidationError as exc:
        return sorted(str(x) for x in exc.issues)


def file_rows(plan: Plan) -> list[tuple[Any, ...]]:
    return [
        (f.uuid, f.folder, f.name, f.strategy, f.manifest, f.live_fingerprint, f.changes) for f in plan.files
    ]


@pytest.mark.parametrize("seed", range(40))
def test_the_shards_together_are_the_unsharded_plan(tmp_path, seed):
    rng = random.Random(seed)
    snap, d = random_case(rng, tmp_path)
    p = sqlite(tmp_path, snap)
    try:
        whole = plan_or_errors(d, p, None)
        for count in range(1, 6):
            parts = [plan_or_errors(d, p, Shard(k, count)) for k in range(1, count + 1)]
            if isinstance(whole, list):
                # The unsharded plan fails: so does some shard, and every shard's errors are the plan's kind.
                assert any(isinstance(x, list) for x in parts), (count, whole)
                continue
            failed = [x for x in parts if isinstance(x, list)]
            assert failed == [], (count, failed)
            plans = [x for x in parts if isinstance(x, Plan)]
            rows = sorted(r for x in plans for r in file_rows(x))
            assert rows == sorted(file_rows(whole)), count
            assert len({r[0] for r in rows}) == len(rows)  # no file in two shards
            assert sum(x.unchanged for x in plans) == whole.unchanged
            assert plans[0].schema_changes == whole.schema_changes
            assert all(x.schema_changes == () for x in plans[1:])
            assert [x.shard for x in plans] == [Shard(k, count) for k in range(1, count + 1)]
            for key in ("update", "merge", "overwrite", "unchanged"):
                assert sum(x.file_counts()[key] for x in plans) == whole.file_counts()[key]
    finally:
        p.close()


def test_one_folder_is_split_by_uuid_and_each_shard_keeps_only_its_files(tmp_path, monkeypatch):
    files = [(f"f{n}.jpg", {"k0": n % 3}) for n in range(400)]
    snap = make_snapshot({"big": files})
    d = desired(manifest("m.yaml", "big", sel("glob", "*", k0=1)))
    kept: list[int] = []
    real = listing.read_index

    def spy(*args: Any, **kwargs: Any) -> listing.LiveIndex:
        index = real(*args, **kwargs)
        kept.append(len(index))
        return index

    monkeypatch.setattr("reconciler.plan.files.read_index", spy)
    p = sqlite(tmp_path, snap)
    try:
        plans = [make_plan(d, p, shard=Shard(k, 4)) for k in range(1, 5)]
    finally:
        p.close()
    expected = [
        sum(1 for name, _ in files if uuid_shard(uid(f"item:big/{name}"), 4) == k) for k in range(1, 5)
    ]
    assert kept == expected and sum(kept) == 400 and max(kept) < 150
    for k, plan in enumerate(plans, 1):
        assert {uuid_shard(f.uuid, 4) for f in plan.files} == {k}
    assert sum(len(x.files) for x in plans) == sum(1 for _, md in files if md["k0"] != 1)


def test_many_folders_are_split_whole_and_each_folder_is_listed_by_one_shard(tmp_path):
    snap = make_snapshot({f: [("a.jpg", {}), ("b.jpg", {})] for f in ["a", "a/b", "b", "c", "d"]})
    d = desired(
        *(
            manifest(f"{f.replace('/', '-')}.yaml", f, sel("glob", "*", k0=1))
            for f in ["a", "a/b", "b", "c", "d"]
        )
    )
    listed: list[list[str]] = []
    p = sqlite(tmp_path, snap)
    try:
        for k in range(1, 4):
            before = p.stats.by_route.get("GET folder items", 0)
            plan = make_plan(d, p, shard=Shard(k, 3))
            listed.append(sorted({f.folder for f in plan.files}))
            assert p.stats.by_route.get("GET folder items", 0) - before == len({f.folder for f in plan.files})
    finally:
        p.close()
    # "a" and "a/b" share a group (their listings may share files); four groups dealt over three shards.
    assert sorted(f for fs in listed for f in fs) == ["a", "a/b", "b", "c", "d"]
    assert any(fs == ["a", "a/b"] or {"a", "a/b"} <= set(fs) for fs in listed)
    assert all(fs for fs in listed)
    rules = [ShardRule(Shard(k, 3), ["a", "a/b", "b", "c", "d"]) for k in (1, 2, 3)]
    assert all(r.by_folder for r in rules)
    assert sorted(sum(r.lists(top) for top in "abcd") for r in rules) == [1, 1, 2]


def two_claims(tmp_path: Path, count: int) -> tuple[Snapshot, DesiredState, int]:
    """Two manifests on one big folder claim the key ``k0`` of the same file ``f7.jpg`` (a glob and a
    source row), which only one shard keeps."""
    files: list[tuple[str, dict[str, Any]]] = [(f"f{n}.jpg", {}) for n in range(60)]
    (tmp_path / "rows.jsonl").write_text('{"name": "f7.jpg", "metadata": {"k0": 2}}\n', encoding="utf-8")
    a = manifest("a.yaml", "big", sel("glob", "f7*", "a.yaml", k0=1))
    b = with_source(manifest("b.yaml", "big"), "rows.jsonl")
    owner = uuid_shard(uid("item:big/f7.jpg"), count)
    return make_snapshot({"big": files}), desired(a, b, root=str(tmp_path)), owner


@pytest.mark.parametrize("count", [2, 3, 5])
def test_a_conflict_on_a_file_is_found_by_the_shard_that_keeps_it(make_provider, tmp_path, count):
    snap, d, owner = two_claims(tmp_path, count)
    p = make_provider(snap)
    msg = "a.yaml:1:1: conflict: a.yaml and b.yaml both own key 'k0' on big/f7.jpg"
    with pytest.raises(ManifestValidationError) as whole:
        make_plan(d, p)
    assert [str(x) for x in whole.value.issues] == [msg.replace("a.yaml:1:1", "b.yaml:1:1")]
    for k in range(1, count + 1):
        if k == owner:
            with pytest.raises(ManifestValidationError) as exc:
                make_plan(d, p, shard=Shard(k, count))
            assert [str(x) for x in exc.value.issues] == [str(whole.value.issues[0])]
        else:
            # The other shards do not keep f7.jpg: no claim, no missing row (the row's file is listed).
            plan = make_plan(d, p, shard=Shard(k, count))
            assert plan.warnings == () and all(f.name != "f7.jpg" for f in plan.files)


def test_offline_conflicts_are_found_by_every_shard(tmp_path):
    snap = make_snapshot({f: [("a.jpg", {})] for f in "abcd"})
    d = desired(
        manifest("a.yaml", "a", sel("name", "a.jpg", "a.yaml", k0=1)),
        manifest("b.yaml", "a", sel("name", "a.jpg", "b.yaml", k0=2)),
        *(manifest(f"{f}.yaml", f, sel("glob", "*", k0=1)) for f in "bcd"),
    )
    p = sqlite(tmp_path, snap)
    try:
        for k in range(1, 5):
            with pytest.raises(ManifestValidationError) as exc:
                make_plan(d, p, shard=Shard(k, 4))
            assert [x.message for x in exc.value.issues] == [
                "conflict: manifests a.yaml and b.yaml both own 'k0' on name 'a.jpg' in folder 'a' "
                "(other selector at a.yaml:5:5)"
            ]
    finally:
        p.close()


def test_selection_errors_are_found_in_every_shard_of_one_folder(make_provider, tmp_path):
    """A row naming no file is reported by every shard; a name two files share is an error in each shard
    that keeps one of them."""
    files: list[tuple[str, dict[str, Any]]] = [(f"f{n}.jpg", {}) for n in range(40)]
    snap = make_snapshot({"big": files, "big/x": [("f1.jpg", {})]})
    (tmp_path / "rows.jsonl").write_text(
        '{"name": "f3.jpg", "metadata": {"k0": 1}}\n{"name": "gone.jpg", "metadata": {"k0": 1}}\n',
        encoding="utf-8",
    )
    m = with_source(manifest("m.yaml", "big", sel("name", "x/f1.jpg", k1=1), recursive=True), "rows.jsonl")
    d = desired(m, root=str(tmp_path))
    p = make_provider(snap)
    with pytest.raises(ManifestValidationError) as whole:
        make_plan(d, p)
    assert [x.message for x in whole.value.issues] == [
        "name 'gone.jpg' matches no file in folder 'big' (set on_missing: warn or ignore to allow)"
    ]
    for k in range(1, 4):
        with pytest.raises(ManifestValidationError) as exc:
            make_plan(d, p, shard=Shard(k, 3))
        assert [x.message for x in exc.value.issues] == [x.message for x in whole.value.issues]


def test_a_name_two_files_share_is_an_error_in_the_shards_that_keep_one(tmp_path):
    # Two files named "dup.jpg" in one folder; a name entry for it is ambiguous.
    snap = make_snapshot({"big": [(f"f{n}.jpg", {}) for n in range(30)]})
    folder = snap.folders[0].uuid
    from reconciler.model import LiveItem

    for n in range(2):
        snap.items.append(LiveItem(uid(f"dup{n}"), folder, "dup.jpg", "image", {}))
    d = desired(manifest("m.yaml", "big", sel("name", "dup.jpg", k0=1)))
    p = sqlite(tmp_path, snap)
    try:
        with pytest.raises(ManifestValidationError):
            make_plan(d, p)
        owners = {uuid_shard(uid(f"dup{n}"), 2) for n in range(2)}
        for k in (1, 2):
            if k in owners:
                with pytest.raises(ManifestValidationError) as exc:
                    make_plan(d, p, shard=Shard(k, 2))
                assert "name 'dup.jpg' matches" in str(exc.value.issues[0])
            else:
                make_plan(d, p, shard=Shard(k, 2))
    finally:
        p.close()


def test_the_hard_limits_hold_each_shard_to_its_share(tmp_path):
    from reconciler.errors import LimitExceededError
    from reconciler.model import Limits, WorkspaceSettings

    snap = make_snapshot({"big": [(f"f{n}.jpg", {}) for n in range(100)]})
    d = desired(manifest("m.yaml", "big", sel("glob", "*", k0=1)))
    d = dataclasses.replace(
        d,
        workspace=dataclasses.replace(d.workspace, settings=WorkspaceSettings(limits=Limits(max_files=90))),
    )
    p = sqlite(tmp_path, snap)
    try:
        with pytest.raises(LimitExceededError):
            make_plan(d, p)
        failed = []
        for k in range(1, 5):
            try:
                make_plan(d, p, shard=Shard(k, 4))
            except LimitExceededError as exc:
                failed.append(str(exc))
        assert failed and all(
            "more than this shard's share (1/4) of settings.limits.max_files = 90" in f for f in failed
        )
    finally:
        p.close()


@pytest.mark.parametrize("folders", [["a", "b", "c", "d"], ["a"]])
def test_renamed_keys_move_on_every_shard_share(tmp_path, folders):
    """A key rename moves values on every file holding the old key, those no manifest selects included (in
    folders no manifest names too): each file in exactly one shard, whichever way the rule splits."""
    from reconciler.model import DesiredKey, SchemaManifest

    live = {f: [(f"{f}{i}.jpg", {"old": i, "k0": 0}) for i in range(12)] for f in ["a", "b", "c", "d", "z"]}
    snap = make_snapshot(live, {"old": {"ty": "variant", "hint": "number"}})
    loc = SourceLocation("schema.yaml", 4, 3)
    sm = SchemaManifest({"new": DesiredKey(FieldSpec(KeyType.NUMBER), loc, renamed_from="old")}, loc)
    d = desired(*(manifest(f"{f}.yaml", f, sel("glob", "*1.jpg", k0=1)) for f in folders), schema_manifest=sm)
    p = sqlite(tmp_path, snap)
    try:
        whole = make_plan(d, p)
        assert len(whole.files) == 60
        for count in range(1, 5):
            plans = [make_plan(d, p, shard=Shard(k, count)) for k in range(1, count + 1)]
            assert sorted(r for x in plans for r in file_rows(x)) == sorted(file_rows(whole)), count
            assert [c.key for c in plans[0].schema_changes] == ["new"]
            assert all(x.schema_changes == () for x in plans[1:])
    finally:
        p.close()


def test_a_by_file_shard_does_not_warn_of_globs_matching_no_file(tmp_path):
    snap = make_snapshot({"big": [(f"f{n}.jpg", {}) for n in range(20)]})
    d = desired(manifest("m.yaml", "big", sel("glob", "f1*", k0=1), sel("glob", "zzz*", k0=2)))
    p = sqlite(tmp_path, snap)
    try:
        assert [w.message for w in make_plan(d, p).warnings] == ["glob 'zzz*' matches no file"]
        for k in (1, 2):
            assert make_plan(d, p, shard=Shard(k, 2)).warnings == ()
    finally:
        p.close()


DS = "5a1f0c3e-0000-4000-8000-0000000000d2"


def dataset_case(rng: random.Random) -> tuple[Snapshot, DesiredState]:
    """Folders (enough top groups to split whole) and a dataset whose units are files of all of them, some
    without a backing item; folder manifests and a dataset manifest on disjoint keys, now and then one key
    both give (a conflict)."""
    folders = {f: [(f"x{n}.jpg", {"m0": n % 2}) for n in range(rng.randint(1, 12))] for f in "abcdefg"}
    snap = make_snapshot(folders)
    rows = [
        SnapshotDataRow(f"dh-{f}-{name}", f"{f}-{name}", "IMAGE", uid(f"item:{f}/{name}"))
        for f, files in sorted(folders.items())
        for name, _ in files
        if rng.random() < 0.7
    ]
    rows += [SnapshotDataRow(uid(f"orphan{n}"), f"o{n}.png", "IMAGE", None, {"m1": 0}) for n in range(5)]
    rng.shuffle(rows)
    snap.datasets = [SnapshotDataset(DS, "all cams", rows)]
    manifests = [manifest(f"{f}.yaml", f, sel("glob", "*", f"{f}.yaml", m0=1)) for f in "abcdefg"]
    key = "m0" if rng.random() < 0.2 else "m1"
    picks = [r.title for r in rng.sample(rows, min(3, len(rows)))]
    ds = manifest(
        "ds.yaml",
        "",
        sel("glob", "*", "ds.yaml", m1=1),
        *(sel("name", t, "ds.yaml", **{key: 2}) for t in picks),
    )
    manifests.append(dataclasses.replace(ds, dataset=DS))
    return snap, desired(
        *manifests, schema_manifest=schema(m0=FieldSpec(KeyType.NUMBER), m1=FieldSpec(KeyType.NUMBER))
    )


@pytest.mark.parametrize("seed", range(12))
def test_with_a_dataset_the_shards_together_are_the_unsharded_plan(tmp_path, seed):
    snap, d = dataset_case(random.Random(seed))
    p = sqlite(tmp_path, snap)
    try:
        whole = plan_or_errors(d, p, None)
        for count in range(2, 6):
            parts = [plan_or_errors(d, p, Shard(k, count)) for k in range(1, count + 1)]
            if isinstance(whole, list):  # a conflict: the shard that keeps the file reports it
                assert sorted(e for x in parts if isinstance(x, list) for e in x) == whole, count
                continue
            plans = [x for x in parts if isinstance(x, Plan)]
            assert len(plans) == count
            rows = sorted((*r, f.dataset) for x in plans for r, f in zip(file_rows(x), x.files, strict=True))
            assert rows == sorted((*r, f.dataset) for r, f in zip(file_rows(whole), whole.files, strict=True))
            assert len({r[0] for r in rows}) == len(rows)
    finally:
        p.close()
