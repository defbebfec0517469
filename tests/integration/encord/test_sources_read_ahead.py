"""A whole plan on Encord has its JSONL sources read and checked by a process forked before the plan's first
request (``plan.files.source_readers``), while this one lists the folders: the plan of reading them here.

The emulator runs as its own process (so the test process has only its own thread when the plan forks), and
random folders, live texts and sources (the live text itself, changed values, values the schema refuses, bad
JSON, names twice or not at all, undeclared keys, uuid rows) are planned through the Encord provider with the
readers and without them: the same plans, or the same errors, and the same requests; and the readers were used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestValidationError, ProviderResponseError, SourceLocation
from reconciler.manifest import source as source_mod
from reconciler.model import FileManifest, SourceSpec
from reconciler.plan import files as files_mod
from reconciler.plan.planner import make_plan
from reconciler.providers.encord import EncordProvider, RetryPolicy
from reconciler.providers.encord.auth import BearerAuth
from reconciler.schema import FieldSpec, KeyType
from reconciler.snapshot import write_snapshot
from tests.helpers.desired import desired, manifest, schema, sel
from tests.helpers.states import make_snapshot

TOKEN = "tok-read-ahead"
VALUES: list[Any] = [0, 1, 2.5, True, "x", "", "é", None]
GOOD: dict[str, list[Any]] = {"a": [1, 2.5, -3], "b": ["x", "y", "", "é"], "c": [True, False]}


class _Server:
    def __init__(self, state: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.testing.emulator", "--state", str(state), "--token", TOKEN],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:")

    def call(self, method: str, route: str, body: bytes | None = None) -> Any:
        req = urllib.request.Request(f"{self.url}/_emulator/{route}", data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as resp:
            data = resp.read()
        return json.loads(data) if data else None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    state = tmp_path_factory.mktemp("emu") / "state.json"
    snap = make_snapshot({})
    write_snapshot(state, snap.schema, snap.folders, snap.items)
    s = _Server(state)
    try:
        yield s
    finally:
        s.proc.terminate()
        s.proc.wait(timeout=30)
        assert s.proc.stdout is not None
        s.proc.stdout.close()


def _live(rng: random.Random) -> dict[str, Any]:
    md = {k: rng.choice(v) for k, v in GOOD.items() if rng.random() < 0.8}
    if rng.random() < 0.1:
        md["free"] = rng.choice(VALUES)  # (undeclared)
    return md


def _round(server: _Server, rng: random.Random, root: Path) -> list[FileManifest]:
    """Random folders and live files in the emulator, and one manifest per folder, most with a source."""
    folders: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    count = rng.randint(1, 4)
    for f in range(count):
        folders[f"d{f}"] = [(f"n{n:03d}.jpg", _live(rng)) for n in range(rng.randint(0, 60))]
    snap = make_snapshot(folders)
    state = root / "state.json"
    write_snapshot(state, {}, snap.folders, snap.items)
    server.call("PUT", "state", state.read_bytes())
    manifests = []
    bad = 0.05 if rng.random() < 0.5 else 0.0  # (half the rounds have bad rows: their errors are compared)
    for f, (path, files) in enumerate(sorted(folders.items())):
        lines = []
        for name, live in rng.sample(files, rng.randint(0, len(files))):
            r = rng.random()
            if r < 0.6:
                md = live  # the live text itself (the emulator writes texts as json.dumps does)
            elif r < 1 - bad:
                md = _live(rng)
            else:
                md = {k: rng.choice(VALUES) for k in rng.sample(["a", "b", "c"], rng.randint(1, 3))}
            lines.append(json.dumps({"name": name, "metadata": md}))
            if rng.random() < bad:
                lines.append(rng.choice(['{"name": "nope.jpg", "metadata": {}}', "{", "", lines[-1]]))
        (root / f"rows{f}.jsonl").write_text("".join(x + "\n" for x in lines))
        m = manifest(f"m{f}.yaml", path, mode=rng.choice(["merge", "overwrite"]), on_missing="warn")
        if rng.random() < 0.15:
            m = manifest(f"m{f}.yaml", path, sel("glob", "n0*.jpg", f"m{f}.yaml", c=True), on_missing="warn")
        if rng.random() < 0.9:
            m = dataclasses.replace(
                m, source=SourceSpec(f"rows{f}.jsonl", "jsonl", SourceLocation(m.path, 1, 1))
            )
        manifests.append(m)
    return manifests


def _plan(server: _Server, manifests: list[FileManifest], root: Path) -> tuple[Any, Any]:
    server.call("DELETE", "requests")
    keys = schema(a=FieldSpec(KeyType.NUMBER), b=FieldSpec(KeyType.VARCHAR), c=FieldSpec(KeyType.BOOLEAN))
    policy = RetryPolicy(sleep=lambda s: None, jitter=lambda cap: 0.0)
    with EncordProvider(server.url, BearerAuth(TOKEN), retry=policy, parallelism=4) as provider:
        try:
            p = make_plan(
                desired(*manifests, schema_manifest=keys, root=str(root)),
                provider,
                now=dt.datetime(2026, 1, 1),
            )
            out: Any = (p.files, p.unchanged, p.warnings, p.reads, p.schema_changes)
        except (ProviderResponseError, ManifestValidationError) as exc:
            out = f"{type(exc).__name__}: {exc}"
    return out, server.call("GET", "requests")


@pytest.mark.parametrize("seed", range(4))
def test_sources_read_by_the_forked_reader_plan_what_reading_them_here_plans(
    server: _Server, tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(source_mod, "GROUP_MIN_BYTES", 0)  # (the sources here are small)
    monkeypatch.setattr(source_mod, "_BLOCK_BYTES", 256)
    monkeypatch.setattr(source_mod, "_FRAME_BYTES", 1024)
    handed_on = [0]
    rows = source_mod.ReadAhead.rows

    def counted(self: source_mod.ReadAhead, *args: Any) -> Any:
        handed_on[0] += self._group is not None
        return rows(self, *args)

    monkeypatch.setattr(source_mod.ReadAhead, "rows", counted)
    outcomes: set[type] = set()
    for round_ in range(10):
        root = tmp_path / f"r{round_}"
        root.mkdir()
        manifests = _round(server, rng, root)
        monkeypatch.setattr(files_mod, "READ_SOURCES_AHEAD", True)
        before = handed_on[0]
        ahead, ahead_requests = _plan(server, manifests, root)
        used = handed_on[0] - before
        monkeypatch.setattr(files_mod, "READ_SOURCES_AHEAD", False)
        here, here_requests = _plan(server, manifests, root)
        assert handed_on[0] == before + used  # (none without the readers)
        assert ahead == here
        assert ahead_requests == here_requests
        sources = [m for m in manifests if m.source is not None]
        if len(sources) > 1 and any(not m.files for m in sources) and isinstance(here, tuple):
            assert used > 0  # (a manifest with entries or globs too is read here; so is a plan's only source)
        outcomes.add(type(here))
    assert outcomes == {str, tuple}


def test_the_reader_is_forked_before_the_plans_first_request(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.plan import planner as planner_mod

    monkeypatch.setattr(source_mod, "GROUP_MIN_BYTES", 0)
    rng = random.Random(11)
    manifests = _round(server, rng, tmp_path)
    seen: list[int] = []
    original = files_mod.source_readers  # (the planner calls it by this name)

    def spied(*args: Any, **kwargs: Any) -> Any:
        seen.append(server.call("GET", "requests")["total"])
        return original(*args, **kwargs)

    monkeypatch.setattr(planner_mod, "source_readers", spied)
    _plan(server, manifests, tmp_path)
    assert seen == [0]


def _workspace(root: Path, url: str, files: int) -> None:
    """Two folders of ``files`` files each, two manifests whose JSONL sources (over 1 MiB each) repeat most
    live texts and change one file in ten."""
    folders: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for f in ("cams", "scans"):
        folders[f] = [
            (f"{f}-{n:05d}.jpg", {"team.note": f"n{n} " + "x" * 200, "team.n": n}) for n in range(files)
        ]
    snap = make_snapshot(folders)
    write_snapshot(root / "state.json", {}, snap.folders, snap.items)
    m = root / "m"
    (m / "data").mkdir(parents=True)
    (m / "ws.yaml").write_text(
        f"apiVersion: reconciler/v1\nkind: Workspace\nprovider: {{type: encord, domain: '{url}'}}\n"
    )
    (m / "schema.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  team.note: {type: text}\n"
        "  team.n: {type: number}\n"
    )
    for f, files_ in folders.items():
        rows = "".join(
            json.dumps({"name": name, "metadata": {**md, "team.n": md["team.n"] + 1} if n % 10 == 0 else md})
            + "\n"
            for n, (name, md) in enumerate(files_)
        )
        (m / "data" / f"{f}.jsonl").write_text(rows)
        (m / f"{f}.yaml").write_text(
            f"apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: {f}\nsource: data/{f}.jsonl\n"
        )


def test_the_command_plans_applies_and_converges_with_sources_read_by_the_reader(
    server: _Server, tmp_path: Path
) -> None:
    """The real command, in its own process, against the emulator: sources over 1 MiB are read by the reader
    (its log line), the plan is exact, the apply writes it, and the next plan has nothing to do."""
    _workspace(tmp_path, server.url, 4000)
    assert (tmp_path / "m" / "data" / "cams.jsonl").stat().st_size > source_mod.GROUP_MIN_BYTES
    server.call("PUT", "state", (tmp_path / "state.json").read_bytes())
    env = {"PATH": "/usr/bin:/bin", "ENCORD_API_TOKEN": TOKEN, "HOME": str(tmp_path)}

    def reconciler(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reconciler", "-C", str(tmp_path / "m"), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )

    first = reconciler("plan", "--debug")
    assert first.returncode == 0, first.stderr
    for name in ("cams", "scans"):
        assert f"data/{name}.jsonl: read and checked by process " in first.stderr
    summary = [line for line in first.stdout.splitlines() if line.startswith("Plan:")]
    assert summary == [
        "Plan: schema 2 to add, 0 to change, 0 to delete; files 800 to update (800 merge, 0 overwrite), "
        "7,200 unchanged."
    ]
    applied = reconciler("apply", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    again = reconciler("plan", "--debug")
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout
    assert "read and checked by process " in again.stderr


def test_sources_the_reader_cannot_stand_for_are_read_here(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a plain manifest's source is handed on: one with ``defaults:`` or a glob, one sharing its folder
    with another manifest, and every source of a plan with ``renamed_from`` are read here (the same plan)."""
    from reconciler.model import DesiredKey, SchemaManifest

    monkeypatch.setattr(source_mod, "GROUP_MIN_BYTES", 0)
    folders = {f"d{f}": [(f"n{n}.jpg", {"a": n}) for n in range(5)] for f in range(4)}
    snap = make_snapshot(folders)
    write_snapshot(tmp_path / "state.json", {}, snap.folders, snap.items)
    server.call("PUT", "state", (tmp_path / "state.json").read_bytes())
    for f in range(4):
        (tmp_path / f"rows{f}.jsonl").write_text(
            "".join(json.dumps({"name": f"n{n}.jpg", "metadata": {"a": n + f}}) + "\n" for n in range(5))
        )

    def with_source(m: FileManifest, f: int) -> FileManifest:
        return dataclasses.replace(
            m, source=SourceSpec(f"rows{f}.jsonl", "jsonl", SourceLocation(m.path, 1, 1))
        )

    plain = with_source(manifest("m0.yaml", "d0"), 0)
    globbed = with_source(manifest("m1.yaml", "d1", sel("glob", "n1*", "m1.yaml", b="x")), 1)
    defaults = with_source(manifest("m2.yaml", "d2", defaults={"b": "y"}), 2)
    shared = [with_source(manifest(f"m3{k}.yaml", "d3", owns=(k,)), 3) for k in ("a", "b")]
    handed_on: list[str] = []
    rows = source_mod.ReadAhead.rows

    def counted(self: source_mod.ReadAhead, *args: Any) -> Any:
        handed_on.append(self.path)
        return rows(self, *args)

    monkeypatch.setattr(source_mod.ReadAhead, "rows", counted)
    everything = [plain, globbed, defaults, *shared]
    ahead, _ = _plan(server, everything, tmp_path)
    assert handed_on == ["rows0.jsonl"]
    monkeypatch.setattr(files_mod, "READ_SOURCES_AHEAD", False)
    assert _plan(server, everything, tmp_path)[0] == ahead
    monkeypatch.setattr(files_mod, "READ_SOURCES_AHEAD", True)

    handed_on.clear()
    loc = SourceLocation("schema.yaml", 4, 3)
    renaming = SchemaManifest(
        {
            "a2": DesiredKey(FieldSpec(KeyType.NUMBER), loc, renamed_from="a"),
            "b": DesiredKey(FieldSpec(KeyType.VARCHAR), loc),
        },
        loc,
        False,
    )
    renamed = []
    for on in (True, False):
        monkeypatch.setattr(files_mod, "READ_SOURCES_AHEAD", on)
        policy = RetryPolicy(sleep=lambda s: None, jitter=lambda cap: 0.0)
        with EncordProvider(server.url, BearerAuth(TOKEN), retry=policy, parallelism=4) as provider:
            p = make_plan(
                desired(plain, schema_manifest=renaming, root=str(tmp_path)),
                provider,
                now=dt.datetime(2026, 1, 1),
            )
        renamed.append((p.files, p.unchanged, p.schema_changes))
    assert handed_on == [] and renamed[0] == renamed[1]
    assert [c.key for c in renamed[0][2]] == ["a2", "b"]
