"""The GitHub Action, the workflows, the examples and the pre-commit hooks: they parse, have what they must, and
their scripts are sound. ``actionlint`` checks the workflows and examples in tests/ci/test_real_tools.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.manifest.yamlio import load_documents
from tests.helpers.cli import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
EXAMPLES = sorted((REPO / "examples" / "github").glob("*.yml"))
ALL_FILES = [REPO / "action.yml", REPO / ".pre-commit-hooks.yaml", *WORKFLOWS, *EXAMPLES]
MARKER = "<!-- reconciler-plan -->"


def load(path: Path) -> Any:
    docs = load_documents(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert len(docs) == 1
    return docs[0].data


def steps_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in doc:
        return list(doc["runs"]["steps"])
    return [s for job in doc["jobs"].values() for s in job["steps"]]


def scripts_of(doc: dict[str, Any]) -> list[str]:
    return [s["run"] for s in steps_of(doc) if "run" in s]


def test_the_files_exist():
    assert [p.name for p in WORKFLOWS] == ["ci.yml"]
    assert [p.name for p in EXAMPLES] == ["apply.yml", "drift.yml", "plan.yml", "sharded.yml"]


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_file_parses_as_yaml_1_2(path: Path):
    data = load(path)
    assert isinstance(data, (dict, list))
    if path.parent.name in ("workflows", "github"):
        # YAML 1.2: `on` is a string key (YAML 1.1 readers would make it `true`).
        assert {"name", "on", "jobs", "permissions"} <= set(data)


@pytest.mark.parametrize("path", [REPO / "action.yml", *WORKFLOWS, *EXAMPLES], ids=lambda p: p.name)
def test_scripts_are_valid_bash_without_inline_expressions(path: Path):
    """Inputs reach scripts through env only: a `${{ }}` pasted into a script is a script-injection risk."""
    for script in scripts_of(load(path)):
        assert "${{" not in script, script
        subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_action_inputs_and_steps():
    action = load(REPO / "action.yml")
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {
        "command", "manifests", "plan-file", "python-version", "targets", "args", "comment", "comment-marker",
        "comment-author",
        "github-token",
    }  # fmt: skip
    assert action["inputs"]["command"]["default"] == "plan"
    assert action["inputs"]["comment-marker"]["default"] == MARKER
    assert {"exitcode", "has-changes", "plan-file", "markdown-file"} <= set(action["outputs"])
    steps = steps_of(action)
    assert steps[0]["uses"] == "actions/setup-python@v6"
    text = "\n".join(scripts_of(action))
    assert 'python -m pip install --disable-pip-version-check --quiet "$ACTION_PATH"' in text
    assert 'reconciler validate -C "$MANIFESTS"' in text
    assert (
        'reconciler plan -C "$MANIFESTS" --out "$PLAN_FILE" --format markdown --detailed-exitcode "${extra[@]}"'
        in text
    )
    assert 'cat "$markdown" >> "$GITHUB_STEP_SUMMARY"' in text
    assert 'bash "$ACTION_PATH/scripts/github/upsert-comment.sh" "$MARKDOWN"' in text
    assert 'reconciler apply -C "$MANIFESTS" "$PLAN_FILE" "${extra[@]}"' in text
    assert "$ARGS" not in text.replace('<<< "$ARGS"', "")  # never word-split
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash"


def test_ci_workflow_runs_the_test_script_on_every_python():
    ci = load(REPO / ".github" / "workflows" / "ci.yml")
    test = ci["jobs"]["test"]
    assert test["strategy"]["matrix"]["python-version"] == ["3.10", "3.11", "3.12", "3.13"]
    assert "bash scripts/test.sh" in scripts_of(ci)
    assert "reconciler fmt --check -C manifests" in scripts_of(ci)
    assert ci["permissions"] == {"contents": "read"}


def test_plan_example_comments_and_keeps_the_plan():
    plan = load(REPO / "examples" / "github" / "plan.yml")
    assert plan["on"] == {"pull_request": {"paths": ["manifests/**"]}}
    assert plan["permissions"] == {"contents": "read", "pull-requests": "write"}
    steps = steps_of(plan)
    action = next(s for s in steps if s.get("uses", "").startswith("reconciler-dev/reconciler@"))
    assert action["with"] == {"command": "plan", "manifests": "manifests", "plan-file": "plan.json"}
    upload = next(s for s in steps if s.get("uses") == "actions/upload-artifact@v6")
    assert upload["with"]["name"] == "reconciler-plan-${{ github.event.pull_request.head.sha }}"
    assert upload["with"]["path"] == "plan.json"


def test_apply_example_applies_the_reviewed_plan_one_at_a_time():
    apply = load(REPO / "examples" / "github" / "apply.yml")
    assert apply["on"] == {"push": {"branches": ["main"], "paths": ["manifests/**"]}}
    assert apply["concurrency"] == {"group": "reconciler-apply", "cancel-in-progress": False}
    text = "\n".join(scripts_of(apply))
    assert "reconciler apply -C manifests reviewed/plan.json $ALLOW_DESTRUCTIVE" in text
    assert "reconciler validate -C manifests --format json | jq -r .manifests_digest" in text
    assert "reconciler plan -C manifests --format json" not in text  # the digest needs no live plan
    assert "reconciler plan -C manifests --detailed-exitcode" in text
    # Never re-plans and applies unreviewed changes.
    assert "--auto-approve" not in text
    download = next(s for s in steps_of(apply) if s.get("uses") == "actions/download-artifact@v7")
    assert download["with"]["name"] == "reconciler-plan-${{ steps.find.outputs.head }}"


def test_drift_example_runs_on_a_schedule_and_handles_exit_2():
    drift = load(REPO / "examples" / "github" / "drift.yml")
    assert "schedule" in drift["on"] and "workflow_dispatch" in drift["on"]
    assert drift["permissions"] == {"contents": "read", "issues": "write"}
    text = "\n".join(scripts_of(drift))
    assert "reconciler plan -C manifests --detailed-exitcode --format markdown > drift.md" in text
    ifs = [s.get("if") for s in steps_of(drift)]
    assert "steps.plan.outputs.exitcode == '2'" in ifs
    assert "gh issue create" in text and "gh issue edit" in text and "gh issue close" in text


def test_sharded_example_plans_every_shard_before_any_applies():
    doc = load(REPO / "examples" / "github" / "sharded.yml")
    jobs = doc["jobs"]
    assert list(jobs) == ["schema", "plan", "apply"]
    assert jobs["plan"]["needs"] == "schema" and jobs["apply"]["needs"] == "plan"
    shards = int(doc["env"]["SHARDS"])
    for name in ("plan", "apply"):
        assert jobs[name]["strategy"]["matrix"]["shard"] == list(range(1, shards + 1))
        assert jobs[name]["env"]["SHARD"] == "${{ matrix.shard }}"
    assert jobs["plan"]["strategy"]["fail-fast"] is True
    schema = "\n".join(s["run"] for s in jobs["schema"]["steps"] if "run" in s)
    assert "reconciler plan -C manifests --target schema --out schema-plan.json" in schema
    assert "reconciler apply -C manifests schema-plan.json" in schema
    plan = "\n".join(s["run"] for s in jobs["plan"]["steps"] if "run" in s)
    assert 'reconciler plan -C manifests --shard "$SHARD/$SHARDS" --out "plan-$SHARD.json"' in plan
    apply = "\n".join(s["run"] for s in jobs["apply"]["steps"] if "run" in s)
    assert 'reconciler apply -C manifests "plan-$SHARD.json"' in apply
    assert 'reconciler plan -C manifests --shard "$SHARD/$SHARDS" --detailed-exitcode' in apply
    assert "--auto-approve" not in plan + apply + schema


def test_pre_commit_hooks():
    hooks = load(REPO / ".pre-commit-hooks.yaml")
    by_id = {h["id"]: h for h in hooks}
    assert set(by_id) == {"reconciler-validate", "reconciler-fmt"}
    assert by_id["reconciler-validate"]["entry"] == "reconciler validate"
    assert by_id["reconciler-fmt"]["entry"] == "reconciler fmt --check"
    for h in hooks:
        assert h["language"] == "python"
        assert h["pass_filenames"] is False
        re.compile(h["files"])


def test_the_repository_runs_its_own_checks_before_each_commit():
    config = load(REPO / ".pre-commit-config.yaml")
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    by_id = {h["id"]: h for h in hooks}
    assert list(by_id) == ["ruff", "ruff-format", "mypy", "reconciler-validate"]
    assert by_id["ruff"]["entry"] == ".venv/bin/ruff check --force-exclude"
    assert by_id["ruff-format"]["entry"] == ".venv/bin/ruff format --check --force-exclude"
    assert by_id["mypy"]["entry"] == ".venv/bin/mypy reconciler tests bench"  # what scripts/test.sh runs
    assert by_id["reconciler-validate"]["entry"] == ".venv/bin/reconciler validate -C manifests"
    for h in hooks:
        re.compile(h.get("files", ""))
    # The validate hook passes on the repository's own manifests.
    r = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "-C", "manifests"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------------------------- comment upsert

FAKE_GH = """#!/usr/bin/env bash
# A stand-in for the GitHub CLI: logs its arguments, answers the comment listing from $FAKE_LISTING.
printf '%s\\n' "$*" >> "$FAKE_LOG"
for arg in "$@"; do
  case "$arg" in
    body=@*) cp "${arg#body=@}" "$FAKE_LOG.body" ;;
  esac
done
if [ "$2" = "--paginate" ]; then cat "$FAKE_LISTING"; fi
"""


def run_upsert(tmp_path: Path, listing: str) -> tuple[subprocess.CompletedProcess[str], list[str], str]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    gh = bindir / "gh"
    gh.write_text(FAKE_GH)
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "listing").write_text(listing)
    body = tmp_path / "plan.md"
    body.write_text("### reconciler plan: 1 file to update\n")
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "log"),
        "FAKE_LISTING": str(tmp_path / "listing"),
        "GITHUB_REPOSITORY": "acme/data",
        "PR_NUMBER": "42",
        "GH_TOKEN": "t",
    }
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "github" / "upsert-comment.sh"), str(body)],
        env=env,
        capture_output=True,
        text=True,
    )
    log = (tmp_path / "log").read_text().splitlines()
    posted = (tmp_path / "log.body").read_text() if (tmp_path / "log.body").exists() else ""
    return r, log, posted


def test_upsert_posts_a_new_comment_when_there_is_none(tmp_path: Path):
    r, log, posted = run_upsert(tmp_path, "")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Posted the plan comment on pull request #42.\n"
    assert log[0] == (
        "api --paginate repos/acme/data/issues/42/comments --jq "
        '.[] | select(.user.login == "github-actions[bot]" and (.body | startswith("' + MARKER + '"))) | .id'
    )
    assert log[1].startswith("api --method POST repos/acme/data/issues/42/comments -F body=@")
    assert posted == MARKER + "\n### reconciler plan: 1 file to update\n"


def test_upsert_updates_the_existing_comment_in_place(tmp_path: Path):
    r, log, posted = run_upsert(tmp_path, "1001\n1005\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Updated the plan comment 1001 on pull request #42.\n"
    assert len(log) == 2
    assert log[1].startswith("api --method PATCH repos/acme/data/issues/comments/1001 -F body=@")
    assert posted.startswith(MARKER + "\n")


JQ_GH = """#!/usr/bin/env bash
# A stand-in for the GitHub CLI whose --jq filter runs for real (jq) over the comments in $FAKE_COMMENTS.
printf '%s\\n' "$*" >> "$FAKE_LOG"
if [ "$2" = "--paginate" ]; then jq -r "$5" "$FAKE_COMMENTS"; fi
"""


def _comment(cid: int, login: str, body: str) -> dict[str, Any]:
    return {"id": cid, "user": {"login": login}, "body": body}


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
@pytest.mark.parametrize(
    ("author", "expected"),
    [
        (None, "Updated the plan comment 7 on pull request #42.\n"),
        ("reconciler-bot", "Updated the plan comment 9 on pull request #42.\n"),
        ("nobody", "Posted the plan comment on pull request #42.\n"),
    ],
)
def test_upsert_updates_only_a_comment_the_bot_wrote(tmp_path: Path, author: str | None, expected: str):
    # A reviewer's comment that starts with the marker (quoting the plan, or planted) comes first; it is
    # never the one updated.
    comments = [
        _comment(3, "mallory", MARKER + "\nplanted"),
        _comment(5, "github-actions[bot]", "an unrelated bot comment"),
        _comment(7, "github-actions[bot]", MARKER + "\n### old plan"),
        _comment(9, "reconciler-bot", MARKER + "\n### old plan"),
    ]
    bindir = tmp_path / "bin"
    bindir.mkdir()
    gh = bindir / "gh"
    gh.write_text(JQ_GH)
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "comments.json").write_text(json.dumps(comments))
    body = tmp_path / "plan.md"
    body.write_text("### new plan\n")
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "log"),
        "FAKE_COMMENTS": str(tmp_path / "comments.json"),
        "GITHUB_REPOSITORY": "acme/data",
        "PR_NUMBER": "42",
        "GH_TOKEN": "t",
    }
    if author is not None:
        env["COMMENT_AUTHOR"] = author
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "github" / "upsert-comment.sh"), str(body)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected
    assert not any("comments/3" in line for line in (tmp_path / "log").read_text().splitlines())


def test_upsert_refuses_an_author_that_is_not_a_login(tmp_path: Path):
    body = tmp_path / "b.md"
    body.write_text("x")
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "github" / "upsert-comment.sh"), str(body)],
        env={
            "PATH": os.environ["PATH"],
            "GITHUB_REPOSITORY": "a/b",
            "PR_NUMBER": "1",
            "COMMENT_AUTHOR": 'x") or (1',
        },
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert r.stderr == (
        "upsert-comment.sh: COMMENT_AUTHOR must be a GitHub login (letters, digits, '-', optional [bot])\n"
    )


def test_the_action_passes_the_comment_author():
    action = load(REPO / "action.yml")
    assert action["inputs"]["comment-author"]["default"] == "github-actions[bot]"
    step = next(s for s in steps_of(action) if "upsert-comment.sh" in s.get("run", ""))
    assert step["env"]["COMMENT_AUTHOR"] == "${{ inputs.comment-author }}"


def test_upsert_needs_a_pull_request(tmp_path: Path):
    body = tmp_path / "b.md"
    body.write_text("x")
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "github" / "upsert-comment.sh"), str(body)],
        env={"PATH": os.environ["PATH"], "GITHUB_REPOSITORY": "acme/data"},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert "PR_NUMBER is not set (not a pull_request event?)" in r.stderr


# --------------------------------------------------------------------------------------------- the action's steps


def _step(step_id: str) -> dict[str, Any]:
    return next(s for s in steps_of(load(REPO / "action.yml")) if s.get("id") == step_id)


def _run_step(step_id: str, tmp_path: Path, env: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Run one of the action's bash steps as GitHub does (``bash -eo pipefail``), with ``reconciler`` on PATH."""
    bindir = tmp_path / "bin"
    if not bindir.exists():
        bindir.mkdir()
        shim = bindir / "reconciler"
        shim.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -m reconciler "$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    output = tmp_path / "github_output"
    output.write_text("")
    full_env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        **env,
    }
    r = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _step(step_id)["run"]],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    if r.returncode != 0:
        print(r.stdout, r.stderr)
    return r.returncode, outputs


def test_the_action_plans_saves_summarises_and_applies(tmp_path: Path):
    from tests.helpers.cli import copy_demo

    manifests = copy_demo(tmp_path)
    env = {"MANIFESTS": str(manifests), "PLAN_FILE": "plan.json", "ARGS": ""}
    code, outputs = _run_step("plan", tmp_path, env)
    assert code == 0
    markdown = tmp_path / "reconciler-plan.md"
    assert outputs == {"exitcode": "2", "markdown-file": str(markdown), "has-changes": "true"}
    assert markdown.read_text().startswith("### reconciler plan: ")
    assert (tmp_path / "summary.md").read_text() == markdown.read_text()
    assert (tmp_path / "plan.json").exists()

    code, outputs = _run_step("apply", tmp_path, env)
    assert (code, outputs) == (0, {"exitcode": "0"})

    code, outputs = _run_step("plan", tmp_path, env)
    assert code == 0
    assert (outputs["exitcode"], outputs["has-changes"]) == ("0", "false")
    assert "### reconciler plan: no changes" in markdown.read_text()


def test_the_action_fails_on_invalid_manifests_and_passes_the_exit_code_on(tmp_path: Path):
    from tests.helpers.cli import copy_demo

    manifests = copy_demo(tmp_path)
    env = {"MANIFESTS": str(manifests), "PLAN_FILE": "plan.json", "ARGS": "--target\nnope.yaml\n"}
    code, outputs = _run_step("plan", tmp_path, env)
    assert code == 1
    assert outputs["exitcode"] == "1"
    assert not (tmp_path / "summary.md").exists()


def test_the_action_takes_targets_and_arguments_one_per_line(tmp_path: Path):
    """A folder name with spaces stays one argument; blank lines are skipped; nothing is word-split."""
    import json

    from tests.helpers.cli import copy_demo, write

    manifests = copy_demo(tmp_path)
    live = json.loads((manifests / "demo-live.json").read_text())
    traffic = next(f["uuid"] for f in live["folders"] if f["name"] == "traffic")
    spaced = "0c6f1d1e-0000-4000-8000-000000000001"
    live["folders"].append({"uuid": spaced, "parent": traffic, "name": "cams 2024"})
    live["items"].append({"uuid": "0c6f1d1e-0000-4000-8000-000000000002", "folder": spaced, "name": "a b.mp4",
                          "item_type": "video", "client_metadata": {}})  # fmt: skip
    (manifests / "demo-live.json").write_text(json.dumps(live))
    write(manifests, {"files/spaced.yaml": "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: traffic/cams 2024\n"
                      "files:\n  - name: a b.mp4\n    metadata: {reviewed: true}\n"})  # fmt: skip
    env = {"MANIFESTS": str(manifests), "PLAN_FILE": "plan.json", "TARGETS": "folder:traffic/cams 2024\n\nschema\n",
           "ARGS": "--override-limits\n"}  # fmt: skip
    code, outputs = _run_step("plan", tmp_path, env)
    assert (code, outputs["exitcode"]) == (0, "2")
    md = (tmp_path / "reconciler-plan.md").read_text()
    assert "<code>traffic/cams 2024</code>: 1 file to update" in md and "a b.mp4" in md
    assert "<code>images</code>" not in md  # only the targeted folder
    # The same through ARGS, one argument per line.
    env.update(TARGETS="", ARGS="--target\nfolder:traffic/cams 2024\n--target\nschema\n")
    code, outputs = _run_step("plan", tmp_path, env)
    assert (code, outputs["exitcode"]) == (0, "2")
    assert (tmp_path / "reconciler-plan.md").read_text() == md.replace(
        md.split("made `")[1].split("`")[0],
        (tmp_path / "reconciler-plan.md").read_text().split("made `")[1].split("`")[0],
    )
