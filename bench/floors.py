"""Each row of the performance table as a ratio to a floor program, both measured in the same run.

A floor program does only the work that cannot be avoided; reconciler and its floor run alternately (A B,
B A, A B, ...) as child processes of this one, each timed from the outside (``os.wait4``: wall time, CPU
time, peak RSS), and the figure printed is the **median of the per-pair ratios**, so slow drift on a shared
machine cancels out. Request counts come from the emulator (``/_emulator/requests``), cleared before each
command.

Rows (``--rows``, default all):

``plan-network``
    ``reconciler plan`` of ``--net-files`` (100,000) files spread over ``--net-folders`` (10) folders,
    through the emulator at ``--net-latency-ms`` (50) ms per request, against ``floor-list``: a minimal
    client that pages every folder, 4 folders at a time (``pageSize`` 1000, one request at a time per
    folder), and decodes each item's ``clientMetadata`` with orjson. Ratio: reconciler / floor (wall).
``plan-local``
    ``reconciler plan`` of ``--local-files`` (1,000,000) files x 10 keys, 1 % changed, JSONL source, on the
    embedded store, against ``floor-diff``: reads every live row from the same SQLite file and every
    desired row from the source, decodes both with orjson, compares, keeps the changes. Ratio: reconciler
    / floor (wall), and reconciler's peak RSS.
``apply``
    ``reconciler apply --auto-approve`` of ``--apply-files`` (10,000) changed files through the emulator at
    ``--apply-latency-ms`` (20) ms, against the SDK bundle script (``bench/sdk_scripts.py bundle``); the
    emulator's state is reset before each command and the written metadata is checked afterwards. Ratio:
    SDK / reconciler (how many times faster reconciler is), reconciler's requests, and its CPU per file.

Run (from the repository root)::

    .venv/bin/python -m bench.floors [--rows plan-network,plan-local,apply] [--pairs 3] [--work DIR]

Workloads are kept under ``--work`` and reused (generating and seeding a million files takes minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.generate import BenchSpec, desired_metadata, file_uuid, folder_uuid, generate, key_names
from bench.plan_scale import _SUMMARY, prepare
from bench.timing import Timed, bench_env, compile_tree, run_timed, tree_env

__all__ = ["Row", "floor_diff", "floor_list", "floor_write", "main", "run_rows"]

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent
#: Where the measured reconciler is imported from (``--reconciler-root``: another checkout, e.g. a baseline).
RECONCILER_ROOT: Path | None = None
#: A second source tree measured alongside in the plan-network and apply rows (``--baseline-root``), for
#: before/after figures in one run.
BASELINE_ROOT: Path | None = None
#: The source tree whose emulator answers every command (``--emulator-root``; default: this one).
EMULATOR_ROOT: Path | None = None


def _tree(root: Path | None = None) -> Path:
    """The working directory of a reconciler command measuring ``root`` (default ``RECONCILER_ROOT``):
    ``python -m`` puts the working directory first on the import path, ahead of ``PYTHONPATH``."""
    return root or RECONCILER_ROOT or ROOT


def _reconciler_env(root: Path | None = None, /, **extra: str) -> dict[str, str]:
    """The environment of reconciler commands: :func:`bench_env`, with ``root`` (default
    ``RECONCILER_ROOT``) first on the import path."""
    return tree_env(root or RECONCILER_ROOT, **extra)


@dataclass
class Side:
    """One command's runs: what it is, and each run's timing and request count."""

    label: str
    runs: list[Timed] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    #: CPU seconds the emulator spent serving each run (read from /proc; empty without an emulator).
    server_cpu: list[float] = field(default_factory=list)
    by_route: dict[str, int] = field(default_factory=dict)


@dataclass
class Row:
    """One table row: reconciler (``a``) against its floor (``b``), ``ratio`` as the row defines it."""

    name: str
    what: str
    a: Side
    b: Side
    ratios: list[float]
    ratio_label: str
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)


# -- floor programs (each runs as its own process: ``python -m bench.floors floor-list ...``) ------------------


def _floor_client(domain: str, key_file: Path, parallel: int) -> Any:
    """An httpx client with the request signing reconciler uses, ``parallel`` connections at most."""
    import httpx

    from reconciler.providers.encord.auth import auth_from_env

    auth = auth_from_env({"ENCORD_SSH_KEY_FILE": str(key_file)})
    limits = httpx.Limits(max_connections=parallel, max_keepalive_connections=parallel)
    return httpx.Client(base_url=domain, auth=auth, limits=limits, timeout=300)


def _floor_pages(client: Any, folder: str) -> Iterator[list[dict[str, Any]]]:
    """Each page of a folder's items (pageSize 1000, the next asked for once this one is in)."""
    import orjson

    token = ""
    while True:
        params: list[tuple[str, str]] = [("isRecursive", "False"), ("order", "name"), ("desc", "False")]
        if token:
            params.append(("pageToken", token))
        params += [("pageSize", "1000"), ("signUrls", "False"), ("includeClientMetadata", "True")]
        resp = client.get(f"/v2/public/storage/folders/{folder}/items", params=params)
        resp.raise_for_status()
        page = orjson.loads(resp.content)
        yield page["results"]
        token = page.get("nextPageToken") or ""
        if not token:
            return


def floor_list(domain: str, key_file: Path, folders: list[str], parallel: int) -> tuple[int, int]:
    """Page every folder (``parallel`` at a time, one request at a time per folder) and decode each item's
    metadata. Returns (items, requests)."""
    import orjson

    with _floor_client(domain, key_file, parallel) as client:

        def one(folder: str) -> tuple[int, int]:
            items = requests = 0
            for results in _floor_pages(client, folder):
                requests += 1
                for raw in results:
                    md = raw.get("clientMetadata")
                    if md:
                        orjson.loads(md)
                    items += 1
            return items, requests

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            done = list(pool.map(one, folders))
    return sum(i for i, _ in done), sum(r for _, r in done)


def floor_write(
    domain: str, key_file: Path, folder: str, source: Path, parallel: int, *, verified: bool = False
) -> tuple[int, int]:
    """The least a client can do to carry out the apply row's change: page the folder (one request at a time:
    page tokens are sequential), merge each file's desired row into its listed metadata, and send the merged
    dicts in ``patch-bulk`` requests of 1000, ``parallel`` at a time. No plan, no re-read before writing, no
    journal, no check of the answers, no read-back. Returns (files written, requests).

    ``verified``: also what SPEC §6 and §7a ask of any apply on Encord, and nothing else: each batch re-read
    (``get-bulk``) right before it is written, the desired rows merged onto the fresh dicts, and every written
    file read back after the last batch and compared with what was sent."""
    import orjson

    desired: dict[str, dict[str, Any]] = {}
    with source.open("rb") as fh:
        for line in fh:
            if line.strip():
                row = orjson.loads(line)
                desired[row["name"]] = row.get("metadata") or {}
    with _floor_client(domain, key_file, parallel) as client:
        patches: dict[str, dict[str, Any]] = {}
        new_by_uuid: dict[str, dict[str, Any]] = {}
        requests = 0
        for results in _floor_pages(client, folder):
            requests += 1
            for raw in results:
                new = desired.get(raw["name"])
                if new is not None:
                    md = raw.get("clientMetadata")
                    patches[raw["uuid"]] = {**(orjson.loads(md) if md else {}), **new}
                    new_by_uuid[raw["uuid"]] = new
        uuids = list(patches)
        chunks = [uuids[i : i + 1000] for i in range(0, len(uuids), 1000)]

        def get_bulk(chunk: list[str]) -> list[dict[str, Any]]:
            resp = client.post(
                "/v2/public/storage/items/get-bulk",
                content=orjson.dumps({"itemUuids": chunk, "signUrls": False}),
                headers={"Content-Type": "application/json"},
            )
            resp.raise_for_status()
            results: list[dict[str, Any]] = orjson.loads(resp.content)["results"]
            return results

        def send(chunk: list[str]) -> None:
            if verified:
                for raw in get_bulk(chunk):
                    md = raw.get("clientMetadata")
                    patches[raw["uuid"]] = {**(orjson.loads(md) if md else {}), **new_by_uuid[raw["uuid"]]}
            body = {"itemPatches": {u: {"clientMetadata": patches[u]} for u in chunk}}
            client.patch(
                "/v2/public/storage/items/patch-bulk",
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            ).raise_for_status()

        def check(chunk: list[str]) -> None:
            for raw in get_bulk(chunk):
                md = raw.get("clientMetadata")
                if (orjson.loads(md) if md else {}) != patches[raw["uuid"]]:
                    raise RuntimeError(f"item {raw['uuid']} does not hold what was written")

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            list(pool.map(send, chunks))
            if verified:
                list(pool.map(check, chunks))
    return len(patches), requests + len(chunks) * (3 if verified else 1)


def floor_diff(database: Path, source: Path) -> tuple[int, int]:
    """Decode every live dict and every desired row with orjson, compare, keep the changes.

    Returns (files compared, files changed).
    """
    import sqlite3

    import orjson

    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    live: dict[str, str] = dict(db.execute("SELECT name, metadata FROM items"))
    db.close()
    changes: list[tuple[str, dict[str, Any]]] = []
    missing = object()
    compared = 0
    loads = orjson.loads
    with source.open("rb") as fh:
        for line in fh:
            row = loads(line)
            name = row["name"]
            have = loads(live[name])
            compared += 1
            diff = {k: v for k, v in row["metadata"].items() if have.get(k, missing) != v}
            if diff:
                changes.append((name, diff))
    return compared, len(changes)


# -- rows ----------------------------------------------------------------------------------------------------


def _emulator(state: Path, pubhex: str, latency_ms: float) -> Any:
    from bench.apply_vs_sdk import _Emulator

    return _Emulator(state, pubhex, latency_ms, EMULATOR_ROOT)


def _key(work: Path) -> tuple[Path, str]:
    from bench.apply_vs_sdk import _make_key

    return _make_key(work)


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _floor_json(t: Timed) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(t.output.strip().splitlines()[-1])
    return result


def row_plan_network(work: Path, *, files: int, folders: int, latency_ms: float, pairs: int) -> Row:
    spec = BenchSpec(files=files, keys=10, changed=0.01, folders=folders)
    g = generate(work / f"net-{files}x{folders}", spec)
    key_file, pubhex = _key(work)
    renv = {"ENCORD_SSH_KEY_FILE": str(key_file)}
    env = bench_env(**renv)
    emu = _emulator(g.snapshot, pubhex, latency_ms)
    a, b = Side("reconciler plan"), Side("floor: list 4-way, decode")
    ratios: list[float] = []
    uuids = ",".join(folder_uuid(spec, f) for f in range(folders))
    try:
        plan_cmd = [
            PYTHON,
            "-m",
            "reconciler",
            "-C",
            str(g.manifests),
            "plan",
            "--provider",
            f"encord:{emu.url}",
        ]
        floor_cmd = [
            *(PYTHON, "-m", "bench.floors", "floor-list", "--domain", emu.url, "--key-file", str(key_file)),
            *("--folders", uuids, "--parallel", "4"),
        ]

        def run(side: Side, cmd: list[str], check: Any) -> None:
            emu._call("DELETE", "requests")
            before = _proc_cpu(emu.proc.pid)
            if side is b:
                t = run_timed(cmd, env=env, cwd=ROOT)
            else:
                root = BASELINE_ROOT if side.label.startswith("baseline") else None
                t = run_timed(cmd, env=_reconciler_env(root, **renv), cwd=_tree(root))
            side.server_cpu.append(_proc_cpu(emu.proc.pid) - before)
            counts = emu.requests()
            check(t)
            side.runs.append(t)
            side.requests.append(counts["total"])
            side.by_route = counts["by_route"]

        def check_plan(t: Timed) -> None:
            m = _SUMMARY.search(t.output)
            if not m or int(m.group(1).replace(",", "")) != g.changed_files:
                raise RuntimeError(f"unexpected plan summary:\n{t.output[-2000:]}")

        def check_floor(t: Timed) -> None:
            if _floor_json(t)["items"] != files:
                raise RuntimeError(f"the floor listed {t.output!r}")

        base = Side("baseline plan")
        base_ratios: list[float] = []
        for n in range(pairs):
            order = [(a, plan_cmd, check_plan), (b, floor_cmd, check_floor)]
            for side, cmd, check in order if n % 2 == 0 else reversed(order):
                run(side, cmd, check)
            ratios.append(a.runs[-1].wall_s / b.runs[-1].wall_s)
            if BASELINE_ROOT is not None:
                run(base, plan_cmd, check_plan)
                base_ratios.append(base.runs[-1].wall_s / b.runs[-1].wall_s)
    finally:
        emu.stop()
    notes = []
    if base.runs:
        cpu = [x.cpu_s / y.cpu_s for x, y in zip(base.runs, b.runs, strict=True)]
        notes = [
            f"baseline ({BASELINE_ROOT}) plan: wall s {', '.join(f'{t.wall_s:.2f}' for t in base.runs)}; CPU s "
            f"{', '.join(f'{t.cpu_s:.2f}' for t in base.runs)}; baseline / floor (wall): median "
            f"{statistics.median(base_ratios):.2f}x (pairs: {', '.join(f'{x:.2f}' for x in base_ratios)}); "
            f"CPU: median {statistics.median(cpu):.2f}x",
        ]
    return Row(
        "plan-network",
        f"plan, {files:,} files in {folders} folders, emulator at {latency_ms:g} ms",
        a,
        b,
        ratios,
        "reconciler / floor (wall)",
        notes,
    )


def row_plan_local(work: Path, *, files: int, pairs: int) -> Row:
    spec = BenchSpec(files=files, keys=10, changed=0.01)
    g, seeded = prepare(work, spec)
    if seeded is not None:
        print(f"# {files:,} files: seeded the database in {seeded:.1f} s (not timed)", file=sys.stderr)
    env = bench_env()
    a, b = Side("reconciler plan"), Side("floor: orjson decode + compare")
    base = Side("baseline plan")
    ratios: list[float] = []
    plan_cmd = [PYTHON, "-m", "reconciler", "-C", str(g.manifests), "plan"]

    def check_plan(t: Timed) -> None:
        m = _SUMMARY.search(t.output)
        if not m or int(m.group(1).replace(",", "")) != g.changed_files:
            raise RuntimeError(f"unexpected plan summary:\n{t.output[-2000:]}")

    floor_cmd = [
        *(
            PYTHON,
            "-m",
            "bench.floors",
            "floor-diff",
            "--database",
            str(g.database),
            "--source",
            str(g.source),
        )
    ]
    for n in range(pairs):
        if BASELINE_ROOT is not None:  # the same plan by another source tree, in every pair (before/after)
            t = run_timed(plan_cmd, env=_reconciler_env(BASELINE_ROOT), cwd=g.root)
            check_plan(t)
            base.runs.append(t)
        for side in (a, b) if n % 2 == 0 else (b, a):
            t = run_timed(
                plan_cmd if side is a else floor_cmd, env=_reconciler_env() if side is a else env, cwd=g.root
            )
            if side is a:
                check_plan(t)
            elif _floor_json(t)["changed"] != g.changed_files:
                raise RuntimeError(f"the floor found {t.output!r}")
            side.runs.append(t)
        ratios.append(a.runs[-1].wall_s / b.runs[-1].wall_s)
    notes = [f"reconciler peak RSS {statistics.median(t.max_rss_mb for t in a.runs):.0f} MB"]
    if base.runs:
        walls = [x.wall_s / f.wall_s for x, f in zip(base.runs, b.runs, strict=True)]
        cpus = [x.cpu_s / f.cpu_s for x, f in zip(base.runs, b.runs, strict=True)]
        notes.append(
            f"baseline ({BASELINE_ROOT}): wall s {', '.join(f'{t.wall_s:.2f}' for t in base.runs)}; CPU s "
            f"{', '.join(f'{t.cpu_s:.2f}' for t in base.runs)}; peak RSS "
            f"{statistics.median(t.max_rss_mb for t in base.runs):.0f} MB; baseline / floor (wall): median "
            f"{statistics.median(walls):.2f}x (pairs: {', '.join(f'{x:.2f}' for x in walls)}); CPU: median "
            f"{statistics.median(cpus):.2f}x"
        )
    return Row(
        "plan-local",
        f"plan, {files:,} files x 10 keys, 1% changed, JSONL source, embedded store",
        a,
        b,
        ratios,
        "reconciler / floor (wall)",
        notes,
    )


def row_apply(work: Path, *, files: int, latency_ms: float, pairs: int) -> Row:
    spec = BenchSpec(files=files, keys=10, changed=1.0)
    g = generate(work / f"apply-{files}", spec)
    key_file, pubhex = _key(work)
    names = key_names(spec.keys)
    want = {file_uuid(spec, i): desired_metadata(spec, i, names) for i in range(files)}
    renv = {"ENCORD_SSH_KEY_FILE": str(key_file)}
    env = bench_env(**renv)
    emu = _emulator(g.snapshot, pubhex, latency_ms)
    a, b = Side("reconciler apply"), Side("SDK bundle script")
    plan_only = Side("reconciler plan (same change)")
    floor = Side("floor: list, merge, patch-bulk")
    safe = Side("floor, verified: + re-read before, read-back after")
    base, base_plan = Side("baseline apply"), Side("baseline plan")
    ratios: list[float] = []
    try:
        cmds = {
            "a": [
                *(PYTHON, "-m", "reconciler", "-C", str(g.manifests), "apply", "--auto-approve"),
                *("--provider", f"encord:{emu.url}"),
            ],
            "b": [
                *(PYTHON, "-m", "bench.sdk_scripts", "bundle", "--domain", emu.url),
                *("--key-file", str(key_file), "--folder", folder_uuid(spec), "--source", str(g.source)),
            ],
        }
        plan_cmd = [*cmds["a"][:5], "plan", *cmds["a"][-2:]]
        floor_cmd = [
            *(PYTHON, "-m", "bench.floors", "floor-write", "--domain", emu.url, "--key-file", str(key_file)),
            *("--folder", folder_uuid(spec), "--source", str(g.source), "--parallel", "4"),
        ]
        for n in range(pairs):
            emu.reset()
            plan_only.runs.append(run_timed(plan_cmd, env=_reconciler_env(**renv), cwd=_tree()))
            emu.reset()
            t = run_timed(floor_cmd, env=env, cwd=ROOT)
            live = emu.items()
            bad = sum(1 for u, md in want.items() if live.get(u) != md)
            if bad or _floor_json(t)["written"] != files:
                raise RuntimeError(f"the floor: {bad} files do not hold the desired metadata ({t.output!r})")
            floor.runs.append(t)
            floor.requests.append(emu.requests()["total"])
            emu.reset()
            t = run_timed([*floor_cmd, "--verified"], env=env, cwd=ROOT)
            live = emu.items()
            bad = sum(1 for u, md in want.items() if live.get(u) != md)
            if bad or _floor_json(t)["written"] != files:
                raise RuntimeError(
                    f"the verified floor: {bad} files do not hold the desired metadata ({t.output!r})"
                )
            safe.runs.append(t)
            safe.requests.append(emu.requests()["total"])
            if BASELINE_ROOT is not None:
                emu.reset()
                base_plan.runs.append(
                    run_timed(plan_cmd, env=_reconciler_env(BASELINE_ROOT, **renv), cwd=_tree(BASELINE_ROOT))
                )
            # The applies of each pair in turn, their order rotated pair by pair (the baseline's too: a side
            # that always ran in one place of the pair came out ahead of the same code run in another).
            sides = [a, b] if BASELINE_ROOT is None else [a, b, base]
            k = n % len(sides)
            for side in sides[k:] + sides[:k] if n % 2 == 0 else list(reversed(sides[k:] + sides[:k])):
                emu.reset()
                before = _proc_cpu(emu.proc.pid)
                root = BASELINE_ROOT if side is base else None
                t = run_timed(
                    cmds["b" if side is b else "a"],
                    env=env if side is b else _reconciler_env(root, **renv),
                    cwd=ROOT if side is b else _tree(root),
                )
                side.server_cpu.append(_proc_cpu(emu.proc.pid) - before)
                counts = emu.requests()
                live = emu.items()
                bad = sum(1 for u, md in want.items() if live.get(u) != md)
                if bad:
                    raise RuntimeError(f"{side.label}: {bad} files do not hold the desired metadata")
                side.runs.append(t)
                side.requests.append(counts["total"])
                side.by_route = counts["by_route"]
            ratios.append(b.runs[-1].wall_s / a.runs[-1].wall_s)
    finally:
        emu.stop()
    cpu_ms = statistics.median(t.cpu_s for t in a.runs) / files * 1000
    phase = statistics.median(x.cpu_s - p.cpu_s for x, p in zip(a.runs, plan_only.runs, strict=True))
    sdk_floor = [y.wall_s / f.wall_s for y, f in zip(b.runs, floor.runs, strict=True)]
    ours_floor = [x.wall_s / f.wall_s for x, f in zip(a.runs, floor.runs, strict=True)]
    sdk_safe = [y.wall_s / f.wall_s for y, f in zip(b.runs, safe.runs, strict=True)]
    ours_safe = [x.wall_s / f.wall_s for x, f in zip(a.runs, safe.runs, strict=True)]
    notes = [
        f"{floor.label}: wall s {', '.join(f'{t.wall_s:.2f}' for t in floor.runs)}; CPU s "
        f"{', '.join(f'{t.cpu_s:.2f}' for t in floor.runs)}; requests {floor.requests[-1]}",
        f"SDK / floor (wall): median {statistics.median(sdk_floor):.2f}x (pairs: "
        f"{', '.join(f'{x:.2f}' for x in sdk_floor)}): the most any client can be faster than the SDK here; "
        f"reconciler / floor: median {statistics.median(ours_floor):.2f}x "
        f"(pairs: {', '.join(f'{x:.2f}' for x in ours_floor)})",
        f"{safe.label}: wall s {', '.join(f'{t.wall_s:.2f}' for t in safe.runs)}; CPU s "
        f"{', '.join(f'{t.cpu_s:.2f}' for t in safe.runs)}; requests {safe.requests[-1]}",
        f"SDK / verified floor (wall): median {statistics.median(sdk_safe):.2f}x (pairs: "
        f"{', '.join(f'{x:.2f}' for x in sdk_safe)}): the most a client that re-reads and reads back (SPEC "
        f"section 6, 7a) can be faster than the SDK here; reconciler / verified floor: median "
        f"{statistics.median(ours_safe):.2f}x (pairs: {', '.join(f'{x:.2f}' for x in ours_safe)})",
        f"reconciler CPU per written file {cpu_ms:.3f} ms (whole process, plan included)",
        f"reconciler CPU per written file in the apply phase {phase / files * 1000:.3f} ms "
        f"(apply CPU minus the CPU of `reconciler plan` of the same change, median of pairs; plan CPU s "
        f"{', '.join(f'{t.cpu_s:.2f}' for t in plan_only.runs)})",
    ]
    if base.runs:
        per = [
            (x.cpu_s - p.cpu_s) / (y.cpu_s - q.cpu_s)
            for x, p, y, q in zip(a.runs, plan_only.runs, base.runs, base_plan.runs, strict=True)
        ]
        whole = [x.cpu_s / y.cpu_s for x, y in zip(a.runs, base.runs, strict=True)]
        sdk = [y.wall_s / x.wall_s for x, y in zip(base.runs, b.runs, strict=True)]
        bphase = statistics.median(y.cpu_s - q.cpu_s for y, q in zip(base.runs, base_plan.runs, strict=True))
        notes += [
            f"baseline ({BASELINE_ROOT}): apply CPU s {', '.join(f'{t.cpu_s:.2f}' for t in base.runs)}; "
            f"plan CPU s {', '.join(f'{t.cpu_s:.2f}' for t in base_plan.runs)}; apply-phase CPU per written "
            f"file {bphase / files * 1000:.3f} ms",
            f"apply-phase CPU per file, this tree / baseline: median {statistics.median(per):.2f} "
            f"(pairs: {', '.join(f'{x:.2f}' for x in per)}); whole process: median "
            f"{statistics.median(whole):.2f}",
            f"baseline apply wall s {', '.join(f'{t.wall_s:.2f}' for t in base.runs)}; SDK / baseline (wall): "
            f"median {statistics.median(sdk):.2f}x (pairs: {', '.join(f'{x:.2f}' for x in sdk)})",
        ]
    return Row(
        "apply",
        f"apply, {files:,} changed files, emulator at {latency_ms:g} ms",
        a,
        b,
        ratios,
        "SDK / reconciler (wall; > 1: reconciler faster)",
        notes,
    )


def report(rows: list[Row]) -> str:
    served = f"; the emulator of {EMULATOR_ROOT}" if EMULATOR_ROOT is not None else ""
    lines = [f"load average {os.getloadavg()[0]:.2f} at the end; each command its own process{served}", ""]
    for r in rows:
        lines.append(f"{r.name}: {r.what}")
        for side in (r.a, r.b):
            walls = ", ".join(f"{t.wall_s:.2f}" for t in side.runs)
            cpus = ", ".join(f"{t.cpu_s:.2f}" for t in side.runs)
            rss = max(t.max_rss_mb for t in side.runs)
            req = f"; requests {side.requests[-1]}" if side.requests else ""
            if side.server_cpu:
                req += f"; emulator CPU s {', '.join(f'{x:.2f}' for x in side.server_cpu)}"
            lines.append(f"  {side.label:<32} wall s {walls}; CPU s {cpus}; peak RSS {rss:.0f} MB{req}")
            if side.requests and side is r.a:
                routes = ", ".join(f"{k} {v}" for k, v in sorted(side.by_route.items()))
                lines.append(f"  {'':<32} ({routes})")
        pairs = ", ".join(f"{x:.2f}" for x in r.ratios)
        lines.append(f"  ratio {r.ratio_label}: median {r.ratio:.2f}x (pairs: {pairs})")
        cpu = [a.cpu_s / b.cpu_s for a, b in zip(r.a.runs, r.b.runs, strict=True)]
        if r.name == "apply":
            cpu = [1 / x for x in cpu]
        lines.append(
            f"  same ratio of CPU time: median {statistics.median(cpu):.2f}x "
            f"(pairs: {', '.join(f'{x:.2f}' for x in cpu)})"
        )
        lines.extend(f"  {n}" for n in r.notes)
        lines.append("")
    return "\n".join(lines)


def run_rows(
    work: Path,
    rows: list[str],
    *,
    pairs: int,
    net_files: int = 100_000,
    net_folders: int = 10,
    net_latency_ms: float = 50,
    local_files: int = 1_000_000,
    apply_files: int = 10_000,
    apply_latency_ms: float = 20,
) -> list[Row]:
    out: list[Row] = []
    for name in rows:
        if name == "plan-network":
            out.append(
                row_plan_network(
                    work, files=net_files, folders=net_folders, latency_ms=net_latency_ms, pairs=pairs
                )
            )
        elif name == "plan-local":
            out.append(row_plan_local(work, files=local_files, pairs=pairs))
        elif name == "apply":
            out.append(row_apply(work, files=apply_files, latency_ms=apply_latency_ms, pairs=pairs))
        else:
            raise ValueError(f"unknown row {name!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("floor-list", "floor-diff", "floor-write"):
        p = argparse.ArgumentParser(prog=f"bench.floors {argv[0]}")
        start = time.perf_counter()
        if argv[0] == "floor-list":
            p.add_argument("--domain", required=True)
            p.add_argument("--key-file", type=Path, required=True)
            p.add_argument("--folders", required=True, help="comma-separated folder UUIDs")
            p.add_argument("--parallel", type=int, default=4)
            a = p.parse_args(argv[1:])
            items, requests = floor_list(a.domain, a.key_file, a.folders.split(","), a.parallel)
            out: dict[str, Any] = {"items": items, "requests": requests}
        elif argv[0] == "floor-write":
            p.add_argument("--domain", required=True)
            p.add_argument("--key-file", type=Path, required=True)
            p.add_argument("--folder", required=True, help="the folder UUID")
            p.add_argument("--source", type=Path, required=True, help="JSONL rows {name, metadata}")
            p.add_argument("--parallel", type=int, default=4)
            p.add_argument(
                "--verified",
                action="store_true",
                help="re-read each batch before writing it; read back after",
            )
            a = p.parse_args(argv[1:])
            written, requests = floor_write(
                a.domain, a.key_file, a.folder, a.source, a.parallel, verified=a.verified
            )
            out = {"written": written, "requests": requests}
        else:
            p.add_argument("--database", type=Path, required=True)
            p.add_argument("--source", type=Path, required=True)
            a = p.parse_args(argv[1:])
            compared, changed = floor_diff(a.database, a.source)
            out = {"compared": compared, "changed": changed}
        out["wall_s"] = round(time.perf_counter() - start, 3)
        print(json.dumps(out))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="plan-network,plan-local,apply")
    p.add_argument("--pairs", type=int, default=3, help="A/B pairs per row (default 3)")
    p.add_argument("--net-files", type=int, default=100_000)
    p.add_argument("--net-folders", type=int, default=10)
    p.add_argument("--net-latency-ms", type=float, default=50)
    p.add_argument("--local-files", type=int, default=1_000_000)
    p.add_argument("--apply-files", type=int, default=10_000)
    p.add_argument("--apply-latency-ms", type=float, default=20)
    p.add_argument("--work", type=Path, help="where workloads are kept (default: temporary)")
    p.add_argument(
        "--reconciler-root",
        type=Path,
        help="import the measured reconciler from this source tree (e.g. `git archive main` unpacked: a baseline)",
    )
    p.add_argument(
        "--baseline-root",
        type=Path,
        help="every row: also run the reconciler of this source tree in every pair (before/after)",
    )
    p.add_argument(
        "--emulator-root",
        type=Path,
        help="run the emulator of this source tree (e.g. an earlier commit's, to compare test servers)",
    )
    args = p.parse_args(argv)
    global RECONCILER_ROOT, BASELINE_ROOT, EMULATOR_ROOT
    EMULATOR_ROOT = args.emulator_root.resolve() if args.emulator_root else None
    RECONCILER_ROOT = args.reconciler_root.resolve() if args.reconciler_root else None
    BASELINE_ROOT = args.baseline_root.resolve() if args.baseline_root else None
    # Every measured command (and the emulator) imports bytecode, as an installed reconciler does.
    for tree in {_tree(), _tree(BASELINE_ROOT), _tree(EMULATOR_ROOT)}:
        compile_tree(tree)
    with tempfile.TemporaryDirectory(prefix="bench-floors-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = run_rows(
            work,
            [r.strip() for r in args.rows.split(",") if r.strip()],
            pairs=args.pairs,
            net_files=args.net_files,
            net_folders=args.net_folders,
            net_latency_ms=args.net_latency_ms,
            local_files=args.local_files,
            apply_files=args.apply_files,
            apply_latency_ms=args.apply_latency_ms,
        )
    print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
