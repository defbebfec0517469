"""Folders planned while the next ones are still being listed (``plan.files.PLAN_WHILE_LISTING``) give the plan
of planning after the last listing: random folders, live texts (some bad) and sources (the live text, other
values, bad rows, names twice or not at all), planned both ways through the Encord provider, give the same
plan or the same error, with the same requests. Where two manifests' folders may share files (one inside
the other, the same folder), or a listing's files turn out to be in another listing's folder, the usual way
plans; and an error met while planning a folder is raised only once every listing is in, so a later
listing's failure is still the one reported."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.errors import (
    ManifestValidationError,
    ProviderConflictError,
    ProviderResponseError,
    SourceLocation,
)
from reconciler.model import FileManifest, SourceSpec
from reconciler.plan import files as files_mod
from reconciler.plan import listing as listing_mod
from reconciler.plan import selection as selection_mod
from reconciler.plan.planner import make_plan
from reconciler.providers.encord import EncordProvider, RetryPolicy
from reconciler.providers.encord.auth import BearerAuth
from tests.helpers.desired import desired, manifest, sel

from .fake_api import FakeApi, U

VALUES: list[Any] = [0, 1, 2.5, True, "x", "", "é", [1, 2], {"k": None}, None]
BAD_TEXTS = ["{not json", "[1]", ""]


def _fill(api: FakeApi, rng: random.Random, tmp: Path) -> list[FileManifest]:
    """Random folders (sometimes one inside another), items and one manifest per folder, most with a source."""
    api.items.clear()
    api.folders.clear()
    nested = rng.random() < 0.25
    count = rng.randint(1, 6)
    manifests = []
    for f in range(count):
        parent = U(1) if nested and f == count - 1 and f > 0 else None
        api.add_folder(U(1 + f), f"d{f}", parent)
        path = f"d{f}" if parent is None else f"d0/d{f}"
        live: dict[str, dict[str, Any]] = {}
        for n in range(rng.randint(0, 30)):
            name = f"n{n:02d}.jpg"
            live[name] = {k: rng.choice(VALUES) for k in rng.sample(["a", "b", "c"], rng.randint(0, 3))}
            text = json.dumps(live[name], ensure_ascii=rng.random() < 0.8)
            if rng.random() < 0.02:
                text = rng.choice(BAD_TEXTS)
            api.add_item(U(1000 * (f + 1) + n), U(1 + f), name, "image", text)
        lines = []
        for name in rng.sample(sorted(live), rng.randint(0, len(live))):
            r = rng.random()
            md = dict(live[name]) if r < 0.7 else {"a": rng.choice(VALUES)}
            lines.append(json.dumps({"name": name, "metadata": md}))
            if rng.random() < 0.03:
                lines.append(rng.choice(['{"name": "nope.jpg", "metadata": {}}', "{", lines[-1]]))
        (tmp / f"rows{f}.jsonl").write_text("".join(x + "\n" for x in lines))
        m = manifest(
            f"m{f}.yaml",
            path,
            *([sel("glob", "n0*.jpg", f"m{f}.yaml", z=f)] if rng.random() < 0.2 else []),
            mode=rng.choice(["merge", "overwrite"]),
            on_missing=rng.choice(["ignore", "warn", "error"]),
        )
        if rng.random() < 0.85:
            m = dataclasses.replace(
                m, source=SourceSpec(f"rows{f}.jsonl", "jsonl", SourceLocation(m.path, 1, 1))
            )
        manifests.append(m)
    if rng.random() < 0.15:  # a second manifest on the first folder
        manifests.append(manifest("extra.yaml", "d0", sel("glob", "*", "extra.yaml", w=1)))
    return manifests


def _provider(handler: Any) -> EncordProvider:
    policy = RetryPolicy(sleep=lambda s: None, jitter=lambda cap: 0.0)
    return EncordProvider(
        "https://api.encord.com", BearerAuth("t"), retry=policy, transport=httpx.MockTransport(handler)
    )


def _plan(api: FakeApi, manifests: list[FileManifest], root: Path) -> Any:
    api.log.clear()
    with _provider(api) as provider:  # (its own count of reads)
        try:
            p = make_plan(desired(*manifests, root=str(root)), provider, now=dt.datetime(2026, 1, 1))
            out: Any = (p.files, p.unchanged, p.warnings, p.reads)
        except (ProviderResponseError, ManifestValidationError) as exc:
            out = f"{type(exc).__name__}: {exc}"
    return out, Counter(api.log)


def _both_ways(
    api: FakeApi, manifests: list[FileManifest], root: Path, mp: pytest.MonkeyPatch
) -> tuple[Any, Any]:
    mp.setattr(files_mod, "PLAN_WHILE_LISTING", True)
    eager = _plan(api, manifests, root)
    mp.setattr(files_mod, "PLAN_WHILE_LISTING", False)
    usual = _plan(api, manifests, root)
    return eager, usual


@pytest.mark.parametrize("seed", range(5))
def test_planning_while_listing_plans_what_planning_after_it_plans(
    api: FakeApi, tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    ways = Counter[str]()
    original = selection_mod.overlap_groups

    def spied(selections: Any) -> Any:  # (the usual way asks which manifests share folders; eager never)
        ways["usual"] += 1
        return original(selections)

    monkeypatch.setattr(files_mod, "overlap_groups", spied)
    outcomes = set()
    for round_ in range(12):
        root = tmp_path / f"r{round_}"
        root.mkdir()
        manifests = _fill(api, rng, root)
        before = ways["usual"]
        (eager, eager_requests), (usual, usual_requests) = _both_ways(api, manifests, root, monkeypatch)
        assert eager == usual
        if isinstance(usual, tuple):  # (after a failed listing, how far the others got depends on timing)
            assert eager_requests == usual_requests
        ways["eager" if ways["usual"] == before + 1 else "both usual"] += 1
        outcomes.add(type(usual))
    assert ways["eager"] > 3 and outcomes == {str, tuple}


def test_folders_that_may_share_files_are_planned_the_usual_way(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.add_folder(U(1), "d0")
    api.add_folder(U(2), "d1", U(1))
    for f in (1, 2):
        api.add_item(U(10 * f), U(f), "a.jpg", "image", '{"a": 1}')
    calls: list[int] = []
    original = selection_mod.overlap_groups

    def spied(selections: Any) -> Any:
        calls.append(1)
        return original(selections)

    monkeypatch.setattr(files_mod, "overlap_groups", spied)
    m0 = manifest("m0.yaml", "d0", sel("glob", "*", "m0.yaml", a=2))
    m1 = manifest("m1.yaml", "d0/d1", sel("glob", "*", "m1.yaml", a=3))
    (eager, eager_requests), (usual, usual_requests) = _both_ways(api, [m0, m1], tmp_path, monkeypatch)
    assert eager == usual and eager_requests == usual_requests and calls == [1, 1]
    assert [(f.folder, f.name) for f in usual[0]] == [("d0", "a.jpg"), ("d0/d1", "a.jpg")]


def test_a_listing_in_another_listings_folder_plans_again_the_usual_way(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that puts a listing's files in another listed folder (which the folder paths said could not
    be): the folders planned so far are planned again, the usual way, from the same listings."""
    for f in range(3):
        api.add_folder(U(1 + f), f"d{f}")
        for n in range(3):
            api.add_item(U(100 * (f + 1) + n), U(1 + f), f"n{n}.jpg", "image", '{"a": 1}')
    original = listing_mod.read_index

    def shared_folder(provider: Any, folder: Any, **kwargs: Any) -> Any:
        index = original(provider, folder, **kwargs)
        if folder.uuid == U(3):
            index.folders.add(U(1))
        return index

    monkeypatch.setattr(files_mod, "read_index", shared_folder)
    passes: list[bool] = []
    planner = files_mod._plan_files

    def counted(*args: Any) -> Any:
        passes.append(args[-1])
        return planner(*args)

    monkeypatch.setattr(files_mod, "_plan_files", counted)
    ms = [manifest(f"m{f}.yaml", f"d{f}", sel("glob", "n1*", f"m{f}.yaml", a=f)) for f in range(3)]
    (eager, eager_requests), (usual, usual_requests) = _both_ways(api, ms, tmp_path, monkeypatch)
    assert passes == [True, False, False]  # (eager gave up; then the usual way, asked directly)
    assert eager == usual and eager_requests == usual_requests
    listings = [r for r in eager_requests.elements() if "/items?" in r]
    assert len(listings) == 3  # (each folder listed once)
    assert [(f.folder, f.name) for f in usual[0]] == [("d0", "n1.jpg"), ("d2", "n1.jpg")]


@pytest.mark.parametrize("eager", [True, False])
def test_an_error_planning_a_folder_waits_for_the_later_listings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, eager: bool
) -> None:
    """The first folder's changed file has a bad live text (an error while planning it); the last folder's
    listing is refused: that refusal is the plan's error, as when every folder is listed first."""
    api = FakeApi()
    for f in range(3):
        api.add_folder(U(1 + f), f"d{f}")
        api.add_item(U(100 * (f + 1)), U(1 + f), "a.jpg", "image", '{"a": 1}')
    api.items[U(100)]["clientMetadata"] = "{not json"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(f"{U(3)}/items"):
            return httpx.Response(403, json={"message": "forbidden"})
        return api(request)

    monkeypatch.setattr(files_mod, "PLAN_WHILE_LISTING", eager)
    ms = [manifest(f"m{f}.yaml", f"d{f}", sel("glob", "*", f"m{f}.yaml", a=2)) for f in range(3)]
    with _provider(handler) as provider:
        with pytest.raises(ProviderConflictError, match="403"):
            make_plan(desired(*ms, root=str(tmp_path)), provider)
        # Without the refusal, the bad text is the error.
        ok = ms[:2]
        with pytest.raises(ProviderResponseError, match=f"item {U(100)}: clientMetadata is not valid JSON"):
            make_plan(desired(*ok, root=str(tmp_path)), provider)


def _six_folders(api: FakeApi) -> list[FileManifest]:
    api.items.clear()
    api.folders.clear()
    for f in range(6):
        api.add_folder(U(1 + f), f"d{f}")
        api.add_item(U(100 + f), U(1 + f), "a.jpg", "image", '{"a": 1}')
    return [manifest(f"m{f}.yaml", f"d{f}", sel("glob", "*", f"m{f}.yaml", a=2)) for f in range(6)]


def _is_lookup(line: str) -> bool:
    return line.startswith("GET storage/folders?")


def _is_listing(line: str) -> bool:
    return line.startswith("GET storage/folders/") and "/items" in line


def test_a_folder_is_listed_as_soon_as_it_is_found(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six folders looked up four at a time: the last look-up is answered only once a listing has begun, which
    happens only if the first folders' listings start before the last folders are found. The same plan and
    requests as the usual way, which lists after the last look-up."""
    manifests = _six_folders(api)
    listing_begun = threading.Event()
    waited: list[bool] = []

    def gated(request: httpx.Request) -> httpx.Response:
        line = f"{request.method} {request.url.raw_path.decode().removeprefix('/v2/public/')}"
        if _is_listing(line):
            listing_begun.set()
        elif _is_lookup(line) and "search=d5" in line:
            waited.append(listing_begun.wait(10))
        return api(request)

    monkeypatch.setattr(files_mod, "PLAN_WHILE_LISTING", True)
    api.log.clear()
    with _provider(gated) as provider:
        early = make_plan(desired(*manifests, root=str(tmp_path)), provider, now=dt.datetime(2026, 1, 1))
    early_requests = Counter(api.log)
    assert waited == [True]
    monkeypatch.setattr(files_mod, "PLAN_WHILE_LISTING", False)
    usual, usual_requests = _plan(api, manifests, tmp_path)
    assert (early.files, early.unchanged, early.warnings, early.reads) == usual
    assert early_requests == usual_requests
    assert [(f.folder, f.name) for f in early.files] == [(f"d{f}", "a.jpg") for f in range(6)]


@pytest.mark.parametrize("how", ["shard", "target"])
def test_a_shard_or_a_targeted_plan_lists_after_the_last_look_up(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Which folders a shard or a target lists is known only once every folder is found: nothing is listed
    before."""
    from reconciler.plan.planner import Targets
    from reconciler.plan.shard import Shard

    manifests = _six_folders(api)
    monkeypatch.setattr(files_mod, "PLAN_WHILE_LISTING", True)
    api.log.clear()
    extra: dict[str, Any] = (
        {"shard": Shard(1, 2)}
        if how == "shard"
        else {"targets": Targets(manifests=frozenset({"m0.yaml", "m4.yaml"}))}
    )
    with _provider(api) as provider:
        make_plan(desired(*manifests, root=str(tmp_path)), provider, now=dt.datetime(2026, 1, 1), **extra)
    lookups = [n for n, line in enumerate(api.log) if _is_lookup(line)]
    listings = [n for n, line in enumerate(api.log) if _is_listing(line)]
    assert len(lookups) == 6 and listings
    assert max(lookups) < min(listings)


def test_a_failed_look_up_is_the_plans_error_and_stops_the_listings_already_started(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A look-up that fails after its folders' first listings began: the plan's error is the look-up's, and the
    listings started stop (no listing thread is left running)."""
    from reconciler.errors import ProviderError

    manifests = _six_folders(api)
    for f in range(6):  # several pages per folder, so a listing is still running when the look-up fails
        for n in range(1, 2500):
            api.add_item(U(10_000 * (f + 1) + n), U(1 + f), f"b{n:04d}.jpg", "image", "{}")
    listing_begun = threading.Event()

    def failing(request: httpx.Request) -> httpx.Response:
        line = f"{request.method} {request.url.raw_path.decode().removeprefix('/v2/public/')}"
        if _is_listing(line):
            listing_begun.set()
        elif _is_lookup(line) and "search=d5" in line:
            listing_begun.wait(10)
            return httpx.Response(500, json={"message": "look-up broke"})
        return api(request)

    monkeypatch.setattr(files_mod, "PLAN_WHILE_LISTING", True)
    before = {t for t in threading.enumerate() if t.name == "reconciler-listing"}
    with _provider(failing) as provider, pytest.raises(ProviderError) as failed:
        make_plan(desired(*manifests, root=str(tmp_path)), provider, now=dt.datetime(2026, 1, 1))
    left = [t for t in threading.enumerate() if t.name == "reconciler-listing" and t not in before]
    for t in left:
        t.join(10)
    assert not any(t.is_alive() for t in left)
    assert listing_begun.is_set()
    assert str(failed.value) == (
        "GET storage/folders at https://api.encord.com still failing after 6 attempt(s) and 0.0 s of backoff "
        "(last: 500 Internal Server Error); try again later or lower parallelism"
    )
