"""What a Terraform user meets in the first hour, through the real CLI: the bare command, Terraform's single-dash
spellings, colour switches, clickable locations, GitHub annotations, JSON results, completion, fmt --diff/PATH,
and the emulator from Python."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.render.diagnostics import display_path, github_annotation
from tests.helpers.cli import REPO, copy_demo, run, write

BAD_FILE = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: images\nbogus: 1\n"
BOGUS = (
    "unknown field 'bogus' (allowed fields: apiVersion, kind, folder, dataset, recursive, children, mode, owns, "
    "on_missing, defaults, files, source)"
)


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m reconciler ARGS`` in a child process (the console script's code path)."""
    full = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "NO_COLOR", "FORCE_COLOR")}
    full["PYTHONPATH"] = str(REPO)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args], cwd=cwd, env=full, capture_output=True, text=True
    )


# --------------------------------------------------------------------------------------------- entry


def test_bare_reconciler_prints_the_help_and_exits_0(tmp_path: Path):
    r = cli(cwd=tmp_path)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.startswith("Usage: reconciler [OPTIONS] [COMMAND] [ARGS]...\n")
    assert "Commands:\n" in r.stdout and "  validate " in r.stdout and "  completion " in r.stdout
    assert r.stdout == cli("--help", cwd=tmp_path).stdout


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["apply", "-auto-approve"], "-auto-approve is Terraform's spelling; reconciler's is --auto-approve"),
        (["plan", "-out=plan.json"], "-out=plan.json is Terraform's spelling; reconciler's is --out plan.json"),
        (["plan", "-detailed-exitcode"], "-detailed-exitcode is Terraform's spelling; reconciler's is --detailed-exitcode"),
        (["-chdir=manifests", "plan"], "-chdir=manifests is Terraform's spelling; reconciler's is -C manifests"),
        (["plan", "-target=schema"], "-target=schema is Terraform's spelling; reconciler's is --target schema"),
        (["plan", "-no-color"], "-no-color is Terraform's spelling; reconciler's is --no-color"),
        (["plan", "-json"], "-json is Terraform's spelling; reconciler's is --format json"),
        (["plan", "-lock=false"], "-lock=false is a Terraform flag; reconciler has no such option (drop it)"),
    ],
)  # fmt: skip
def test_terraform_single_dash_flags_get_a_one_line_hint(tmp_path: Path, args: list[str], hint: str):
    r = cli(*args, cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", f"Error: {hint}\n")


def test_single_dash_after_double_dash_is_left_alone(tmp_path: Path):
    res = run(["fmt", "--check", "--", "-out=x.yaml"], cwd=tmp_path)
    assert res.code == 1
    assert "Terraform" not in res.err and "'-out=x.yaml' does not exist" in res.err


def _colour_run(tmp_path: Path, *args: str, env: dict[str, str]) -> str:
    root = copy_demo(tmp_path)
    r = cli("-C", str(root), "plan", *args, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_force_color_and_no_color(tmp_path: Path):
    forced = _colour_run(tmp_path, env={"FORCE_COLOR": "1"})
    assert "\x1b[" in forced
    assert "\x1b[" in _colour_run(tmp_path / "b", env={"CLICOLOR_FORCE": "1"})
    plain = _colour_run(tmp_path / "c", env={})
    assert "\x1b[" not in plain
    assert _colour_run(tmp_path / "d", env={"FORCE_COLOR": "1", "NO_COLOR": "1"}) == plain
    assert _colour_run(tmp_path / "e", "--no-color", env={"FORCE_COLOR": "1"}) == plain
    # --no-color before the command name too, and FORCE_COLOR=0 does not force.
    root = copy_demo(tmp_path / "f")
    r = cli("--no-color", "-C", str(root), "plan", cwd=tmp_path, env={"FORCE_COLOR": "1"})
    assert r.stdout == plain
    assert _colour_run(tmp_path / "g", env={"FORCE_COLOR": "0"}) == plain


# --------------------------------------------------------------------------------------------- locations


def test_locations_are_relative_to_the_current_directory(tmp_path: Path):
    root = copy_demo(tmp_path)
    write(root, {"files/x.yaml": BAD_FILE})
    expected = f"Error: manifests/files/x.yaml:4:1: {BOGUS}\n1 problem found; nothing was written.\n"
    assert run(["validate", "-C", "manifests"], cwd=tmp_path).err == expected
    assert run(["validate", "-C", str(root)], cwd=tmp_path).err == expected  # an absolute -C as well
    sub = root / "files"
    assert run(["validate", "-C", ".."], cwd=sub).err.startswith(f"Error: x.yaml:4:1: {BOGUS}\n")
    # Outside the current directory: absolute.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run(["validate", "-C", str(root)], cwd=elsewhere).err.startswith(
        f"Error: {root}/files/x.yaml:4:1: {BOGUS}\n"
    )


def test_warnings_are_relative_too(tmp_path: Path):
    root = copy_demo(tmp_path)
    write(root, {"files/w.yaml": "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: images\n"
                 "files:\n  - glob: 'nothing-*.png'\n    metadata: {reviewed: true}\n"})  # fmt: skip
    res = run(["plan", "-C", "manifests"], cwd=tmp_path)
    assert res.code == 0, res.err
    assert res.err == "Warning: manifests/files/w.yaml:5:11: glob 'nothing-*.png' matches no file\n"


def test_display_path_rules(tmp_path: Path):
    assert display_path("files/x.yaml", Path("manifests"), tmp_path) == "manifests/files/x.yaml"
    assert display_path("files/x.yaml", tmp_path / "m", tmp_path) == "m/files/x.yaml"
    assert display_path("x.yaml", Path("../other"), tmp_path / "here") == f"{tmp_path}/other/x.yaml"
    assert display_path(str(tmp_path / "a" / "b.json"), None, tmp_path) == "a/b.json"
    assert display_path(".", Path("m"), tmp_path) == "m/"
    assert display_path(".", tmp_path, tmp_path) == "./"


def test_github_actions_annotations(tmp_path: Path):
    root = copy_demo(tmp_path)
    write(root, {"files/x.yaml": BAD_FILE})
    res = run(["validate", "-C", "manifests"], cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert res.err == (
        f"Error: manifests/files/x.yaml:4:1: {BOGUS}\n"
        f"::error file=manifests/files/x.yaml,line=4,col=1::{BOGUS}\n"
        "1 problem found; nothing was written.\n"
    )
    assert run(["validate", "-C", "manifests"], cwd=tmp_path).err.count("::error") == 0
    hint = run(["-auto-approve"], env={"GITHUB_ACTIONS": "true"})
    assert (
        hint.err.splitlines()[1]
        == "::error::-auto-approve is Terraform's spelling; reconciler's is --auto-approve"
    )


def test_github_annotation_escaping():
    from reconciler.errors import SourceLocation

    loc = SourceLocation("dir,a/b:c%.yaml", 3, 7)
    assert github_annotation("50% done\r\nnext: a,b", location=loc) == (
        "::error file=dir%2Ca/b%3Ac%25.yaml,line=3,col=7::50%25 done%0D%0Anext: a,b"
    )
    assert (
        github_annotation("w", severity="warning", location=SourceLocation("f.yaml"))
        == "::warning file=f.yaml::w"
    )


# --------------------------------------------------------------------------------------------- JSON results


def test_validate_format_json_gives_the_digest_a_plan_records(tmp_path: Path):
    root = copy_demo(tmp_path)
    res = run(["validate", "-C", "manifests", "--format", "json"], cwd=tmp_path)
    assert (res.code, res.err) == (0, "")
    doc = json.loads(res.out)
    plan = json.loads(run(["plan", "-C", str(root), "--format", "json"]).out)
    assert doc == {
        "format_version": "1",
        "valid": True,
        "error_count": 0,
        "warning_count": 0,
        "manifests_digest": plan["manifests_digest"],
        "documents": {"Workspace": 1, "MetadataSchema": 1, "FileMetadata": 5},
        "diagnostics": [],
    }
    write(root, {"files/x.yaml": BAD_FILE})
    res = run(["validate", "-C", "manifests", "--format", "json"], cwd=tmp_path)
    assert (res.code, res.err) == (1, "")
    assert json.loads(res.out)["diagnostics"] == [
        {"severity": "error", "file": "manifests/files/x.yaml", "line": 4, "column": 1, "message": BOGUS}
    ]
    assert json.loads(res.out)["valid"] is False and json.loads(res.out)["manifests_digest"] is None


def test_apply_format_json_is_a_result_document(tmp_path: Path):
    root = copy_demo(tmp_path)
    assert run(["apply", "-C", str(root), "--format", "json"]).err == (
        "Error: apply --format json needs PLANFILE or --auto-approve (the prompt cannot be part of it)\n"
    )
    res = run(["apply", "-C", str(root), "--format", "json", "--auto-approve"])
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    journal = doc.pop("journal")
    assert Path(journal).is_file() and Path(journal).parent == root / ".reconciler" / "journal"
    assert doc == {
        "format_version": "1", "ok": True, "interrupted": False, "schema_written": True, "written": 40,
        "unchanged": 0, "stale": 0, "failed": 0, "not_attempted": 0, "files": [],
    }  # fmt: skip
    assert "Plan: schema 6 to add" in res.err and f"Journal: {journal}" in res.err
    # A saved plan: the same document (the plan itself went to stderr).
    plan_file = tmp_path / "plan.json"
    csv = root / "data" / "images.csv"
    csv.write_text(csv.read_text().replace("true", "false", 1))
    assert run(["plan", "-C", str(root), "--out", str(plan_file)]).code == 0
    res = run(["apply", "-C", str(root), str(plan_file), "--format", "json"])
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert (doc["written"], doc["stale"], doc["failed"], doc["files"]) == (1, 0, 0, [])
    again = run(["apply", "-C", str(root), "--format", "json", "--auto-approve"])
    assert json.loads(again.out) == {
        "format_version": "1", "ok": True, "interrupted": False, "schema_written": False, "written": 0,
        "unchanged": 0, "stale": 0, "failed": 0, "not_attempted": 0, "journal": None, "files": [],
    }  # fmt: skip
    assert run(["plan", "-C", str(root), "--detailed-exitcode"]).code == 0


# --------------------------------------------------------------------------------------------- completion


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_commands_and_options(tmp_path: Path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "reconciler"
    shim.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -m reconciler "$@"\n')
    shim.chmod(0o755)
    script = (
        'source <(reconciler completion bash)\n'
        'COMP_WORDS=(reconciler pl); COMP_CWORD=1; _reconciler_completion reconciler; echo "${COMPREPLY[*]}"\n'
        'COMPREPLY=(); COMP_WORDS=(reconciler plan --detailed); COMP_CWORD=2; _reconciler_completion reconciler; '
        'echo "${COMPREPLY[*]}"\n'
    )  # fmt: skip
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == "plan\n--detailed-exitcode\n"


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("zsh", "#compdef reconciler"), ("fish", "complete --no-files --command reconciler")],
)
def test_zsh_and_fish_completion_scripts(shell: str, marker: str):
    res = run(["completion", shell])
    assert res.code == 0 and marker in res.out and "_RECONCILER_COMPLETE" in res.out


def test_completion_rejects_other_shells():
    res = run(["completion", "tcsh"])
    assert res.code == 1 and "'tcsh' is not one of 'bash', 'zsh', 'fish'" in res.err


# --------------------------------------------------------------------------------------------- fmt


UNSORTED = "kind: FileMetadata\napiVersion: reconciler/v1\nfolder: images\nfiles: []\n"


def test_fmt_diff_prints_a_unified_diff_and_changes_nothing(tmp_path: Path):
    root = copy_demo(tmp_path)
    write(root, {"files/y.yaml": UNSORTED})
    res = run(["fmt", "--diff", "-C", "manifests"], cwd=tmp_path)
    assert (res.code, res.out, res.err) == (
        1,
        "--- manifests/files/y.yaml\n+++ manifests/files/y.yaml\n@@ -1,4 +1,4 @@\n+apiVersion: reconciler/v1\n"
        " kind: FileMetadata\n-apiVersion: reconciler/v1\n folder: images\n files: []\n",
        "1 file not in canonical form; run `reconciler fmt` to rewrite them.\n",
    )
    assert (root / "files/y.yaml").read_text() == UNSORTED


def test_fmt_paths_formats_only_those(tmp_path: Path):
    root = copy_demo(tmp_path)
    write(root, {"files/y.yaml": UNSORTED, "files/z.yaml": UNSORTED, "other/w.yaml": UNSORTED})
    res = run(["fmt", "manifests/files/y.yaml", "manifests/other"], cwd=tmp_path)
    assert (res.code, res.out) == (0, "manifests/files/y.yaml\nmanifests/other/w.yaml\n")
    assert (root / "files/y.yaml").read_text().startswith("apiVersion: reconciler/v1\nkind: FileMetadata\n")
    assert (root / "other/w.yaml").read_text().startswith("apiVersion: reconciler/v1\n")
    assert (root / "files/z.yaml").read_text() == UNSORTED
    assert run(["fmt", "--check", "manifests/files/y.yaml"], cwd=tmp_path).code == 0
    res = run(["fmt", "--check", "nope.yaml"], cwd=tmp_path)
    assert res.code == 1 and "'nope.yaml' does not exist" in res.err


# --------------------------------------------------------------------------------------------- emulator


def test_the_emulator_takes_a_snapshot_dict_as_the_readme_shows(tmp_path: Path):
    """README: ``with Emulator(snapshot, tokens=["t"]) as emu: ... emu.url`` with a snapshot dict."""
    import httpx

    from reconciler.testing import Emulator

    snapshot = json.loads((REPO / "manifests" / "demo-live.json").read_text())
    with Emulator(snapshot, tokens=["t"]) as emu:
        assert emu.url.startswith("http://127.0.0.1:")
        assert len(emu.snapshot().items) == len(snapshot["items"])
        r = httpx.get(f"{emu.url}/_emulator/requests")
        assert r.json() == {"total": 0, "by_route": {}}
    with Emulator(REPO / "manifests" / "demo-live.json", tokens=["t"]) as emu:  # or a path
        assert len(emu.snapshot().items) == len(snapshot["items"])
    with pytest.raises(ValueError, match=r"^<snapshot>:1: unsupported snapshot format_version '9'"):
        Emulator({**snapshot, "format_version": "9"})


def test_a_saved_plans_workspace_error_is_relative_too(tmp_path: Path):
    root = copy_demo(tmp_path)
    assert run(["plan", "-C", str(root), "--out", str(tmp_path / "p.json")]).code == 0
    ws = root / "workspace.yaml"
    ws.write_text(ws.read_text().replace("settings:", "settingz:", 1))
    by_plan = run(["plan", "-C", "manifests"], cwd=tmp_path)
    by_apply = run(["apply", "-C", "manifests", "p.json"], cwd=tmp_path)
    assert by_plan.code == by_apply.code == 1
    assert by_plan.err.startswith("Error: manifests/workspace.yaml:")
    assert by_apply.err == by_plan.err
