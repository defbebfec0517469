"""Every command in the README's ``bash`` blocks, and its Python example, run as a new user would run them: in a
fresh copy of the repository, in README order, starting with ``bash scripts/demo.sh`` (which creates that copy's
own ``.venv``), with that ``.venv/bin`` first on PATH. So the README cannot drift from the code.

The only changes made to a command before it runs are in ``SUBSTITUTIONS`` (each says why), and the only commands
not run are in ``NOT_RUN``; the test fails when either names something the README no longer says, so neither list
can hide a command.

The worked examples of "From Encord's custom-metadata guide to manifests" run too: each in its own manifest
directory, with the exact plan the README shows, then an apply and a second plan with no changes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.types import JsonValue
from tests.helpers.cli import REPO

README = REPO / "README.md"
EXAMPLE_JOURNAL = "manifests/.reconciler/journal/20240501T120000Z-3f1c0a9e2b4d.jsonl"
EXAMPLE_JOURNAL_TEXT = EXAMPLE_JOURNAL

#: Commands that are not run, and why.
NOT_RUN = {
    "bash scripts/test.sh": "the test suite itself (it is what runs this test)",
    "bash scripts/test.sh -x -k contract": "the test suite itself",
}


#: Commands that exit non-zero on the demo workspace, the code, and why (the README says so next to them).
EXPECTED_EXIT = {
    f"reconciler rollback {EXAMPLE_JOURNAL_TEXT}": (
        1,
        "undoing the demo's apply removes keys from most of its files: destructive, refused without "
        "--allow-destructive (the README's next line passes it)",
    ),
}


def bash_blocks(text: str) -> list[tuple[int, list[str]]]:
    """``(line number, commands)`` of every ```bash block; comments and blank lines dropped."""
    out = []
    for m in re.finditer(r"^```bash\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        line = text[: m.start()].count("\n") + 1
        cmds = []
        for raw in m.group(1).splitlines():
            cmd = re.sub(r"\s+#.*$", "", raw).strip()
            if cmd and not cmd.startswith("#"):
                cmds.append(cmd)
        out.append((line, cmds))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_repo(dest: Path) -> Path:
    root = dest / "repo"
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".reconciler", ".pytest_cache",
                                    ".mypy_cache", ".ruff_cache", "build", "dist")  # fmt: skip
    shutil.copytree(REPO, root, ignore=ignore)
    return root


def newest_journal(root: Path) -> str:
    journals = sorted((root / "manifests" / ".reconciler" / "journal").glob("*.jsonl"))
    assert journals, "no journal: the README's apply did not write one"
    return str(journals[-1].relative_to(root))


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path: Path):
    from reconciler.testing import Emulator

    text = README.read_text()
    blocks = bash_blocks(text)
    all_cmds = [c for _, cmds in blocks for c in cmds]
    assert set(NOT_RUN) <= set(all_cmds), "NOT_RUN names a command the README no longer has"
    assert set(EXPECTED_EXIT) <= set(all_cmds), "EXPECTED_EXIT names a command the README no longer has"
    assert all_cmds[0] == "bash scripts/demo.sh", "the README starts with the demo"

    root = copy_repo(tmp_path)
    port = free_port()
    snapshot = json.loads((REPO / "manifests" / "demo-live.json").read_text())
    with Emulator(snapshot, tokens=["ci-token"]) as emu:
        #: (text in the README, what runs instead, why).
        substitutions = [
            ("--provider encord: ", f"--provider encord:{emu.url} ",
             "`encord:` is Encord's API; the test talks to the emulator (token ci-token) instead"),
            ("--port 8765", f"--port {port}", "a free port, not a fixed one"),
            ("http://127.0.0.1:8765", f"http://127.0.0.1:{port}", "the same free port"),
            (".venv/bin/pytest", f"{sys.executable} -m pytest",
             "the demo's .venv has no test extra (scripts/test.sh, not run here, installs it)"),
        ]  # fmt: skip
        used: set[str] = set()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PYTEST_", "NO_COLOR"))}
        env.update(
            PATH=f"{root / '.venv' / 'bin'}{os.pathsep}{env['PATH']}",
            ENCORD_API_TOKEN="ci-token",
            HOME=str(tmp_path / "home"),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        env.pop("PYTHONPATH", None)
        (tmp_path / "home").mkdir()
        ran: list[str] = []
        background: list[subprocess.Popen[str]] = []
        try:
            for line, cmds in blocks:
                for cmd in cmds:
                    if cmd in NOT_RUN:
                        continue
                    run = cmd
                    for old, new, _why in substitutions:
                        if old in run:
                            run = run.replace(old, new)
                            used.add(old)
                    if EXAMPLE_JOURNAL in run or " JOURNAL " in f" {run} ":
                        journal = newest_journal(root)
                        run = run.replace(EXAMPLE_JOURNAL, journal).replace(" JOURNAL ", f" {journal} ")
                    if run.endswith("&"):
                        proc = subprocess.Popen(["bash", "-c", run[:-1]], cwd=root, env=env, text=True,
                                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                                start_new_session=True)  # fmt: skip
                        assert proc.stdout is not None
                        first = proc.stdout.readline()
                        assert first.startswith("http://127.0.0.1:"), first
                        background.append(proc)
                        ran.append(cmd)
                        continue
                    r = subprocess.run(["bash", "-c", run], cwd=root, env=env, input="yes\n", text=True,
                                       capture_output=True, timeout=600)  # fmt: skip
                    expected = EXPECTED_EXIT.get(cmd, (0, ""))[0]
                    assert r.returncode == expected, (
                        f"README line {line}: {cmd}\n-> {run}\n{r.stdout}\n{r.stderr}"
                    )
                    ran.append(cmd)
                # A block's background processes end with the block.
                for proc in background:
                    os.killpg(proc.pid, signal.SIGINT)
                    assert proc.wait(timeout=30) == 0
                    assert proc.stdout is not None
                    proc.stdout.close()
                background.clear()
        finally:
            for proc in background:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
        assert used == {old for old, _, _ in substitutions}, (
            "a substitution names text the README no longer has"
        )
    assert len(ran) == len(all_cmds) - len([c for c in all_cmds if c in NOT_RUN])
    # The demo's second plan showed no changes, and so does one now (rollback restored what apply wrote, so
    # apply again first).
    r = subprocess.run(["bash", "-c", "reconciler apply --auto-approve && reconciler plan --detailed-exitcode"],
                       cwd=root, env=env, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_python_example_runs(tmp_path: Path):
    text = README.read_text()
    (block,) = re.findall(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    script = tmp_path / "example.py"
    script.write_text(block)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+ \['audio', 'images', 'medical', 'traffic'\] 1\n", r.stdout)


def test_the_terraform_table_names_real_commands_and_flags():
    """Every reconciler command and --flag in the "Coming from Terraform" table is in that command's --help."""
    from tests.helpers.cli import run

    text = README.read_text()
    table = text[text.index("### Coming from Terraform") :]
    table = table[: table.index("\n\n", table.index("| Terraform |"))]
    rows = [r for r in table.splitlines() if r.startswith("| ") and not r.startswith("| Terraform")]
    assert len(rows) >= 15
    from reconciler.cli import cli

    checked = 0
    for row in rows:
        ours = row.split(" | ")[1]
        command: str | None = None
        for code in re.findall(r"`([^`]+)`", ours):
            words = code.split()
            if words[0] == "reconciler":
                words = words[1:]
                command = None
            if words and words[0] in cli.commands:
                command, words = words[0], words[1:]
            elif not words or not words[0].startswith("-"):
                continue  # not a command line (a selector, an env var)
            help_args = [command, "--help"] if command else ["--help"]
            res = run(help_args)
            assert res.code == 0, code
            for flag in re.findall(r"(?<![\w-])(--[a-z-]+|-C)\b", " ".join(words)):
                assert flag in res.out, f"{code}: {flag} is not in `reconciler {' '.join(help_args)}`"
                checked += 1
    assert checked >= 12
    hint = run(["plan", "-out=plan.json"])
    assert hint.err == "Error: -out=plan.json is Terraform's spelling; reconciler's is --out plan.json\n"
    assert hint.err.strip() in text.replace("\n", " ")


# ------------------------------------------------------------------ "From Encord's custom-metadata guide"

GUIDE = "## From Encord's custom-metadata guide to manifests\n"
#: A marker comment, then the fenced block it names.
MARKED_BLOCK = re.compile(r"^<!-- (file: (?P<file>[^ ]+)|(?P<role>plan|warnings|after)) -->\n```(\w+)\n(.*?)^```\n",
                          re.DOTALL | re.MULTILINE)  # fmt: skip


@dataclass
class GuideExample:
    """One worked example of the guide section: its ``###`` heading, files, and the plan it shows."""

    heading: str
    line: int
    files: dict[str, str] = field(default_factory=dict)
    plan: str | None = None
    warnings: str = ""
    after: dict[str, JsonValue] | None = None


def guide_section(text: str) -> tuple[int, str]:
    start = text.index(GUIDE)
    end = text.index("\n## ", start + len(GUIDE))
    return text[:start].count("\n") + 1, text[start : end + 1]


def guide_examples(text: str) -> tuple[dict[str, str], list[GuideExample]]:
    """The files every example shares (the blocks before the first ``###``) and the examples, in order.

    Every fenced block of the section is a marked one, so nothing the section shows goes unrun."""
    first_line, section = guide_section(text)
    fences = section.count("\n```") // 2
    shared: dict[str, str] = {}
    examples: list[GuideExample] = []
    headings = [(m.start(), m.group(1)) for m in re.finditer(r"^### (.+)$", section, re.MULTILINE)]
    marked = list(MARKED_BLOCK.finditer(section))
    assert len(marked) == fences, (
        "a fenced block of the guide section has no <!-- file/plan/warnings/after --> marker"
    )
    for m in marked:
        owner = [h for h in headings if h[0] < m.start()]
        if not owner:
            assert m.group("file"), "only files come before the first example"
            shared[m.group("file")] = m.group(5)
            continue
        pos, heading = owner[-1]
        if not examples or examples[-1].heading != heading:
            examples.append(GuideExample(heading, first_line + section[:pos].count("\n")))
        ex = examples[-1]
        if m.group("file"):
            ex.files[m.group("file")] = m.group(5)
        elif m.group("role") == "plan":
            ex.plan = m.group(5)
        elif m.group("role") == "warnings":
            ex.warnings = m.group(5)
        else:
            ex.after = json.loads(m.group(5))
    assert [e.heading for e in examples] == [h for _, h in headings], "an example without a plan block"
    return shared, examples


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_guide_table_links_every_example_and_every_link_is_an_example() -> None:
    text = README.read_text()
    _, section = guide_section(text)
    _, examples = guide_examples(text)
    table = [line for line in section.splitlines() if line.startswith("| ")]
    assert table[0] == "| Encord's guide | reconciler | example |"
    links = {anchor for row in table for anchor in re.findall(r"\]\(#([^)]+)\)", row)}
    assert links == {slug(e.heading) for e in examples}
    assert len(table) - 1 >= len(examples)
    # Every heading of the guide named in the brief is a row.
    rows = "\n".join(table)
    for part in ("add_scalar", "add_enum_options", "add_embedding", "Verify your schema", "keyframes", "`config`",
                 "registration JSON", "custom embeddings on frames", "overwrites", "does not overwrite",
                 "`bundle`", "image group", "Datasets", "List custom metadata"):  # fmt: skip
        assert part in rows, part


def live_metadata_by_name(root: Path) -> dict[str, JsonValue]:
    """``folder/name`` (``folder/GROUP/CHILD`` for a child item) and, for a data unit without a backing item,
    ``dataset TITLE/title`` -> its metadata, read back with ``reconciler snapshot``."""
    from tests.helpers.cli import run

    out = root.parent / "after.json"
    res = run(["-C", str(root), "snapshot", "--out", str(out)])
    assert res.code == 0, res.err
    snap = json.loads(out.read_text())
    folders = {f["uuid"]: f["name"] for f in snap["folders"]}
    names = {i["uuid"]: i["name"] for i in snap["items"]}
    found: dict[str, JsonValue] = {}
    for item in snap["items"]:
        parent = f"{names[item['parent_item']]}/" if item.get("parent_item") else ""
        found[f"{folders[item['folder']]}/{parent}{item['name']}"] = item["client_metadata"]
    for ds in snap.get("datasets", []):
        for row in ds["rows"]:
            if row["backing_item"] is None:
                found[f"dataset {ds['title']}/{row['title']}"] = row["client_metadata"]
    return found


GUIDE_SHARED, GUIDE_EXAMPLES = guide_examples(README.read_text())


@pytest.mark.parametrize("example", GUIDE_EXAMPLES, ids=[slug(e.heading) for e in GUIDE_EXAMPLES])
def test_a_guide_example_plans_applies_and_plans_no_changes(tmp_path: Path, example: GuideExample) -> None:
    """Each example of "From Encord's custom-metadata guide": the plan shown (exactly), its warnings, an apply,
    the live metadata shown under it, and a second plan with no changes."""
    from tests.helpers.cli import run, write

    root = write(tmp_path / "m", {**GUIDE_SHARED, **example.files})
    where = f"README line {example.line}: {example.heading}"
    plan = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert example.plan is not None, where
    changes = not example.plan.startswith("No changes.")
    assert (plan.code, plan.out, plan.err) == (2 if changes else 0, example.plan, example.warnings), where
    applied = run(["-C", str(root), "apply", "--auto-approve"])
    assert (applied.code, applied.err) == (0, example.warnings), (where, applied.out)
    if example.after is not None:
        live = live_metadata_by_name(root)
        assert {k: live.get(k) for k in example.after} == example.after, where
    again = run(["-C", str(root), "plan", "--detailed-exitcode"])
    assert (again.code, again.err) == (0, example.warnings), (where, again.out)
    assert again.out.startswith("No changes. Live state matches the manifests.\n"), where
