"""Datasets (Encord's legacy data units, SPEC §7b) end to end through the real CLI on the embedded store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from reconciler.snapshot import read_snapshot
from reconciler.testing import Emulator
from tests.helpers.cli import Result, run, write

WS = "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite, path: live.db, seed: live.json}\n"
SCH = "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  weather: {type: enum, values: [rain, sunny]}\n  n: number\n"
DS = "d5000000-0000-4000-8000-000000000001"
F_UUID = "f0000000-0000-4000-8000-000000000001"
A_UUID = "a0000000-0000-4000-8000-000000000001"
B_UUID = "a0000000-0000-4000-8000-000000000002"
DH_A = "dddddddd-0000-4000-8000-00000000000a"
DH_B = "dddddddd-0000-4000-8000-00000000000b"
DH_L = "dddddddd-0000-4000-8000-00000000000c"
LIVE = {
    "format_version": "1",
    "schema": {"weather": {"ty": "enum", "values": ["rain", "sunny"]}, "n": {"ty": "variant", "hint": "number"}},
    "folders": [{"uuid": F_UUID, "parent": None, "name": "f"}],
    "items": [
        {"uuid": A_UUID, "folder": F_UUID, "name": "a.jpg", "item_type": "image",
         "client_metadata": {"n": 1, "theirs": "keep"}},
        {"uuid": B_UUID, "folder": F_UUID, "name": "b.jpg", "item_type": "image", "client_metadata": {}},
    ],
    "datasets": [
        {"hash": DS, "title": "cams", "rows": [
            {"data_hash": DH_A, "title": "a.jpg", "data_type": "IMAGE", "backing_item": A_UUID},
            {"data_hash": DH_B, "title": "b.jpg", "data_type": "IMAGE", "backing_item": B_UUID},
            {"data_hash": DH_L, "title": "legacy.png", "data_type": "IMAGE", "backing_item": None,
             "client_metadata": {"old": True}},
        ]},
    ],
}  # fmt: skip
DM = f"apiVersion: reconciler/v1\nkind: FileMetadata\ndataset: {DS}\n"


def workspace(tmp_path: Path, live: dict | None = None, /, **files: str) -> Path:
    base = {"ws.yaml": WS, "s.yaml": SCH, "live.json": json.dumps(live or LIVE)}
    base.update({k.replace("__", "."): v for k, v in files.items()})
    return write(tmp_path / "m", base)


def stored(root: Path) -> tuple[dict[str, object], dict[str, object]]:
    """Items' metadata by uuid, and the own metadata of data rows without a backing item by data hash."""
    db = sqlite3.connect(root / "live.db")
    try:
        items = {u: json.loads(md) for u, md in db.execute("SELECT uuid, metadata FROM items ORDER BY uuid")}
        rows = {
            h: json.loads(md)
            for h, md in db.execute("SELECT data_hash, metadata FROM data_rows WHERE metadata IS NOT NULL")
        }
        return items, rows
    finally:
        db.close()


class Store:
    """The live state of one test: the embedded store seeded from LIVE, or the emulator serving it."""

    def __init__(self, kind: str, tmp_path: Path, **files: str) -> None:
        self.kind = kind
        self.emu: Emulator | None = None
        self.env: dict[str, str] = {}
        if kind == "sqlite":
            self.root = workspace(tmp_path, **files)
        else:
            seed = tmp_path / "seed.json"
            seed.write_text(json.dumps(LIVE))
            self.emu = Emulator(read_snapshot(seed), tokens=["ds-token"]).start()
            self.env = {"ENCORD_API_TOKEN": "ds-token"}
            ws = f"apiVersion: reconciler/v1\nkind: Workspace\nprovider: {{type: encord, domain: {self.emu.url}}}\n"
            self.root = workspace(tmp_path, ws__yaml=ws, **files)

    def run(self, *args: str) -> Result:
        return run(["-C", str(self.root), *args], env=self.env)

    def state(self) -> tuple[dict[str, object], dict[str, object]]:
        if self.emu is None:
            return stored(self.root)
        snap = self.emu.snapshot()
        rows: dict[str, object] = {
            r.data_hash: r.metadata for d in snap.datasets for r in d.rows if r.backing_item is None
        }
        return {i.uuid: i.metadata for i in snap.items}, rows

    def close(self) -> None:
        if self.emu is not None:
            self.emu.stop()


@pytest.fixture(params=["sqlite", "encord"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_dataset_plan_apply_plan_rollback(tmp_path: Path, store_kind: str) -> None:
    manifest = DM + (
        'files:\n  - glob: "*.jpg"\n    metadata: {weather: rain}\n'
        "  - name: legacy.png\n    metadata: {n: 2}\n"
        f"  - uuid: {DH_B}\n    metadata: {{n: 5}}\n"
    )
    store = Store(store_kind, tmp_path, d__yaml=manifest)
    try:
        plan = store.run("plan", "--detailed-exitcode")
        assert (plan.code, plan.err) == (2, "")
        assert plan.out == (
            "Dataset cams:\n"
            "  ~ a.jpg                 merge\n"
            '      + weather           "rain"\n'
            "  ~ b.jpg                 merge\n"
            "      + n                 5\n"
            '      + weather           "rain"\n'
            "  ~ legacy.png            merge\n"
            "      + n                 2\n"
            "\n"
            "Plan: schema 0 to add, 0 to change, 0 to delete; files 3 to update (3 merge, 0 overwrite; 1 by the "
            "legacy per-row call), 0 unchanged.\n"
        )
        js = json.loads(store.run("plan", "--format", "json").out)
        ref = {"hash": DS, "title": "cams"}
        assert [(f["uuid"], f["folder"], f["name"], f["dataset"]) for f in js["files"]] == [
            (A_UUID, "cams", "a.jpg", {**ref, "data_hash": DH_A, "backing_item": A_UUID}),
            (B_UUID, "cams", "b.jpg", {**ref, "data_hash": DH_B, "backing_item": B_UUID}),
            (DH_L, "cams", "legacy.png", {**ref, "data_hash": DH_L, "backing_item": None}),
        ]
        assert js["summary"]["api_calls"]["data_row_writes"] == 1
        if store.emu is not None:  # reading the dataset is one v1 call, whatever its size
            assert store.emu.request_counts()["by_route"]["POST public dataset GET"] == 2
            store.emu.reset_counts()
        out = tmp_path / "p.json"
        assert store.run("plan", "--out", str(out)).code == 0
        applied = store.run("apply", str(out))
        assert (applied.code, applied.err) == (0, ""), applied.out
        if store.emu is not None:  # backed rows in one patch-bulk; the row without one by the legacy call
            routes = store.emu.request_counts()["by_route"]
            assert routes["PATCH storage/items/patch-bulk"] == 1
            assert routes["POST public datarow POST"] == 1
        items, rows = store.state()
        assert items == {
            A_UUID: {"n": 1, "theirs": "keep", "weather": "rain"},
            B_UUID: {"n": 5, "weather": "rain"},
        }
        assert rows == {DH_L: {"old": True, "n": 2}}
        again = store.run("plan", "--detailed-exitcode")
        assert (again.code, again.err) == (0, ""), again.out
        assert again.out.startswith("No changes.")
        journals = sorted((store.root / ".reconciler" / "journal").glob("*.jsonl"))
        back = store.run("rollback", str(journals[-1]), "--auto-approve")
        assert back.code == 0, back.out + back.err
        assert store.state() == (
            {A_UUID: {"n": 1, "theirs": "keep"}, B_UUID: {}},
            {DH_L: {"old": True}},
        )
    finally:
        store.close()


def plan_apply_plan(store: Store) -> str:
    """The plan's text; then apply it and check that a second plan shows no changes."""
    plan = store.run("plan", "--detailed-exitcode")
    assert (plan.code, plan.err) == (2, ""), plan.out
    applied = store.run("apply", "--auto-approve")
    assert (applied.code, applied.err) == (0, ""), applied.out
    again = store.run("plan", "--detailed-exitcode")
    assert (again.code, again.err) == (0, ""), again.out
    assert again.out.startswith("No changes.")
    return plan.out


def test_an_overwrite_dataset_manifest_replaces_each_units_whole_dict(
    tmp_path: Path, store_kind: str
) -> None:
    manifest = DM + (
        "mode: overwrite\nfiles:\n  - glob: 'a.*'\n    metadata: {weather: rain}\n"
        "  - name: legacy.png\n    metadata: {n: 3}\n"
    )
    store = Store(store_kind, tmp_path, d__yaml=manifest)
    try:
        assert plan_apply_plan(store) == (
            "Dataset cams:\n"
            "  ~ a.jpg                 overwrite\n"
            "      - n                 1\n"
            '      - theirs            "keep"\n'
            '      + weather           "rain"\n'
            "  ~ legacy.png            overwrite\n"
            "      + n                 3\n"
            "      - old               true\n"
            "\n"
            "Plan: schema 0 to add, 0 to change, 0 to delete; files 2 to update (0 merge, 2 overwrite; 1 by the "
            "legacy per-row call), 0 unchanged.\n"
        )
        assert store.state() == ({A_UUID: {"weather": "rain"}, B_UUID: {}}, {DH_L: {"n": 3}})
    finally:
        store.close()


def test_owns_and_defaults_on_a_dataset_manifest(tmp_path: Path, store_kind: str) -> None:
    manifest = DM + "owns: [n]\ndefaults: {weather: sunny}\nfiles:\n  - glob: '*'\n    metadata: {}\n"
    store = Store(store_kind, tmp_path, d__yaml=manifest)
    try:
        assert plan_apply_plan(store) == (
            "Dataset cams:\n"
            "  ~ a.jpg                 merge\n"
            "      - n                 1\n"
            '      + weather           "sunny"\n'
            "  ~ b.jpg                 merge\n"
            '      + weather           "sunny"\n'
            "  ~ legacy.png            merge\n"
            '      + weather           "sunny"\n'
            "\n"
            "Plan: schema 0 to add, 0 to change, 0 to delete; files 3 to update (3 merge, 0 overwrite; 1 by the "
            "legacy per-row call), 0 unchanged.\n"
        )
        assert store.state() == (
            {A_UUID: {"theirs": "keep", "weather": "sunny"}, B_UUID: {"weather": "sunny"}},
            {DH_L: {"old": True, "weather": "sunny"}},
        )
    finally:
        store.close()


BAD = {
    "folder and dataset": (
        DM + "folder: f\nfiles: [{glob: '*', metadata: {n: 1}}]\n",
        "Error: d.yaml:3:1: a FileMetadata manifest names one of folder or dataset, not both",
    ),
    "neither folder nor dataset": (
        "apiVersion: reconciler/v1\nkind: FileMetadata\nfiles: [{glob: '*', metadata: {n: 1}}]\n",
        "Error: d.yaml:1:1: a FileMetadata manifest needs folder (a folder path or UUID) or dataset "
        "(a dataset hash)",
    ),
    "recursive on a dataset": (
        DM + "recursive: true\nfiles: [{glob: '*', metadata: {n: 1}}]\n",
        "Error: d.yaml:4:1: recursive applies only to folder manifests (a dataset's data units are not in "
        "folders); remove it",
    ),
    "children on a dataset": (
        DM + "children: false\nfiles: [{glob: '*', metadata: {n: 1}}]\n",
        "Error: d.yaml:4:1: children applies only to folder manifests (a dataset's data units are not in "
        "folders); remove it",
    ),
    "unknown dataset": (
        "apiVersion: reconciler/v1\nkind: FileMetadata\ndataset: no-such-dataset\n"
        "files: [{glob: '*', metadata: {n: 1}}]\n",
        "Error: d.yaml:3:10: dataset 'no-such-dataset' not found",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_dataset_manifests(tmp_path: Path, case: str) -> None:
    manifest, expected = BAD[case]
    root = workspace(tmp_path, d__yaml=manifest)
    offline = case != "unknown dataset"  # validate reads no live state: it cannot know the dataset
    for command in (["validate"] if offline else []) + ["plan", "apply --auto-approve"]:
        res = run(["-C", str(root), *command.split()])
        assert (res.code, res.out, res.err) == (
            1,
            "",
            expected + "\n1 problem found; nothing was written.\n",
        ), command
    if offline:  # refused before the store is opened: no database is made
        assert not (root / "live.db").exists()
        return
    assert stored(root) == (
        {A_UUID: {"n": 1, "theirs": "keep"}, B_UUID: {}},
        {DH_L: {"old": True}},
    )


def test_an_unknown_dataset_hash_on_encord_is_a_located_error(tmp_path: Path) -> None:
    manifest, _ = BAD["unknown dataset"]
    store = Store("encord", tmp_path, d__yaml=manifest)
    try:
        before = store.state()
        for command in ("plan", "apply"):
            res = store.run(command, *(["--auto-approve"] if command == "apply" else []))
            assert (res.code, res.out) == (1, ""), command
            assert res.err == (
                "Error: d.yaml:3:10: v1 dataset GET (dataset no-such-dataset): no such, or no access to, the "
                "dataset or data row (AUTHORISATION_ERROR): dataset 'no-such-dataset' does not exist or no access "
                "to it\n1 problem found; nothing was written.\n"
            ), command
        assert store.state() == before
    finally:
        store.close()


FOLDER_M = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: f\n"


def test_a_dataset_and_a_folder_manifest_owning_one_key_of_one_file_conflict(tmp_path: Path) -> None:
    root = workspace(
        tmp_path,
        d__yaml=DM + "files:\n  - name: a.jpg\n    metadata: {weather: rain}\n",
        f__yaml=FOLDER_M + "files:\n  - glob: '*.jpg'\n    metadata: {weather: sunny}\n",
    )
    res = run(["-C", str(root), "plan"])
    assert (res.code, res.out) == (1, "")
    assert res.err == (
        "Error: f.yaml:1:1: conflict: d.yaml and f.yaml both own key 'weather' on cams/a.jpg\n"
        "1 problem found; nothing was written.\n"
    )
    assert stored(root)[0][A_UUID] == {"n": 1, "theirs": "keep"}


def test_an_overwrite_dataset_manifest_and_a_folder_manifest_on_one_file_conflict(tmp_path: Path) -> None:
    root = workspace(
        tmp_path,
        d__yaml=DM + "mode: overwrite\nfiles:\n  - name: b.jpg\n    metadata: {n: 3}\n",
        f__yaml=FOLDER_M + "files:\n  - name: b.jpg\n    metadata: {weather: sunny}\n",
    )
    res = run(["-C", str(root), "plan"])
    assert (res.code, res.out) == (1, "")
    assert res.err == (
        "Error: f.yaml:1:1: conflict: d.yaml and f.yaml select the same file cams/b.jpg; an overwrite "
        "manifest must be the only manifest on its files\n"
        "1 problem found; nothing was written.\n"
    )


def test_a_dataset_and_a_folder_manifest_on_different_keys_of_one_file_both_apply(tmp_path: Path) -> None:
    root = workspace(
        tmp_path,
        d__yaml=DM + "files:\n  - name: a.jpg\n    metadata: {weather: rain}\n",
        f__yaml=FOLDER_M + "files:\n  - name: a.jpg\n    metadata: {n: 7}\n",
    )
    applied = run(["-C", str(root), "apply", "--auto-approve"])
    assert (applied.code, applied.err) == (0, ""), applied.out
    assert stored(root)[0][A_UUID] == {"n": 7, "theirs": "keep", "weather": "rain"}
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.err) == (0, ""), again.out


def test_import_dataset_writes_a_dataset_manifest_that_plans_no_changes(
    tmp_path: Path, store_kind: str
) -> None:
    store = Store(store_kind, tmp_path)
    try:
        if store.emu is None:
            assert store.run("snapshot", "--out", str(tmp_path / "first.json")).code == 0  # seeds the store
        out = tmp_path / "imported"
        res = store.run("import", "--dataset", DS, "--out", str(out))
        assert (res.code, res.err) == (0, ""), res.out
        assert res.out.splitlines()[0].startswith(
            "Imported 0 schema key(s) and 0 folder(s) and 1 dataset(s) with 3 file(s) from "
        )
        assert (out / "files" / "dataset-cams.yaml").read_text().split("apiVersion: reconciler/v1\n")[1] == (
            "kind: FileMetadata\n"
            f"dataset: {DS}\n"
            "mode: merge\n"
            'owns: ["*"]\n'
            "files:\n"
            "  - name: a.jpg\n"
            "    metadata:\n"
            '      "n": 1\n'
            "      theirs: keep\n"
            "  - name: b.jpg\n"
            "    metadata: {}\n"
            "  - name: legacy.png\n"
            "    metadata:\n"
            "      old: true\n"
        )
        again = run(["-C", str(out), "plan", "--detailed-exitcode"], env=store.env)
        assert (again.code, again.err) == (
            0,
            "Warning: files/dataset-cams.yaml:15:15: key 'theirs' is not declared in the metadata schema\n"
            "Warning: files/dataset-cams.yaml:20:12: key 'old' is not declared in the metadata schema\n",
        )
        assert again.out.startswith("No changes.")
    finally:
        store.close()


def test_import_of_a_dataset_and_the_folders_of_its_files_is_refused(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    out = tmp_path / "imported"
    res = run(["-C", str(root), "import", "--folder", "f", "--dataset", DS, "--out", str(out)])
    assert (res.code, res.out) == (1, "")
    assert res.err == (
        f"Error: --dataset {DS}: its data units are files of the storage folders imported too, and a folder "
        "manifest and a dataset manifest that both own every key of one file conflict; import the dataset and "
        "the folders into separate directories\n"
    )
    assert list(out.iterdir()) == []


def test_snapshot_writes_the_datasets_and_seeds_an_equal_store(tmp_path: Path, store_kind: str) -> None:
    store = Store(store_kind, tmp_path)
    try:
        snap = tmp_path / "snap.json"
        args = ["--dataset", DS] if store.emu is not None else []  # Encord's API cannot list datasets
        res = store.run("snapshot", "--out", str(snap), *args)
        assert (res.code, res.err) == (0, ""), res.out
        assert res.out == f"Wrote 1 folder(s) and 2 file(s), 1 dataset(s) with 3 data unit(s) to {snap}.\n"
        assert json.loads(snap.read_text())["datasets"] == LIVE["datasets"]
        none = store.run("snapshot", "--out", str(tmp_path / "folders.json"), "--folder", "f")
        assert none.out.endswith(
            "Wrote 1 folder(s) and 2 file(s) to " + str(tmp_path / "folders.json") + ".\n"
        )
        assert "datasets" not in json.loads((tmp_path / "folders.json").read_text())
    finally:
        store.close()


def test_snapshot_of_a_dataset_whose_files_are_left_out_is_refused(tmp_path: Path) -> None:
    live = json.loads(json.dumps(LIVE))
    live["folders"].append({"uuid": "f0000000-0000-4000-8000-000000000002", "parent": None, "name": "g"})
    root = workspace(tmp_path, live)
    res = run(
        ["-C", str(root), "snapshot", "--out", str(tmp_path / "s.json"), "--folder", "g", "--dataset", DS]
    )
    assert (res.code, res.out) == (1, "")
    assert res.err == (
        f"Error: --dataset {DS}: data unit 'a.jpg' is backed by file {A_UUID}, which is outside the folders "
        "written (add its folder with --folder, or leave --folder out)\n"
    )
    assert not (tmp_path / "s.json").exists()


def big_dataset(n: int) -> dict:
    """LIVE plus ``n`` images in folder f, each backing a data unit of the dataset."""
    live = json.loads(json.dumps(LIVE))
    for i in range(n):
        u = f"b0000000-0000-4000-8000-{i:012d}"
        live["items"].append(
            {
                "uuid": u,
                "folder": F_UUID,
                "name": f"img{i:05d}.jpg",
                "item_type": "image",
                "client_metadata": {},
            }
        )
        live["datasets"][0]["rows"].append(
            {"data_hash": f"e0000000-0000-4000-8000-{i:012d}", "title": f"img{i:05d}.jpg", "data_type": "IMAGE",
             "backing_item": u}
        )  # fmt: skip
    return live


def test_a_source_over_1500_data_units_writes_in_bulk_of_at_most_1000(tmp_path: Path) -> None:
    live = big_dataset(1500)
    rows = "".join(json.dumps({"name": f"img{i:05d}.jpg", "metadata": {"n": i}}) + "\n" for i in range(1500))
    rows += json.dumps({"uuid": DH_L, "metadata": {"n": -1}}) + "\n"
    rows += json.dumps({"name": "nope.jpg", "metadata": {"n": 0}}) + "\n"
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(live))
    with Emulator(read_snapshot(seed), tokens=["ds-token"]) as emu:
        env = {"ENCORD_API_TOKEN": "ds-token"}
        ws = f"apiVersion: reconciler/v1\nkind: Workspace\nprovider: {{type: encord, domain: {emu.url}}}\n"
        root = workspace(
            tmp_path,
            live,
            ws__yaml=ws,
            d__yaml=DM + "on_missing: warn\nsource: rows.jsonl\n",
            rows__jsonl=rows,
        )
        plan = run(["-C", str(root), "plan", "--detailed-exitcode"], env=env)
        assert plan.code == 2, plan.err
        assert plan.err == "Warning: rows.jsonl:1502: name 'nope.jpg' matches no file in dataset 'cams'\n"
        assert plan.out.endswith(
            "files 1,501 to update (1,501 merge, 0 overwrite; 1 by the legacy per-row call), 0 unchanged.\n"
        )
        emu.reset_counts()
        applied = run(["-C", str(root), "apply", "--auto-approve"], env=env)
        assert applied.code == 0, applied.out + applied.err
        routes = emu.request_counts()["by_route"]
        assert routes["PATCH storage/items/patch-bulk"] == 2
        assert routes["POST public datarow POST"] == 1
        snap = emu.snapshot()
        assert {i.name: i.metadata.get("n") for i in snap.items if i.name.startswith("img")} == {
            f"img{i:05d}.jpg": i for i in range(1500)
        }
        again = run(["-C", str(root), "plan", "--detailed-exitcode"], env=env)
        assert again.code == 0, again.out + again.err


def test_limits_count_data_units_like_files(tmp_path: Path) -> None:
    ws = WS + "settings:\n  limits:\n    max_files: 2\n"
    root = workspace(tmp_path, ws__yaml=ws, d__yaml=DM + "files:\n  - glob: '*'\n    metadata: {n: 9}\n")
    res = run(["-C", str(root), "plan"])
    assert (res.code, res.out) == (1, "")
    assert res.err.startswith(
        "Error: blast-radius limit exceeded: the plan updates 3 files, more than settings.limits.max_files = 2."
    )


def test_a_title_two_data_units_share_is_an_error_naming_both(tmp_path: Path) -> None:
    live = json.loads(json.dumps(LIVE))
    live["datasets"][0]["rows"][1]["title"] = "a.jpg"
    root = workspace(
        tmp_path,
        live,
        d__yaml=DM + "source: rows.jsonl\nfiles:\n  - name: a.jpg\n    metadata: {n: 2}\n",
        rows__jsonl=json.dumps({"name": "a.jpg", "metadata": {"n": 3}}) + "\n",
    )
    res = run(["-C", str(root), "plan"])
    why = (
        f"name 'a.jpg' matches 2 data units in dataset 'cams' (data hashes {DH_A} and {DH_B}); select each by "
        "uuid (its data hash) instead"
    )
    assert (res.code, res.out) == (1, "")
    assert (
        res.err
        == f"Error: d.yaml:6:11: {why}\nError: rows.jsonl:1: {why}\n2 problems found; nothing was written.\n"
    )
    assert stored(root)[0] == {A_UUID: {"n": 1, "theirs": "keep"}, B_UUID: {}}
    by_hash = (
        DM
        + f"files:\n  - uuid: {DH_B}\n    metadata: {{n: 2}}\n  - glob: 'a.*'\n    metadata: {{weather: rain}}\n"
    )
    (root / "d.yaml").write_text(by_hash)
    (root / "rows.jsonl").unlink()
    applied = run(["-C", str(root), "apply", "--auto-approve"])
    assert applied.code == 0, applied.out + applied.err
    assert stored(root)[0] == {
        A_UUID: {"n": 1, "theirs": "keep", "weather": "rain"},
        B_UUID: {"n": 2, "weather": "rain"},
    }
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert again.code == 0, again.out + again.err


def test_validate_finds_conflicts_between_dataset_manifests_offline(tmp_path: Path) -> None:
    other = DM.replace(DS, "d5000000-0000-4000-8000-000000000099")
    root = workspace(
        tmp_path,
        d__yaml=DM + "files:\n  - name: a.jpg\n    metadata: {n: 2}\n",
        e__yaml=DM + "files:\n  - name: a.jpg\n    metadata: {n: 3}\n",
        o__yaml=other + "files:\n  - name: a.jpg\n    metadata: {n: 4}\n",  # another dataset: no conflict
    )
    res = run(["-C", str(root), "validate"])
    assert (res.code, res.out) == (1, "")
    assert res.err == (
        f"Error: e.yaml:5:11: conflict: manifests d.yaml and e.yaml both own 'n' on name 'a.jpg' in dataset '{DS}' "
        "(other selector at d.yaml:5:11)\n"
        "1 problem found; nothing was written.\n"
    )


def test_a_targeted_plan_of_a_dataset_manifest_checks_the_folder_manifests_it_leaves_out(
    tmp_path: Path,
) -> None:
    root = workspace(
        tmp_path,
        d__yaml=DM + "files:\n  - name: a.jpg\n    metadata: {weather: rain}\n",
        f__yaml=FOLDER_M + "files:\n  - glob: '*.jpg'\n    metadata: {weather: sunny}\n",
    )
    for target in ("d.yaml", "f.yaml"):
        res = run(["-C", str(root), "plan", "--target", target])
        assert (res.code, res.out) == (1, ""), target
        assert res.err == (
            "Error: f.yaml:1:1: conflict: d.yaml and f.yaml both own key 'weather' on cams/a.jpg\n"
            "1 problem found; nothing was written.\n"
        )
