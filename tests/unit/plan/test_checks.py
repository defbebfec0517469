"""The offline conflict check (plan/checks.py) that ``validate`` and every plan run on all manifests."""

from __future__ import annotations

from pathlib import Path

from reconciler.manifest.loader import load_manifests
from reconciler.plan.checks import offline_conflicts
from tests.unit.manifest.test_loader import files_manifest, workspace, write


def problems(root: Path) -> list[str]:
    return [str(d) for d in offline_conflicts(load_manifests(root).files)]


def test_overwrite_and_another_manifest_on_the_same_file(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "a.yaml", files_manifest("mode: overwrite\nfiles:\n  - name: cam01.mp4\n"))
    write(tmp_path, "b.yaml", files_manifest("files:\n  - name: cam01.mp4\n    metadata: {count: 1}\n"))
    assert problems(tmp_path) == [
        "b.yaml:5:11: conflict: name 'cam01.mp4' in folder 'traffic' is selected by overwrite manifest a.yaml "
        "and by b.yaml (other selector at a.yaml:6:11); an overwrite manifest must be the only one selecting a file"
    ]


def test_two_manifests_owning_the_same_key_on_the_same_file(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "a.yaml", files_manifest("owns: ['capture.*']\nfiles:\n  - name: cam01.mp4\n"))
    write(
        tmp_path,
        "b.yaml",
        files_manifest("files:\n  - name: cam01.mp4\n    metadata: {capture.weather: rain, count: 1}\n"),
    )
    write(tmp_path, "c.yaml", files_manifest("files:\n  - name: cam01.mp4\n    metadata: {reviewed: true}\n"))
    assert problems(tmp_path) == [
        "b.yaml:5:11: conflict: manifests a.yaml and b.yaml both own 'capture.weather' on name 'cam01.mp4' "
        "in folder 'traffic' (other selector at a.yaml:6:11)"
    ]


def test_validate_matches_globs_of_other_manifests_against_exact_names(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "a.yaml", files_manifest("owns: ['capture.*']\nfiles:\n  - name: cam01.mp4\n"))
    write(
        tmp_path,
        "b.yaml",
        files_manifest("files:\n  - glob: '*.mp4'\n    metadata: {capture.weather: rain}\n"),
    )
    write(tmp_path, "c.yaml", files_manifest("files:\n  - glob: 'cam02*'\n    metadata: {capture.site: x}\n"))
    files = load_manifests(tmp_path).files
    assert offline_conflicts(files) == []  # a plan finds it on the live file instead
    assert [str(d) for d in offline_conflicts(files, globs=True)] == [
        "b.yaml:5:11: conflict: manifests a.yaml and b.yaml both own 'capture.weather' on name 'cam01.mp4' "
        "in folder 'traffic' (other selector at a.yaml:6:11)"
    ]


def test_two_owns_patterns_that_can_match_one_key_conflict_offline(tmp_path: Path) -> None:
    workspace(tmp_path)
    write(tmp_path, "a.yaml", files_manifest("owns: ['capture.*']\nfiles:\n  - name: cam01.mp4\n"))
    write(tmp_path, "b.yaml", files_manifest("owns: ['capture.w*']\nfiles:\n  - name: cam01.mp4\n"))
    assert problems(tmp_path) == [
        "b.yaml:6:11: conflict: manifests a.yaml and b.yaml both own 'capture.w*' on name 'cam01.mp4' "
        "in folder 'traffic' (other selector at a.yaml:6:11)"
    ]
