"""Wall time to render a 100,000-changed-file plan as text and as Markdown (the plan is built directly).

Run: ``.venv/bin/python bench/render_scale.py [--files N]``. Prints one line per renderer.
"""

from __future__ import annotations

import argparse
import time

from reconciler.plan.model import FileChange, KeyAction, KeyChange, Plan, Strategy
from reconciler.providers.base import ProviderIdentity
from reconciler.render.markdown import render_plan_markdown
from reconciler.render.text import render_plan_text


def build_plan(n_files: int, *, folders: int = 20) -> Plan:
    """``n_files`` changed files over ``folders`` folders: one grouped change each, plus one unique change."""
    files = []
    for i in range(n_files):
        folder = f"datasets/batch-{i % folders:03d}"
        files.append(
            FileChange(
                uuid=f"00000000-0000-4000-8000-{i:012d}",
                folder=folder,
                name=f"img-{i:07d}.jpg",
                strategy=Strategy.MERGE if i % 7 else Strategy.OVERWRITE,
                manifest="files/batch.yaml",
                live_fingerprint="sha256:" + "0" * 64,
                changes=(
                    KeyChange("ml.split", KeyAction.ADD, None, "train"),
                    KeyChange("ml.score", KeyAction.UPDATE, i / 1000, (i + 1) / 1000),
                ),
            )
        )
    files.sort(key=lambda f: (f.folder, f.name, f.uuid))
    return Plan(
        tool_version="bench",
        created_at="2024-01-01T00:00:00Z",
        provider=ProviderIdentity("sqlite", "/tmp/bench.db"),
        manifests_digest="sha256:bench",
        schema_fingerprint="sha256:bench",
        schema_changes=(),
        files=tuple(files),
        unchanged=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    plan = build_plan(args.files)
    t1 = time.perf_counter()
    text = render_plan_text(plan)
    t2 = time.perf_counter()
    md = render_plan_markdown(plan)
    t3 = time.perf_counter()
    print(f"build plan ({args.files:,} changed files): {t1 - t0:6.2f} s")
    print(f"render text:      {t2 - t1:6.2f} s  ({len(text):,} characters)")
    print(f"render markdown:  {t3 - t2:6.2f} s  ({len(md):,} characters)")


if __name__ == "__main__":
    main()
