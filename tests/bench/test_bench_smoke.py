"""The benchmark scripts still run end to end, at a size CI can afford (the figures are not asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.apply_vs_sdk import report as apply_report
from bench.apply_vs_sdk import run_benchmark
from bench.generate import BenchSpec, generate, key_names
from bench.plan_scale import report as plan_report
from bench.plan_scale import run_sizes
from reconciler.manifest.loader import load_manifests


def test_generate_writes_a_loadable_workload(tmp_path: Path) -> None:
    spec = BenchSpec(files=50, keys=9, changed=0.2, source_format="csv", snapshot_format="json")
    g = generate(tmp_path, spec)
    desired = load_manifests(g.manifests)
    assert desired.schema is not None
    assert sorted(desired.schema.keys) == sorted(name for name, _ in key_names(9))
    assert g.source.read_text().splitlines()[0].startswith("name,bench.00.varchar")
    assert 0 < g.changed_files < 50


def test_plan_scale_at_2000_files(tmp_path: Path) -> None:
    results = run_sizes(
        tmp_path,
        [2000],
        keys=10,
        changed=0.01,
        runs=1,
        source_format="jsonl",
        source_style="python",
        log=False,
    )
    assert [(r.files, r.verified) for r in results] == [(2000, True)]
    assert results[0].changed > 0 and results[0].max_rss_mb > 0
    assert "2,000" in plan_report(results, "smoke")


def test_apply_vs_sdk_tiny_without_latency(tmp_path: Path) -> None:
    results = run_benchmark(tmp_path, files=200, keys=4, latency_ms=0, loop_sample=5, runs=1)
    by = {m.method: m for m in results}
    assert set(by) == {"reconciler apply", "SDK bundle script", "SDK get+update loop"}
    assert all(m.verified for m in results), apply_report(results, 0)
    # schema, folder, one page, one get-bulk, one patch-bulk, one get-bulk reading the writes back
    assert by["reconciler apply"].requests == 6, by["reconciler apply"].by_route
    assert by["SDK get+update loop"].requests == 10  # 2 per file
    assert "SDK bundle / reconciler" in apply_report(results, 0)


def test_floors_every_row_at_a_toy_size(tmp_path: Path) -> None:
    from bench.floors import report as floors_report
    from bench.floors import run_rows

    rows = run_rows(
        tmp_path,
        ["plan-network", "plan-local", "apply"],
        pairs=2,
        net_files=300,
        net_folders=3,
        net_latency_ms=0,
        local_files=300,
        apply_files=100,
        apply_latency_ms=0,
    )
    by = {r.name: r for r in rows}
    assert set(by) == {"plan-network", "plan-local", "apply"}
    assert all(len(r.ratios) == 2 and r.ratio > 0 for r in rows)
    # schema, 3 folder lookups, one page per folder; the floor: one page per folder
    assert by["plan-network"].a.requests == [7, 7] and by["plan-network"].b.requests == [3, 3]
    # schema, folder, one page, one get-bulk, one patch-bulk, the get-bulk read-back after the last batch
    assert by["apply"].a.requests == [6, 6]
    # the apply floor: one page, one patch-bulk; its figures and the SDK's ratio to it are printed
    assert any(
        n.startswith("floor: list, merge, patch-bulk: wall s") and n.endswith("requests 2")
        for n in by["apply"].notes
    )
    assert any(n.startswith("SDK / floor (wall): median ") for n in by["apply"].notes)
    # the verified floor adds the re-read before the batch and the read-back after it: one get-bulk each
    assert any(
        n.startswith("floor, verified: + re-read before, read-back after: wall s")
        and n.endswith("requests 4")
        for n in by["apply"].notes
    )
    assert any(n.startswith("SDK / verified floor (wall): median ") for n in by["apply"].notes)
    text = floors_report(rows)
    assert "median" in text and "plan-local" in text


def test_the_emulator_root_is_the_tree_the_emulator_is_imported_from(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from bench.timing import tree_env

    root = Path(__file__).resolve().parents[2]
    tree = tmp_path / "tree"
    shutil.copytree(root / "reconciler", tree / "reconciler", ignore=shutil.ignore_patterns("__pycache__"))
    probe = [sys.executable, "-c", "import reconciler.testing.emulator as e; print(e.__file__)"]
    out = subprocess.run(probe, env=tree_env(tree), cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == tree / "reconciler" / "testing" / "emulator.py"
    out = subprocess.run(probe, env=tree_env(None), cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == root / "reconciler" / "testing" / "emulator.py"


def test_compile_tree_writes_the_bytecode_measured_commands_import(tmp_path: Path) -> None:
    from bench.timing import compile_tree

    (tmp_path / "reconciler" / "plan").mkdir(parents=True)
    (tmp_path / "reconciler" / "__init__.py").write_text("")
    (tmp_path / "reconciler" / "plan" / "files.py").write_text("X = 1\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "skipped.py").write_text("Y = 2\n")
    compile_tree(tmp_path)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.pyc"))
    tag = sys.implementation.cache_tag
    assert written == [
        f"reconciler/__pycache__/__init__.{tag}.pyc",
        f"reconciler/plan/__pycache__/files.{tag}.pyc",
    ]
