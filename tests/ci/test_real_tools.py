"""The checks that need real tools, installed by ``bash scripts/test.sh`` (the ``test`` extra) or, for ajv, by npm
into a cache directory: actionlint on every workflow and example, pre-commit on the README's config, ajv (strict)
and check-jsonschema on ``schema-json``, the built wheel's contents, and the CLI on the lowest click allowed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers.cli import REPO, copy_demo

BIN = Path(sys.executable).parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
EXAMPLES = sorted((REPO / "examples" / "github").glob("*.yml"))
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reconciler-tests"


def tool(name: str) -> str:
    """A tool of the test extra, from this venv (never skipped: scripts/test.sh installs it)."""
    path = BIN / name
    assert path.exists(), f"{name} is missing: run `bash scripts/test.sh` (it installs the test extra)"
    return str(path)


def readme_block(after: str, lang: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(after)
    m = re.compile(rf"```{lang}\n(.*?)```", re.DOTALL).search(text, start)
    assert m is not None
    return m.group(1)


# --------------------------------------------------------------------------------------------- actionlint


def test_actionlint_passes_every_workflow_and_example():
    paths = [str(p) for p in [*WORKFLOWS, *EXAMPLES]]
    assert len(paths) == 5
    r = subprocess.run([tool("actionlint"), "-no-color", *paths], capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_actionlint_is_not_a_rubber_stamp(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    r = subprocess.run([tool("actionlint"), "-no-color", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "potentially untrusted" in r.stdout


# --------------------------------------------------------------------------------------------- pre-commit


def _git(*args: str, cwd: Path) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def _hook_repo(tmp_path: Path, rev: str) -> Path:
    """This checkout's package and hooks as a git repository tagged ``rev`` (what the README's ``repo:`` names)."""
    repo = tmp_path / "hook-repo"
    repo.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", ".pre-commit-hooks.yaml"):
        shutil.copy(REPO / name, repo / name)
    shutil.copytree(REPO / "reconciler", repo / "reconciler", ignore=shutil.ignore_patterns("__pycache__"))
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "reconciler", cwd=repo)
    _git("tag", rev, cwd=repo)
    return repo


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_readmes_pre_commit_config_runs(tmp_path: Path):
    config = readme_block("### pre-commit hooks", "yaml")
    assert config.startswith("# .pre-commit-config.yaml\nrepos:\n")
    url = "https://github.com/reconciler-dev/reconciler"
    rev = re.search(r"rev: (\S+)", config)
    assert rev is not None and url in config
    hooks = _hook_repo(tmp_path, rev.group(1))
    project = tmp_path / "project"
    project.mkdir()
    copy_demo(project)
    (project / ".pre-commit-config.yaml").write_text(config.replace(url, str(hooks)))
    _git("init", "-q", "-b", "main", cwd=project)
    _git("add", "-A", cwd=project)
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(CACHE / "pre-commit"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("GITHUB_ACTIONS", None)
    pc = [tool("pre-commit"), "run", "--all-files", "--color", "never"]
    r = subprocess.run(pc, cwd=project, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^reconciler validate\.+Passed$", r.stdout, re.MULTILINE), r.stdout
    assert re.search(r"^reconciler fmt --check\.+Passed$", r.stdout, re.MULTILINE), r.stdout

    # A manifest out of canonical form and one with an error: both hooks fail, saying where.
    (project / "manifests" / "files" / "y.yaml").write_text(
        "kind: FileMetadata\napiVersion: reconciler/v1\nfolder: images\nbogus: 1\n"
    )
    _git("add", "-A", cwd=project)
    r = subprocess.run(pc, cwd=project, env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert re.search(r"^reconciler validate\.+Failed$", r.stdout, re.MULTILINE), r.stdout
    assert "Error: manifests/files/y.yaml:4:1: unknown field 'bogus'" in r.stdout
    assert re.search(r"^reconciler fmt --check\.+Failed$", r.stdout, re.MULTILINE), r.stdout


# --------------------------------------------------------------------------------------------- JSON Schema

TYPO = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: images\nfilez: []\n"


def _schema(tmp_path: Path) -> Path:
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", "schema-json"], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    path = tmp_path / "reconciler.schema.json"
    path.write_text(out.stdout)
    return path


def _manifest_documents(tmp_path: Path) -> list[Path]:
    """Every document of the demo manifests, one file each (validators read one document per file)."""
    from reconciler.manifest.discovery import find_manifest_files
    from reconciler.manifest.yamlio import load_documents

    out = []
    for i, path in enumerate(find_manifest_files(REPO / "manifests").files):
        for j, doc in enumerate(load_documents(path.read_text(), str(path))):
            p = tmp_path / f"doc-{i}-{j}.json"
            p.write_text(json.dumps(doc.data))
            out.append(p)
    assert len(out) == 7
    return out


def test_check_jsonschema_accepts_the_schema_and_the_demo_manifests(tmp_path: Path):
    schema = _schema(tmp_path)
    cj = tool("check-jsonschema")
    r = subprocess.run([cj, "--check-metaschema", str(schema)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    docs = [str(p) for p in _manifest_documents(tmp_path)]
    r = subprocess.run([cj, "--schemafile", str(schema), *docs], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_jsonschema_reports_a_file_metadata_typo_against_file_metadata(tmp_path: Path):
    schema = _schema(tmp_path)
    typo = tmp_path / "typo.yaml"
    typo.write_text(TYPO)
    r = subprocess.run(
        [tool("check-jsonschema"), "--schemafile", str(schema), "-o", "json", str(typo)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 1
    errors = json.loads(r.stdout)["errors"]
    assert [(e["path"], e["message"]) for e in errors] == [
        ("$", "Additional properties are not allowed ('filez' was unexpected)")
    ]


@pytest.fixture(scope="session")
def ajv() -> Path:
    """ajv-cli from the npm registry, installed once into a cache directory."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    where = CACHE / "ajv"
    binary = where / "node_modules" / ".bin" / "ajv"
    if not binary.exists():
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(where),
             "ajv@8", "ajv-cli@5"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return binary


def test_ajv_strict_accepts_the_schema_and_the_demo_manifests(tmp_path: Path, ajv: Path):
    schema = _schema(tmp_path)
    base = [str(ajv), "--spec=draft2020", "--strict=true", "-s", str(schema)]
    r = subprocess.run([*base[:1], "compile", *base[1:]], capture_output=True, text=True)
    assert r.returncode == 0 and "is valid" in r.stdout + r.stderr, r.stdout + r.stderr
    for doc in _manifest_documents(tmp_path):
        r = subprocess.run([str(ajv), "validate", *base[1:], "-d", str(doc)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_ajv_reports_a_file_metadata_typo_against_the_file_metadata_branch(tmp_path: Path, ajv: Path):
    schema = _schema(tmp_path)
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"apiVersion": "reconciler/v1", "kind": "FileMetadata", "folder": "images",
                                "filez": []}))  # fmt: skip
    r = subprocess.run(
        [str(ajv), "validate", "--spec=draft2020", "--strict=true", "-s", str(schema), "-d", str(typo),
         "--errors=json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 1
    errors = json.loads(r.stderr[r.stderr.index("[") :])
    kinds = [b["if"]["properties"]["kind"]["const"] for b in json.loads(schema.read_text())["allOf"]]
    branch = f"#/allOf/{kinds.index('FileMetadata')}/if"
    assert [(e["keyword"], e["params"], e["schemaPath"]) for e in errors] == [
        ("additionalProperties", {"additionalProperty": "filez"}, "#/additionalProperties"),
        ("if", {"failingKeyword": "then"}, branch),
    ]


# --------------------------------------------------------------------------------------------- packaging


def test_the_wheel_ships_the_license_the_metadata_and_the_emulator_readme(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w",
         str(tmp_path), str(REPO)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("reconciler-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = z.read(meta_name).decode()
        license_name = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert z.read(license_name).decode() == (REPO / "LICENSE").read_text()
        assert (
            z.read("reconciler/testing/README.md").decode()
            == (REPO / "reconciler/testing/README.md").read_text()
        )
    assert "reconciler/py.typed" in names
    assert "License-Expression: Apache-2.0\n" in meta
    assert "License-File: LICENSE\n" in meta
    assert "Project-URL: Repository, https://github.com/reconciler-dev/reconciler\n" in meta
    assert "Classifier: Programming Language :: Python :: 3.13\n" in meta
    assert "Classifier: License ::" not in meta  # the SPDX expression replaces license classifiers
    assert "Apache License" in (REPO / "LICENSE").read_text().splitlines()[1]
    for req in (
        "Requires-Dist: deepdiff<10,>=7",
        "Requires-Dist: ruamel.yaml<0.20,>=0.18",
        "Requires-Dist: click<9,>=",
    ):
        assert req in meta, meta


def _pyproject_dependency(name: str) -> str:
    text = (REPO / "pyproject.toml").read_text()
    (spec,) = re.findall(rf'^    "({re.escape(name)}[<>=][^"]*)",$', text, re.MULTILINE)
    return spec


def _entry_checks(env: dict[str, str], cwd: Path) -> str:
    """The entry behaviour on one click: bare command, a bad flag, a Terraform hint, a real validate."""

    def rc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=env, capture_output=True,
                              text=True)  # fmt: skip

    bare = rc()
    assert (bare.returncode, bare.stderr) == (0, "")
    assert bare.stdout.startswith("Usage: reconciler [OPTIONS] ")  # click 8.1 and 8.2+ word it differently
    assert "\nCommands:\n" in bare.stdout
    bad = rc("plan", "--nope")
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr.startswith("Error: No such option")  # worded by click
    assert "--nope" in bad.stderr and bad.stderr.endswith(" (see 'reconciler plan --help')\n"), bad.stderr
    assert bad.stderr.count("\n") == 1
    hint = rc("apply", "-auto-approve")
    assert (hint.returncode, hint.stderr) == (
        1,
        "Error: -auto-approve is Terraform's spelling; reconciler's is --auto-approve\n",
    )
    ok = rc("validate")
    assert ok.returncode == 0 and ok.stdout.startswith("Success: the manifests are valid"), ok.stderr
    assert rc("completion", "bash").stdout.startswith("_reconciler_completion() {")
    version = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('click'))"],
                             env=env, capture_output=True, text=True, check=True)  # fmt: skip
    return version.stdout.strip()


def test_the_entry_on_the_lowest_click_allowed(tmp_path: Path):
    spec = _pyproject_dependency("click")
    m = re.fullmatch(r"click>=([0-9.]+),<9", spec)
    assert m is not None, spec
    lowest = m.group(1)
    target = CACHE / f"click-{lowest}"
    if not (target / "click").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
             "--target", str(target), f"click=={lowest}"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    copy_demo(tmp_path)
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{REPO}"}
    env.pop("GITHUB_ACTIONS", None)
    assert _entry_checks(env, tmp_path) == lowest


def test_the_entry_on_the_installed_click(tmp_path: Path):
    """scripts/test.sh installs the newest click the pyproject allows."""
    from importlib.metadata import version

    copy_demo(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GITHUB_ACTIONS", None)
    installed = _entry_checks(env, tmp_path)
    assert installed == version("click")
    assert (
        int(installed.split(".")[0]) == 8 and int(installed.split(".")[1]) >= 2
    )  # click >= 8.2 changed bare groups
