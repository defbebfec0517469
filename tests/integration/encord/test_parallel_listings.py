"""Folders are listed in parallel (``settings.parallelism``, ``plan --parallelism N``): the same plan, the same
requests, and the listings really overlap; a failed listing is the plan's error."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import LiveFolder, LiveItem
from reconciler.plan.listing import read_index
from reconciler.plan.prefetch import Prefetch
from reconciler.providers.base import Capabilities, ListedItem
from reconciler.testing.emulator import Emulator
from tests.helpers.cli import run, write
from tests.helpers.states import make_snapshot

TOKEN = "parallel-token"
FOLDERS = ["site-a", "site-b", "site-c", "site-d"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    snap = make_snapshot(
        {f: [(f"f{i:04d}.jpg", {"team.b": i}) for i in range(1500 + 100 * n)] for n, f in enumerate(FOLDERS)}
    )
    with Emulator(snap, tokens=[TOKEN]) as emu:
        yield emu


def _manifests(tmp_path: Path, url: str) -> Path:
    files = {
        "ws.yaml": "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: encord, domain: "
        + url
        + "}\n"
    }
    for n, f in enumerate(FOLDERS):
        files[f"{f}.yaml"] = (
            f"apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: {f}\n"
            f"files:\n  - glob: 'f00{n}*.jpg'\n    metadata: {{split: train}}\n"
        )
    return write(tmp_path / "m", files)


def _plan(root: Path, emulator: Emulator, *extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
    emulator.reset_counts()
    r = run(["-C", str(root), "plan", "--format", "json", *extra], env={"ENCORD_API_TOKEN": TOKEN})
    assert r.code == 0, r.err
    data = json.loads(r.out)
    data.pop("created_at")
    return data, emulator.request_counts()


def test_the_plan_and_its_requests_are_the_same_at_any_parallelism(
    tmp_path: Path, emulator: Emulator
) -> None:
    root = _manifests(tmp_path, emulator.url)
    one, calls_one = _plan(root, emulator, "--parallelism", "1")
    four, calls_four = _plan(root, emulator, "--parallelism", "4")
    default, calls_default = _plan(root, emulator)  # settings.parallelism: 4
    assert one == four == default
    assert calls_one == calls_four == calls_default
    assert calls_four["by_route"]["GET storage/folders/{uuid}/items"] == 2 + 2 + 2 + 2  # pages of 1000
    assert sum(len(f["changes"]) for f in one["files"]) == 4 * 10  # f000*.jpg in site-a, f001*.jpg in b, ...
    assert one["summary"]["api_calls"] == four["summary"]["api_calls"] == {"reads": 13, "writes": 0}


class _Gated:
    """A provider whose listings all wait at one barrier: they finish only if they run at the same time."""

    capabilities = Capabilities(parallel_reads=True)

    def __init__(self, parties: int, fail: str | None = None) -> None:
        self.barrier = threading.Barrier(parties, timeout=20)
        self.fail = fail

    def iter_items(self, folder: LiveFolder, *, recursive: bool, children: bool) -> Iterator[ListedItem]:
        self.barrier.wait()
        if folder.uuid == self.fail:
            raise RuntimeError(f"listing {folder.path} failed")
        yield ListedItem("x.jpg", LiveItem(f"{folder.uuid}-x", folder.uuid, "x.jpg", "image", {"k": 1}))


def _folder(n: int) -> LiveFolder:
    return LiveFolder(f"u{n}", None, f"f{n}", f"f{n}")


def test_listings_overlap_up_to_the_parallelism() -> None:
    provider = _Gated(3)
    seen: list[tuple[str, int, int | None]] = []
    with Prefetch(provider, 3, lambda s, n, t: seen.append((s, n, t)), read_index) as pre:  # type: ignore[arg-type]
        for n in range(3):
            pre.start(_folder(n), recursive=False, children=False)
        indexes = [pre.get(_folder(n), recursive=False, children=False)[0] for n in range(3)]
    assert [ix.uuids for ix in indexes] == [["u0-x"], ["u1-x"], ["u2-x"]]
    assert ("reading f2", 1, 1) in seen


def test_a_failed_listing_is_raised_when_its_folder_is_needed() -> None:
    provider = _Gated(2, fail="u1")
    with Prefetch(provider, 2, lambda s, n, t: None, read_index) as pre:  # type: ignore[arg-type]
        for n in range(2):
            pre.start(_folder(n), recursive=False, children=False)
        assert pre.get(_folder(0), recursive=False, children=False)[0].uuids == ["u0-x"]
        with pytest.raises(RuntimeError, match="listing f1 failed"):
            pre.get(_folder(1), recursive=False, children=False)


def test_without_parallel_reads_folders_are_listed_when_needed() -> None:
    provider = _Gated(1)
    provider.capabilities = Capabilities(parallel_reads=False)
    with Prefetch(provider, 4, lambda s, n, t: None, read_index) as pre:  # type: ignore[arg-type]
        pre.start(_folder(0), recursive=False, children=False)
        assert pre.get(_folder(0), recursive=False, children=False)[0].uuids == ["u0-x"]


def test_look_ups_and_the_listings_they_start_stay_within_the_parallelism(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listings start while other folders are still being looked up; over real HTTP, requests at once (counted by
    the emulator as they arrive and leave) never exceed ``--parallelism``, and the plan and its requests are those
    of one request at a time."""
    from reconciler.testing import emulator as emulator_mod

    folders = [f"site-{n}" for n in range(7)]
    snap = make_snapshot({f: [(f"f{i:04d}.jpg", {"team.b": i}) for i in range(1200)] for f in folders})
    lock = threading.Lock()
    now = {"in": 0, "max": 0}
    original = emulator_mod._Handler._dispatch

    def counted(self: Any) -> None:
        with lock:
            now["in"] += 1
            now["max"] = max(now["max"], now["in"])
        try:
            original(self)
        finally:
            with lock:
                now["in"] -= 1

    monkeypatch.setattr(emulator_mod._Handler, "_dispatch", counted)
    with Emulator(snap, tokens=[TOKEN], latency_ms=20) as emu:
        files = {
            "ws.yaml": "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: encord, domain: "
            + emu.url
            + "}\n"
        }
        for f in folders:
            files[f"{f}.yaml"] = (
                f"apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: {f}\n"
                "files:\n  - glob: 'f000*.jpg'\n    metadata: {split: train}\n"
            )
        root = write(tmp_path / "m", files)
        three, calls_three = _plan(root, emu, "--parallelism", "3")
        most_at_once = now["max"]
        one, calls_one = _plan(root, emu, "--parallelism", "1")
    assert most_at_once == 3
    assert three == one and calls_three == calls_one
    assert calls_three["by_route"] == {
        "GET organisation/client-metadata-schema-v2": 1,
        "GET storage/folders": 7,
        "GET storage/folders/{uuid}/items": 14,
    }
