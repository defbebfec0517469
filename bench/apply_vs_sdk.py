"""One change to N files through the Encord API emulator, three ways, each its own process, in one run.

1. ``reconciler apply --auto-approve`` (plan and apply: list the folder, diff, re-read and write in bulk);
2. the SDK's bundle script (``bench/sdk_scripts.py bundle``: ``list_items`` + ``item.update(bundle=...)``);
3. the SDK's get-then-update loop (``bench/sdk_scripts.py loop``) on a sample of files, compared per file.

The emulator (``python -m reconciler.testing.emulator --latency-ms 20``) stands for a network with 20 ms per
request. Before each command the emulator's state is reset to the same snapshot and its request counts are
cleared; after it, the counts are read from ``/_emulator/requests`` and the written metadata is checked.

Run (from the repository root)::

    .venv/bin/python -m bench.apply_vs_sdk [--files 10000] [--latency-ms 20] [--loop-sample 300] [--runs 2]

Prints one line per command and run, then the ratios per run. ``--json`` prints the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.generate import (
    BenchSpec,
    Generated,
    desired_metadata,
    file_name,
    file_uuid,
    folder_uuid,
    generate,
    key_names,
)
from bench.timing import bench_env, compile_tree, run_timed, tree_env

__all__ = ["Measurement", "main", "run_benchmark"]

PYTHON = sys.executable


@dataclass
class Measurement:
    """One command's figures: wall time, files written, requests by route, CPU time and peak memory."""

    method: str
    run: int
    files: int
    wall_s: float
    requests: int
    by_route: dict[str, int] = field(default_factory=dict)
    cpu_s: float = 0.0
    max_rss_mb: float = 0.0
    verified: bool = False

    @property
    def per_file_ms(self) -> float:
        return self.wall_s / self.files * 1000 if self.files else 0.0


def _make_key(directory: Path) -> tuple[Path, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    text = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode("ascii")
    path = directory / "bench_ed25519"
    path.write_text(text)
    path.chmod(0o600)
    return path, key.public_key().public_bytes_raw().hex()


class _Emulator:
    """The emulator as a child process (``python -m reconciler.testing.emulator``)."""

    def __init__(self, state: Path, pubhex: str, latency_ms: float, root: Path | None = None) -> None:
        """``root``: run the emulator of this source tree (default: the one this script is imported from)."""
        env = tree_env(root) if root is not None else None
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "reconciler.testing.emulator",
                "--state",
                str(state),
                "--authorized-key",
                pubhex,
                "--latency-ms",
                str(latency_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=root,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError("the emulator did not start")
        self.state = state.read_bytes()

    def _call(self, method: str, route: str, body: bytes | None = None, content_type: str = "") -> Any:
        req = urllib.request.Request(f"{self.url}/_emulator/{route}", data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, timeout=300) as resp:
            data = resp.read()
        return json.loads(data) if data else None

    def reset(self) -> None:
        self._call("PUT", "state", self.state, "application/x-ndjson")
        self._call("DELETE", "requests")

    def requests(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "requests")
        return result

    def items(self) -> dict[str, dict[str, Any]]:
        state = self._call("GET", "state")
        return {item["uuid"]: item.get("client_metadata") or {} for item in state.get("items", [])}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def run_benchmark(
    work: Path, *, files: int, keys: int, latency_ms: float, loop_sample: int, runs: int
) -> list[Measurement]:
    """Generate the workload, start one emulator, and measure the three methods ``runs`` times."""
    spec = BenchSpec(files=files, keys=keys, changed=1.0)
    g: Generated = generate(work / f"apply-{files}", spec)
    key_file, pubhex = _make_key(work)
    names = key_names(keys)
    want = {file_uuid(spec, i): desired_metadata(spec, i, names) for i in range(files)}
    step = max(1, files // max(1, loop_sample))
    sample = [(file_uuid(spec, i), file_name(i)) for i in range(0, files, step)][:loop_sample]
    uuids_file = work / "loop-sample.json"
    uuids_file.write_text(json.dumps(sample))
    env = bench_env(ENCORD_SSH_KEY_FILE=str(key_file))
    root = Path(__file__).resolve().parent.parent
    emu = _Emulator(g.snapshot, pubhex, latency_ms)
    results: list[Measurement] = []
    try:
        commands: dict[str, tuple[list[str], int, list[str]]] = {
            "reconciler apply": (
                [
                    *(PYTHON, "-m", "reconciler", "-C", str(g.manifests), "apply", "--auto-approve"),
                    *("--provider", f"encord:{emu.url}"),
                ],
                files,
                list(want),
            ),
            "SDK bundle script": (
                [
                    *(PYTHON, "-m", "bench.sdk_scripts", "bundle", "--domain", emu.url),
                    *("--key-file", str(key_file), "--folder", folder_uuid(spec), "--source", str(g.source)),
                ],
                files,
                list(want),
            ),
            "SDK get+update loop": (
                [
                    *(PYTHON, "-m", "bench.sdk_scripts", "loop", "--domain", emu.url),
                    *("--key-file", str(key_file), "--uuids", str(uuids_file), "--source", str(g.source)),
                ],
                len(sample),
                [u for u, _ in sample],
            ),
        }
        for run in range(1, runs + 1):
            for method, (cmd, n, check) in commands.items():
                emu.reset()
                t = run_timed(cmd, env=env, cwd=root)
                counts = emu.requests()
                live = emu.items()
                ok = all(live.get(u) == want[u] for u in check)
                results.append(
                    Measurement(
                        method,
                        run,
                        n,
                        t.wall_s,
                        counts["total"],
                        counts["by_route"],
                        t.cpu_s,
                        t.max_rss_mb,
                        ok,
                    )
                )
    finally:
        emu.stop()
    return results


def report(results: list[Measurement], latency_ms: float) -> str:
    lines = [f"Emulator latency {latency_ms:g} ms per request; each command its own process.", ""]
    lines.append(
        f"{'run':>3}  {'method':<20} {'files':>7} {'wall s':>8} {'ms/file':>8} {'requests':>8} {'CPU s':>7} "
        f"{'RSS MB':>7}  ok"
    )
    for m in results:
        lines.append(
            f"{m.run:>3}  {m.method:<20} {m.files:>7,} {m.wall_s:>8.2f} {m.per_file_ms:>8.2f} {m.requests:>8,} "
            f"{m.cpu_s:>7.2f} {m.max_rss_mb:>7.0f}  {'yes' if m.verified else 'NO'}"
        )
    lines.append("")
    for run in sorted({m.run for m in results}):
        by = {m.method: m for m in results if m.run == run}
        rec, bundle, loop = by["reconciler apply"], by["SDK bundle script"], by["SDK get+update loop"]
        lines.append(
            f"run {run}: SDK bundle / reconciler wall = {bundle.wall_s / rec.wall_s:.2f}x; "
            f"SDK loop / reconciler per file = {loop.per_file_ms / rec.per_file_ms:.1f}x "
            f"({loop.per_file_ms:.2f} vs {rec.per_file_ms:.3f} ms/file); reconciler requests {rec.requests} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(rec.by_route.items()))})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=10_000, help="files to change (default 10,000)")
    p.add_argument("--keys", type=int, default=10, help="metadata keys per file (default 10)")
    p.add_argument("--latency-ms", type=float, default=20.0, help="emulator latency per request (default 20)")
    p.add_argument("--loop-sample", type=int, default=300, help="files the get+update loop updates (300)")
    p.add_argument("--runs", type=int, default=2, help="times each command is run (default 2)")
    p.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    compile_tree()  # the measured commands import bytecode, as an installed reconciler does
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = run_benchmark(
            work,
            files=args.files,
            keys=args.keys,
            latency_ms=args.latency_ms,
            loop_sample=args.loop_sample,
            runs=args.runs,
        )
    if args.json:
        print(json.dumps([asdict(m) | {"per_file_ms": m.per_file_ms} for m in results], indent=1))
    else:
        print(report(results, args.latency_ms))
    return 0 if all(m.verified for m in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
