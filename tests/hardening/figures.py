"""Figures for RELIABILITY.md: each hardening test may record what it injected and saw.

Set ``HARDENING_FIGURES=DIR`` to collect them (one JSON file per test run); without it nothing is written.
``python -m tests.hardening.figures DIR`` prints the totals that RELIABILITY.md quotes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def record(name: str, figures: dict[str, object]) -> None:
    """Write ``figures`` as ``$HARDENING_FIGURES/<name>.json`` when that variable is set."""
    target = os.environ.get("HARDENING_FIGURES")
    if not target:
        return
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")


def summarize(directory: Path) -> dict[str, dict[str, int]]:
    """Sum every numeric field per group (the file name up to its first ``-``)."""
    totals: dict[str, dict[str, int]] = {}
    for path in sorted(directory.glob("*.json")):
        group = path.stem.split("-", 1)[0]
        data = json.loads(path.read_text())
        bucket = totals.setdefault(group, {"runs": 0})
        bucket["runs"] += 1
        for key, value in _flatten(data).items():
            if isinstance(value, bool):
                value = int(value)
            if isinstance(value, int):
                bucket[key] = bucket.get(key, 0) + value
    return totals


def _flatten(data: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


if __name__ == "__main__":
    sys.stdout.write(json.dumps(summarize(Path(sys.argv[1])), indent=1, sort_keys=True) + "\n")
