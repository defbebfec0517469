"""Run the real CLI entry point (``reconciler.cli.main``) in-process and capture what it prints."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from reconciler.cli import main

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(args: Sequence[str], *, input: str | None = None, env: Mapping[str, str] | None = None,
        cwd: Path | None = None) -> Result:  # fmt: skip
    """``reconciler ARGS`` with stdin ``input``; returns exit code, stdout and stderr.

    Without ``cwd``, a run given ``-C ABSOLUTE_DIR`` runs from inside that directory, as a user standing in
    their manifest repository would: the locations it prints are then relative to the manifest directory.
    """
    runner = CliRunner()
    old = Path.cwd()
    if cwd is None and "-C" in args:
        i = list(args).index("-C")
        given = Path(args[i + 1]) if i + 1 < len(args) else None
        if given is not None and given.is_absolute() and given.is_dir():
            cwd = given
    if cwd is not None:
        os.chdir(cwd)
    try:
        with runner.isolation(input=input, env=dict(env or {})) as (out, err, _):
            code = main(list(args))
            return Result(code, out.getvalue().decode(), err.getvalue().decode())
    finally:
        os.chdir(old)


def copy_demo(dest: Path) -> Path:
    """A fresh copy of the repository's demo manifests (no database yet)."""
    target = dest / "manifests"
    shutil.copytree(REPO / "manifests", target, ignore=shutil.ignore_patterns(".reconciler"))
    return target


def write(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``{relative path: text}`` under root; returns root."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root
