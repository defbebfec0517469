"""Data-driven scenarios: each folder holds manifests + a live snapshot -> the exact plan (JSON, text, markdown).

``tests/cases/<scenario>/``:
- ``manifests/``: the manifests (the Workspace is written by the test: sqlite seeded from ``live.json``)
- ``live.json``: the live state (snapshot format)
- ``plan.json``: the expected plan JSON (volatile fields removed); or ``error.txt``: the expected stderr
- ``plan.txt`` / ``plan.md``: the expected text and markdown renders
- ``args.txt`` (optional): extra flags for ``apply`` (e.g. ``--allow-destructive``)

Every scenario with a plan is then applied and re-planned: the second plan must show no changes.
Set ``UPDATE_GOLDEN=1`` to rewrite the expected files after a reviewed change.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from reconciler import __version__
from tests.helpers.cli import run

HERE = Path(__file__).parent
SCENARIOS = sorted(p.name for p in HERE.iterdir() if p.is_dir() and (p / "live.json").exists())
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

WORKSPACE = """apiVersion: reconciler/v1
kind: Workspace
provider: {type: sqlite, path: .reconciler/live.db, seed: live.json}
"""


def _setup(tmp_path: Path, name: str) -> Path:
    src = HERE / name
    root = tmp_path / "manifests"
    shutil.copytree(src / "manifests", root)
    shutil.copy(src / "live.json", root / "live.json")
    if not (root / "workspace.yaml").exists():
        (root / "workspace.yaml").write_text(WORKSPACE)
    return root


def _stable(plan_json: str) -> dict:
    data = json.loads(plan_json)
    for volatile in ("created_at", "tool_version", "manifests_digest"):
        data.pop(volatile)
    data["provider"] = {"type": data["provider"]["type"]}
    return data


def _check(path: Path, actual: str) -> None:
    if UPDATE:
        path.write_text(actual)
    assert path.exists(), f"missing golden file {path} (run with UPDATE_GOLDEN=1 and review it)"
    assert actual == path.read_text()


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(tmp_path, name):
    case = HERE / name
    root = _setup(tmp_path, name)
    res = run(["-C", str(root), "plan", "--format", "json"])
    if (case / "error.txt").exists() or (UPDATE and res.code == 1):
        assert (res.code, res.out) == (1, "")
        _check(case / "error.txt", res.err.replace(str(root) + "/", ""))
        return
    assert res.code == 0, res.err
    actual = json.dumps(_stable(res.out), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    _check(case / "plan.json", actual)
    text = run(["-C", str(root), "plan"])
    _check(case / "plan.txt", text.out)
    md = run(["-C", str(root), "plan", "--format", "markdown"])
    md_out = re.sub(r"`\d{4}-\d\d-\d\dT[\d:]+Z`", "`<created_at>`", md.out.replace(str(root), "<root>"))
    _check(case / "plan.md", md_out.replace(f"reconciler `{__version__}`", "reconciler `<version>`"))

    args = (case / "args.txt").read_text().split() if (case / "args.txt").exists() else []
    applied = run(["-C", str(root), "apply", "--auto-approve", *args])
    assert applied.code == 0, applied.out + applied.err
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert again.code == 0, again.out
    assert again.out.startswith("No changes.")
