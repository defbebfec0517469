"""How long ``reconciler plan`` takes, and how much memory, for N files x K keys on the embedded store.

For each size: generate the workload (``bench/generate.py``: one folder, every file's desired state in a
JSONL source, a ``--changed`` share of them different), seed the SQLite database from the snapshot (in its
own process, not timed), then run ``reconciler plan`` as a subprocess ``--runs`` times and report wall time,
CPU time, peak RSS of that process (``os.wait4``) and files per second. The plan's summary line is checked
against the number of files the generator changed.

Run (from the repository root)::

    .venv/bin/python -m bench.plan_scale [--sizes 10000,100000,1000000] [--runs 2] [--work DIR]

Workloads and databases are kept under ``--work`` (default: a temporary directory) and reused by later runs
with the same parameters: generating and seeding a million files takes minutes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.generate import BenchSpec, Generated, generate
from bench.timing import bench_env, compile_tree, run_timed

__all__ = ["PlanRun", "main", "prepare", "run_sizes"]

PYTHON = sys.executable
_SUMMARY = re.compile(r"files ([\d,]+) to update .*?, ([\d,]+) unchanged")


@dataclass(frozen=True)
class PlanRun:
    """One timed ``reconciler plan``."""

    files: int
    run: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    changed: int
    verified: bool

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall_s if self.wall_s else 0.0


def prepare(work: Path, spec: BenchSpec) -> tuple[Generated, float | None]:
    """The workload for ``spec`` under ``work`` (reused when it is already there) and its seeded database.

    Returns the paths and the seconds seeding took (``None`` when the database was already there).
    """
    out = work / f"plan-{spec.files}x{spec.keys}-{spec.changed:g}-{spec.source_format}-{spec.source_style}"
    if spec.folders > 1:
        out = out.with_name(out.name + f"-{spec.folders}folders")
    stamp = out / "spec.json"
    fields = asdict(spec)
    if fields["folders"] == 1:  # workloads written before folders existed are still reused
        del fields["folders"]
    wanted = json.dumps(fields, sort_keys=True)
    g: Generated | None = None
    if stamp.exists() and stamp.read_text() == wanted:
        changed = json.loads((out / "changed.json").read_text())
        g = Generated(
            root=out,
            snapshot=out / f"live.{spec.snapshot_format}",
            manifests=out / "manifests",
            source=out / "manifests" / "data" / f"desired.{spec.source_format}",
            database=out / "manifests" / ".reconciler" / "live.db",
            changed_files=changed,
        )
    if g is None or not g.snapshot.exists():
        g = generate(out, spec)
        (out / "changed.json").write_text(json.dumps(g.changed_files))
        stamp.write_text(wanted)
        for leftover in g.database.parent.glob("live.db*"):
            leftover.unlink()
    seeded: float | None = None
    if not g.database.exists():
        code = (
            "import sys; from reconciler.providers.sqlite import SqliteProvider; "
            "SqliteProvider(sys.argv[1], seed=sys.argv[2]).close()"
        )
        t = run_timed([PYTHON, "-c", code, str(g.database), str(g.snapshot)], env=bench_env(), cwd=out)
        seeded = t.wall_s
    return g, seeded


def run_sizes(
    work: Path,
    sizes: list[int],
    *,
    keys: int,
    changed: float,
    runs: int,
    source_format: str,
    source_style: str,
    log: bool = True,
) -> list[PlanRun]:
    results: list[PlanRun] = []
    for n in sizes:
        spec = BenchSpec(
            files=n, keys=keys, changed=changed, source_format=source_format, source_style=source_style
        )
        g, seeded = prepare(work, spec)
        if log and seeded is not None:
            print(f"# {n:,} files: seeded the database in {seeded:.1f} s (not timed)", file=sys.stderr)
        for run in range(1, runs + 1):
            t = run_timed(
                [PYTHON, "-m", "reconciler", "-C", str(g.manifests), "plan"], env=bench_env(), cwd=g.root
            )
            m = _SUMMARY.search(t.output)
            planned = int(m.group(1).replace(",", "")) if m else -1
            unchanged = int(m.group(2).replace(",", "")) if m else -1
            ok = planned == g.changed_files and planned + unchanged == n
            results.append(PlanRun(n, run, t.wall_s, t.cpu_s, t.max_rss_mb, planned, ok))
    return results


def report(results: list[PlanRun], spec_line: str) -> str:
    lines = [spec_line, ""]
    lines.append(
        f"{'files':>10} {'run':>3} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'files/s':>10}  ok"
    )
    for r in results:
        lines.append(
            f"{r.files:>10,} {r.run:>3} {r.wall_s:>8.2f} {r.cpu_s:>8.2f} {r.max_rss_mb:>12.0f} "
            f"{r.files_per_s:>10,.0f}  {'yes' if r.verified else 'NO'} ({r.changed:,} to update)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--sizes",
        default="10000,100000,1000000",
        help="comma-separated file counts (default 10000,100000,1000000)",
    )
    p.add_argument("--keys", type=int, default=10, help="metadata keys per file (default 10)")
    p.add_argument("--changed", type=float, default=0.01, help="share of files that change (default 0.01)")
    p.add_argument("--runs", type=int, default=2, help="timed runs per size (default 2)")
    p.add_argument("--source-format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--source-style", choices=("python", "compact"), default="python")
    p.add_argument("--work", type=Path, help="where workloads and databases are kept (default: temporary)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    compile_tree()  # the measured commands import bytecode, as an installed reconciler does
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = run_sizes(
            work,
            sizes,
            keys=args.keys,
            changed=args.changed,
            runs=args.runs,
            source_format=args.source_format,
            source_style=args.source_style,
        )
    if args.json:
        print(json.dumps([asdict(r) | {"files_per_s": r.files_per_s} for r in results], indent=1))
    else:
        spec_line = (
            f"reconciler plan, sqlite, {args.keys} keys, {args.changed:.0%} changed, "
            f"{args.source_format} source ({args.source_style} style); each run its own process"
        )
        print(report(results, spec_line))
    return 0 if all(r.verified for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
