"""``reconciler fmt [--check]`` through the CLI: exit codes, what it prints, what it writes."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import REPO, copy_demo, run
from tests.helpers.fmt_samples import CANONICAL, MESSY


def test_check_lists_what_would_change_and_exits_1_without_writing(tmp_path: Path):
    m = copy_demo(tmp_path)
    (m / "files" / "messy.yaml").write_text(MESSY)
    r = run(["fmt", "--check", "-C", str(m)], cwd=REPO)
    assert (r.code, r.out) == (1, f"{m / 'files' / 'messy.yaml'}\n")
    assert r.err == "1 file not in canonical form; run `reconciler fmt` to rewrite them.\n"
    assert (m / "files" / "messy.yaml").read_text() == MESSY


def test_fmt_rewrites_then_check_passes(tmp_path: Path):
    m = copy_demo(tmp_path)
    (m / "files" / "messy.yaml").write_text(MESSY)
    before = {p: p.read_text() for p in m.rglob("*.yaml") if p.name != "messy.yaml"}
    r = run(["fmt", "-C", str(m)], cwd=REPO)
    assert (r.code, r.out, r.err) == (0, f"{m / 'files' / 'messy.yaml'}\n", "")
    assert (m / "files" / "messy.yaml").read_text() == CANONICAL
    assert {p: p.read_text() for p in before} == before  # the demo manifests were already canonical
    r = run(["fmt", "--check", "-C", str(m)], cwd=REPO)
    assert (r.code, r.out, r.err) == (0, "", "")
    r = run(["fmt", "-C", str(m)], cwd=REPO)
    assert (r.code, r.out, r.err) == (0, "", "")


def test_the_repository_manifests_need_no_formatting():
    from tests.helpers.cli import REPO

    r = run(["fmt", "--check", "-C", str(REPO / "manifests")], cwd=REPO)
    assert (r.code, r.out, r.err) == (0, "", "")


def test_invalid_yaml_is_an_error_with_its_position_and_nothing_is_written(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(MESSY)
    (tmp_path / "b.yaml").write_text("apiVersion: reconciler/v1\nkind: [\n")
    r = run(["fmt", "-C", str(tmp_path)], cwd=REPO)
    assert r.code == 1
    assert r.out == ""
    assert r.err.startswith(f"Error: {tmp_path / 'b.yaml'}:3:1: invalid YAML")
    assert (tmp_path / "a.yaml").read_text() == MESSY


def test_a_missing_directory_is_an_error(tmp_path: Path):
    r = run(["fmt", "-C", str(tmp_path / "nope")], cwd=REPO)
    assert r.code == 1
    assert (
        r.err
        == f"Error: manifest directory {str(tmp_path / 'nope')!r} does not exist (use -C/--dir to point at it)\n"
    )


def test_a_named_file_that_is_not_a_manifest_is_refused_and_left_alone(tmp_path: Path):
    """``fmt PATH`` rewrites only manifests: a text file, a JSON upload file or a YAML file of another tool
    named on the command line (a shell glob over a data directory, say) is an error and is not written."""
    m = copy_demo(tmp_path)
    (m / "files" / "messy.yaml").write_text(MESSY)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello:   world\nfoo:    [1,2]\n")
    upload = tmp_path / "upload.json"
    upload.write_text('{\n  "videos": [\n    {"objectUrl": "s3://b/v.mp4"}\n  ]\n}\n')
    workflow = tmp_path / "ci.yml"
    workflow.write_text("on:   push\njobs:   {}\n")
    for path, message in [
        (notes, "Error: notes.txt: not a manifest: fmt rewrites only *.yaml and *.yml files\n"),
        (upload, "Error: upload.json: not a manifest: fmt rewrites only *.yaml and *.yml files\n"),
        (
            workflow,
            "Error: ci.yml:1:1: not a manifest (a document without apiVersion); fmt rewrites only "
            "manifests\n",
        ),
    ]:
        before = path.read_text()
        r = run(["fmt", str(m / "files" / "messy.yaml"), str(path)], cwd=tmp_path)
        assert (r.code, r.out, r.err) == (1, "", message)
        assert path.read_text() == before
        assert (
            m / "files" / "messy.yaml"
        ).read_text() == MESSY  # nothing is written when one file is refused
