"""Blast-radius limits: pure checks of a plan's file changes against settings.limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.model import Assignment, FileManifest, Limits
from reconciler.plan.limits import LimitReport, check_limits, limit_error
from reconciler.plan.model import FileChange, KeyAction, KeyChange, Strategy
from tests.helpers.desired import manifest, md


@dataclass
class Claim:
    manifest: FileManifest
    given: dict[str, Assignment] = field(default_factory=dict)


def removal(uuid: str, *keys: str) -> FileChange:
    return FileChange(
        uuid,
        "f",
        uuid + ".jpg",
        Strategy.MERGE,
        "m.yaml",
        "sha256:x",
        tuple(KeyChange(k, KeyAction.REMOVE, 1, None) for k in keys),
    )


def addition(uuid: str) -> FileChange:
    return FileChange(
        uuid,
        "f",
        uuid + ".jpg",
        Strategy.MERGE,
        "m.yaml",
        "sha256:x",
        (KeyChange("a", KeyAction.ADD, None, 1),),
    )


OWNS = manifest("cams.yaml", "f", owns=("capture.*",))
PLAIN = manifest("plain.yaml", "f")
OVER = manifest("over.yaml", "g", mode="overwrite")


def claims_for(m: FileManifest, n: int, **given) -> dict[str, list[Claim]]:
    return {f"u{i}": [Claim(m, md(m.path, **given))] for i in range(n)}


def test_no_limits_no_findings():
    files = [removal(f"u{i}", "capture.site") for i in range(4)]
    assert check_limits(files, claims_for(OWNS, 100), Limits()) == LimitReport()


def test_max_files_and_max_removed_keys():
    files = [removal(f"u{i}", "capture.site", "capture.time") for i in range(3)] + [addition("u3")]
    report = check_limits(files, claims_for(OWNS, 4), Limits(max_files=3, max_removed_keys=5))
    assert report.violations == (
        "the plan updates 4 files, more than settings.limits.max_files = 3",
        "the plan removes 6 key values, more than settings.limits.max_removed_keys = 5",
    )
    assert str(limit_error(report)) == (
        "blast-radius limit exceeded: the plan updates 4 files, more than settings.limits.max_files = 3; "
        "the plan removes 6 key values, more than settings.limits.max_removed_keys = 5. Nothing was written. "
        "Check the manifests, or re-run with --override-limits if this is intended."
    )
    at_limit = check_limits(files, claims_for(OWNS, 4), Limits(max_files=4, max_removed_keys=6))
    assert at_limit.violations == ()


def test_share_guard_default_half_of_the_selected_files():
    claims = claims_for(OWNS, 20)
    ten = [removal(f"u{i}", "capture.site") for i in range(10)]
    assert check_limits(ten, claims, Limits()).destructive_reasons == ()  # exactly half: not more than
    eleven = [*ten, removal("u10", "capture.site")]
    assert check_limits(eleven, claims, Limits()).destructive_reasons == (
        "cams.yaml removes owned keys from more than settings.limits.max_removed_share = 0.5 of the 20 files "
        "it selects: capture.site from 11 (an emptied manifest or source, or a glob that selects too much?)",
    )


def test_share_guard_ignores_small_manifests_and_can_be_tuned_or_turned_off():
    files = [removal(f"u{i}", "capture.site") for i in range(9)]
    assert check_limits(files, claims_for(OWNS, 9), Limits()).destructive_reasons == ()  # fewer than 10 files
    many = [removal(f"u{i}", "capture.site") for i in range(3)]
    assert check_limits(many, claims_for(OWNS, 10), Limits(max_removed_share=0.2)).destructive_reasons != ()
    every = [removal(f"u{i}", "capture.site") for i in range(10)]
    assert check_limits(every, claims_for(OWNS, 10), Limits(max_removed_share=1)).destructive_reasons == ()


def test_share_counts_only_keys_the_manifest_owns_and_lists_the_worst_first():
    claims = {f"u{i}": [Claim(OWNS), Claim(PLAIN, md("plain.yaml", note=None))] for i in range(10)}
    files = [removal(f"u{i}", "capture.site", "note", "other") for i in range(10)]
    report = check_limits(
        [*files[:8], removal("u8", "capture.time"), removal("u9", "capture.time")], claims, Limits()
    )
    assert report.destructive_reasons == (
        "cams.yaml removes owned keys from more than settings.limits.max_removed_share = 0.5 of the 10 files it "
        "selects: capture.site from 8 (an emptied manifest or source, or a glob that selects too much?)",
        "plain.yaml removes owned keys from more than settings.limits.max_removed_share = 0.5 of the 10 files it "
        "selects: note from 8 (an emptied manifest or source, or a glob that selects too much?)",
    )


def test_overwrite_owns_every_key():
    claims = claims_for(OVER, 10)
    files = [removal(f"u{i}", "a", "b") for i in range(10)]
    (reason,) = check_limits(files, claims, Limits()).destructive_reasons
    assert "over.yaml removes owned keys" in reason and "a from 10, b from 10" in reason


def test_renamed_keys_are_moves_not_removals():
    files = [removal(f"u{i}", "capture.time") for i in range(20)]
    report = check_limits(
        files, claims_for(OWNS, 20), Limits(max_removed_keys=0), moved_keys={"capture.time"}
    )
    assert report == LimitReport()
