"""Safety on every provider: key renames across the organisation, blast-radius limits, journal + rollback."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from reconciler.apply import FileStatus, apply_plan
from reconciler.errors import (
    JournalError,
    LimitExceededError,
    ManifestValidationError,
    PlanError,
    SourceLocation,
)
from reconciler.journal import EntryStatus, JournalWriter, read_journal
from reconciler.model import DesiredKey, DesiredState, Limits, LiveItem, SchemaManifest
from reconciler.plan.model import KeyAction, KeyChange, SchemaAction, Strategy
from reconciler.plan.planner import make_plan
from reconciler.providers.base import ProviderIdentity
from reconciler.rollback import plan_rollback
from reconciler.schema import FieldSpec, KeyType
from reconciler.snapshot import Snapshot
from tests.helpers.desired import desired, manifest, sel
from tests.helpers.states import make_snapshot, uid

DT = {"ty": "variant", "hint": "datetime"}
TXT = {"ty": "variant", "hint": "text"}
LOC = SourceLocation("schema.yaml", 7, 3)


def rename_schema(**extra: FieldSpec) -> SchemaManifest:
    keys = {"capture.when": DesiredKey(FieldSpec(KeyType.DATETIME), LOC, renamed_from="capture.time")}
    keys.update({k: DesiredKey(v, SourceLocation("schema.yaml", 9, 3)) for k, v in extra.items()})
    return SchemaManifest(keys, SourceLocation("schema.yaml", 1, 1))


def with_limits(d: DesiredState, limits: Limits) -> DesiredState:
    settings = dataclasses.replace(d.workspace.settings, limits=limits)
    return dataclasses.replace(d, workspace=dataclasses.replace(d.workspace, settings=settings))


def file_md(p, path: str):
    u = uid(f"item:{path}")
    return p.get_items([u])[u].metadata


def rename_state() -> Snapshot:
    snap = make_snapshot(
        {
            "a": [("a1.jpg", {"capture.time": "2024-01-01T00:00:00Z", "x": 1}), ("a2.jpg", {"x": 2})],
            "b/deep": [("b1.jpg", {"capture.time": "2024-02-02T00:00:00Z"})],
            "c": [],
        },
        {"capture.time": DT, "caption": TXT},
    )
    group = LiveItem(uid("g"), snap.folders[-1].uuid, "scan", "imageGroup", {})
    kid = LiveItem(
        uid("kid"), group.folder, "s0.png", "image", {"capture.time": "2024-03-03T00:00:00Z"}, group.uuid
    )
    snap.items += [group, kid]
    return snap


def test_rename_moves_values_on_every_file_of_the_organisation(make_provider):
    p = make_provider(rename_state())
    d = desired(
        manifest("a.yaml", "a", sel("glob", "*.jpg", "a.yaml", caption="hi")),
        schema_manifest=rename_schema(caption=FieldSpec(KeyType.TEXT)),
    )
    plan = make_plan(d, p)
    assert [(c.key, c.action, c.renamed_from, c.reason) for c in plan.schema_changes] == [
        (
            "capture.when",
            SchemaAction.RENAME,
            "capture.time",
            "renamed from capture.time; values move to it on 3 file(s)",
        )
    ]
    assert [(f.address, f.manifest, f.changes) for f in plan.files] == [
        (
            "a/a1.jpg",
            "a.yaml",
            (
                KeyChange("caption", KeyAction.ADD, None, "hi"),
                KeyChange("capture.time", KeyAction.REMOVE, "2024-01-01T00:00:00Z", None),
                KeyChange("capture.when", KeyAction.ADD, None, "2024-01-01T00:00:00Z"),
            ),
        ),
        ("a/a2.jpg", "a.yaml", (KeyChange("caption", KeyAction.ADD, None, "hi"),)),
        (
            "b/deep/b1.jpg",
            "schema.yaml (renamed_from)",
            (
                KeyChange("capture.time", KeyAction.REMOVE, "2024-02-02T00:00:00Z", None),
                KeyChange("capture.when", KeyAction.ADD, None, "2024-02-02T00:00:00Z"),
            ),
        ),
        (
            "c/scan/s0.png",
            "schema.yaml (renamed_from)",
            (
                KeyChange("capture.time", KeyAction.REMOVE, "2024-03-03T00:00:00Z", None),
                KeyChange("capture.when", KeyAction.ADD, None, "2024-03-03T00:00:00Z"),
            ),
        ),
    ]
    (warning,) = [w for w in plan.warnings if "renamed_from" in w.message]
    assert str(warning).startswith(
        "schema.yaml:7:3: renamed_from 'capture.time': read every folder (4 folders, 5 files, "
    )
    assert str(warning).endswith(
        " API reads) to find files holding 'capture.time'; 3 to move. "
        "Remove renamed_from once no file holds the old key."
    )
    assert apply_plan(plan, p).ok
    assert p.read_schema() == {
        "capture.time": {"ty": "tombstone", "deleted_ty": DT},
        "caption": TXT,
        "capture.when": DT,
    }
    assert file_md(p, "a/a1.jpg") == {"capture.when": "2024-01-01T00:00:00Z", "x": 1, "caption": "hi"}
    assert file_md(p, "b/deep/b1.jpg") == {"capture.when": "2024-02-02T00:00:00Z"}
    assert p.get_items([uid("kid")])[uid("kid")].metadata == {"capture.when": "2024-03-03T00:00:00Z"}
    again = make_plan(d, p)
    assert not again.has_changes
    assert any("; 0 to move." in w.message for w in again.warnings)


def test_interrupted_rename_converges(make_provider):
    p = make_provider(rename_state())
    d = desired(schema_manifest=rename_schema(caption=FieldSpec(KeyType.TEXT)))
    plan = make_plan(d, p)
    assert len(plan.files) == 3
    # The schema and one file were written, then the process stopped.
    assert apply_plan(dataclasses.replace(plan, files=plan.files[:1]), p).ok
    resumed = make_plan(d, p)
    assert resumed.schema_changes == ()  # capture.when exists, capture.time is a tombstone
    assert [f.address for f in resumed.files] == ["b/deep/b1.jpg", "c/scan/s0.png"]
    assert apply_plan(resumed, p).ok
    assert not make_plan(d, p).has_changes


def test_rename_errors_name_the_line(make_provider):
    snap = make_snapshot(
        {
            "a": [
                (
                    "both.jpg",
                    {"capture.time": "2024-01-01T00:00:00Z", "capture.when": "2020-01-01T00:00:00Z"},
                ),
                ("old.jpg", {"capture.time": "2024-01-01T00:00:00Z"}),
                ("bad.jpg", {"capture.time": "not a date"}),
            ]
        },
        {"capture.time": DT},
    )
    p = make_provider(snap)
    d = desired(
        manifest(
            "sets-old.yaml",
            "a",
            sel("name", "old.jpg", "sets-old.yaml", capture__time="2024-05-05T00:00:00Z"),
        ),
        schema_manifest=rename_schema(),
    )
    with pytest.raises(ManifestValidationError) as exc:
        make_plan(d, p)
    assert [str(i) for i in exc.value.issues] == [
        "sets-old.yaml:9:9: key 'capture.time' is renamed to 'capture.when' (renamed_from at schema.yaml:7:3); "
        "set 'capture.when' instead"
    ]
    d = desired(
        manifest("owns-new.yaml", "a", sel("name", "old.jpg", "owns-new.yaml", other=1), owns=("capture.*",)),
        schema_manifest=rename_schema(),
    )
    with pytest.raises(ManifestValidationError) as exc:
        make_plan(d, p)
    assert [str(i) for i in exc.value.issues] == [
        "owns-new.yaml:1:1: owns-new.yaml owns 'capture.when' on 1 file(s) holding 'capture.time' (e.g. a/old.jpg) "
        "but sets no value for it there: the rename would move the value and the next plan would remove it. "
        "Set 'capture.when' for these files, or stop owning it.",
        "schema.yaml:7:3: rename 'capture.time' -> 'capture.when': 1 file(s) hold both keys with different values "
        '(e.g. a/both.jpg: capture.time="2024-01-01T00:00:00Z", capture.when="2020-01-01T00:00:00Z"); the move '
        "would overwrite 'capture.when'. Make the values agree or remove one of them first, or set 'capture.when' "
        "for these files in a manifest.",
        "schema.yaml:7:3: rename 'capture.time' -> 'capture.when': 1 file(s) hold values that are not valid for "
        "'capture.when' (e.g. a/bad.jpg: capture.when: 'not a date' is not an ISO 8601 datetime)",
    ]
    # Setting the new key in a manifest settles both the collision and the pruning.
    d = desired(
        manifest(
            "owns-new.yaml",
            "a",
            sel("glob", "*.jpg", "owns-new.yaml", capture__when="2025-01-01T00:00:00Z"),
            owns=("capture.*",),
        ),
        schema_manifest=rename_schema(),
    )
    plan = make_plan(d, p)
    assert {f.name: dict((c.key, c.after) for c in f.changes) for f in plan.files}["both.jpg"] == {
        "capture.time": None,
        "capture.when": "2025-01-01T00:00:00Z",
    }
    assert apply_plan(plan, p).ok
    assert not make_plan(d, p).has_changes


def test_rename_declaration_errors(make_provider):
    p = make_provider(make_snapshot({"a": []}, {"capture.time": DT, "capture.when": DT}))
    loc = SourceLocation("schema.yaml", 3, 3)
    keys = {
        "capture.when": DesiredKey(FieldSpec(KeyType.DATETIME), LOC, renamed_from="capture.time"),
        "self": DesiredKey(FieldSpec(KeyType.TEXT), loc, renamed_from="self"),
        "twin": DesiredKey(FieldSpec(KeyType.TEXT), loc, renamed_from="caption"),
        "twin2": DesiredKey(FieldSpec(KeyType.TEXT), loc, renamed_from="caption"),
        "kept": DesiredKey(FieldSpec(KeyType.TEXT), loc, renamed_from="twin"),
    }
    d = desired(schema_manifest=SchemaManifest(keys, SourceLocation("schema.yaml", 1, 1)))
    with pytest.raises(ManifestValidationError) as exc:
        make_plan(d, p)
    assert [str(i) for i in exc.value.issues] == [
        "schema.yaml:3:3: schema key 'kept' is renamed_from 'twin', which is still declared at schema.yaml:3:3; "
        "remove that declaration (the rename soft-deletes 'twin')",
        "schema.yaml:3:3: schema key 'self': renamed_from names the key itself",
        "schema.yaml:3:3: schema keys 'twin' and 'twin2' are both renamed_from 'caption'",
        "schema.yaml:7:3: schema key 'capture.when' is renamed_from 'capture.time', but 'capture.when' already "
        "exists in the live schema while 'capture.time' is still live: a rename creates the new key, it cannot "
        "merge two existing ones. Rename to a new key name, or remove renamed_from and move the values with a "
        "manifest",
    ]


def test_max_files_and_override(make_provider):
    p = make_provider(make_snapshot({"f": [(f"f{i:02d}.jpg", {}) for i in range(12)]}))
    d = with_limits(desired(manifest("m.yaml", "f", sel("glob", "*.jpg", k=1))), Limits(max_files=10))
    with pytest.raises(LimitExceededError) as exc:
        make_plan(d, p)
    assert str(exc.value) == (
        "blast-radius limit exceeded: the plan updates 12 files, more than settings.limits.max_files = 10. "
        "Nothing was written. Check the manifests, or re-run with --override-limits if this is intended."
    )
    plan = make_plan(d, p, override_limits=True)
    assert [str(w) for w in plan.warnings] == [
        "workspace.yaml:1:1: the plan updates 12 files, more than settings.limits.max_files = 10 "
        "(allowed by --override-limits)"
    ]
    assert apply_plan(plan, p).ok
    assert not make_plan(d, p).has_changes


def test_emptied_manifest_is_destructive(make_provider):
    p = make_provider(
        make_snapshot({"f": [(f"f{i:02d}.jpg", {"capture.site": "x", "keep": 1}) for i in range(12)]})
    )
    emptied = desired(manifest("cams.yaml", "f", sel("glob", "*.jpg", "cams.yaml"), owns=("capture.*",)))
    plan = make_plan(emptied, p)
    assert plan.destructive_reasons == (
        "cams.yaml removes owned keys from more than settings.limits.max_removed_share = 0.5 of the 12 files it "
        "selects: capture.site from 12 (an emptied manifest or source, or a glob that selects too much?)",
    )
    with pytest.raises(PlanError) as exc:
        apply_plan(plan, p)
    assert str(exc.value) == (
        "the plan has destructive changes and --allow-destructive was not given; nothing was written:\n  "
        + plan.destructive_reasons[0]
    )
    assert file_md(p, "f/f00.jpg") == {"capture.site": "x", "keep": 1}
    assert apply_plan(plan, p, allow_destructive=True).ok
    assert file_md(p, "f/f00.jpg") == {"keep": 1}
    assert not make_plan(emptied, p).has_changes


def test_overwrite_rerun_with_a_foreign_key_is_stale_not_unchanged(make_provider):
    p = make_provider(make_snapshot({"o": [("a.jpg", {"k": 1, "old": 2})]}))
    d = desired(manifest("over.yaml", "o", sel("name", "a.jpg", "over.yaml", k=2), mode="overwrite"))
    plan = make_plan(d, p)
    assert apply_plan(plan, p).ok
    again = apply_plan(plan, p)  # the same (saved) plan once more: already as planned
    assert [r.status for r in again.files] == [FileStatus.UNCHANGED]
    u = uid("item:o/a.jpg")
    p.patch_items({u: {"k": 2, "foreign": True}})
    result = apply_plan(plan, p, precheck=False)
    assert [(r.status, r.reason) for r in result.files] == [
        (FileStatus.STALE, "the file's metadata changed since the plan (overwrite plans need the exact dict)")
    ]
    assert p.get_items([u])[u].metadata == {"k": 2, "foreign": True}
    assert apply_plan(make_plan(d, p), p).ok
    assert not make_plan(d, p).has_changes


class _StopAfterFirstBatch:
    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def on_progress(self, stage: str, done: int, total: int | None) -> None:
        return None

    def on_schema_written(self, changes: int) -> None:
        return None

    def on_batch_done(self, results, done: int, total: int) -> None:
        self.cancel.set()


def journal_path(w: JournalWriter) -> Path:
    assert w.path is not None, "nothing was journaled"
    return w.path


def test_rollback_of_an_interrupted_apply(make_provider, tmp_path):
    p = make_provider(make_snapshot({"f": [(f"f{i:04d}.jpg", {"n": i, "site": "old"}) for i in range(2500)]}))
    d = desired(manifest("m.yaml", "f", sel("glob", "*.jpg", site="new", tag="t")))
    plan = make_plan(d, p)
    cancel = threading.Event()
    journal = JournalWriter(tmp_path / "journal", plan)
    result = apply_plan(plan, p, journal=journal, cancel=cancel, hooks=_StopAfterFirstBatch(cancel))
    journal.close()
    assert result.interrupted
    assert (result.count(FileStatus.WRITTEN), result.count(FileStatus.NOT_ATTEMPTED)) == (1000, 1500)
    j = read_journal(journal_path(journal))
    assert len(j.entries) == 1000 and j.count(EntryStatus.WRITTEN) == 1000
    assert j.entries[0].before == {"n": 0, "site": "old"}
    assert j.entries[0].after == {"n": 0, "site": "new", "tag": "t"}

    # Someone changes two written files afterwards: those are conflicts and are left alone.
    f0, f1 = uid("item:f/f0000.jpg"), uid("item:f/f0001.jpg")
    p.patch_items(
        {f0: {"n": 0, "site": "hand-edited", "tag": "t"}, f1: {"n": 1, "site": "new", "tag": "t", "z": 1}}
    )
    rb = plan_rollback(j, p)
    assert [(c.entry.name, c.reason) for c in rb.conflicts] == [
        ("f0000.jpg", "changed since the apply (site); left alone"),
        ("f0001.jpg", "changed since the apply (z); left alone"),
    ]
    assert [str(w) for w in rb.plan.warnings] == [
        f"{journal_path(journal)}:2: f/f0000.jpg: changed since the apply (site); left alone",
        f"{journal_path(journal)}:3: f/f0001.jpg: changed since the apply (z); left alone",
    ]
    assert len(rb.plan.files) == 998 and rb.already == 0
    assert {f.strategy for f in rb.plan.files} == {Strategy.OVERWRITE}
    assert rb.plan.files[0].changes == (
        KeyChange("site", KeyAction.UPDATE, "new", "old"),
        KeyChange("tag", KeyAction.REMOVE, "t", None),
    )
    # Removing 'tag' from 998 of the 1000 journaled files is flagged like an emptied manifest.
    assert rb.plan.destructive_reasons == (
        f"rolling back {journal_path(journal).name} removes keys from more than settings.limits.max_removed_share = 0.5 "
        "of the 1,000 files it journals: tag from 998",
    )
    assert apply_plan(rb.plan, p, allow_destructive=True).ok
    assert file_md(p, "f/f0002.jpg") == {"n": 2, "site": "old"}
    assert file_md(p, "f/f2000.jpg") == {"n": 2000, "site": "old"}  # never written, never touched
    assert p.get_items([f0])[f0].metadata == {"n": 0, "site": "hand-edited", "tag": "t"}
    again = plan_rollback(j, p)
    assert (len(again.plan.files), again.already, len(again.conflicts)) == (0, 998, 2)
    # And the apply converges afterwards.
    assert apply_plan(make_plan(d, p), p).ok
    assert not make_plan(d, p).has_changes


def test_rollback_of_pending_entries_and_limits(make_provider, tmp_path):
    p = make_provider(make_snapshot({"f": [("a.jpg", {"k": 1}), ("b.jpg", {"k": 1}), ("c.jpg", {"k": 1})]}))
    plan = make_plan(desired(manifest("m.yaml", "f", sel("glob", "*.jpg", k=2))), p)
    journal = JournalWriter(tmp_path, plan)
    journal.before_batch([(f, {"k": 1}, {"k": 2}) for f in plan.files])  # killed before the answer came
    journal.close()
    a = uid("item:f/a.jpg")
    p.patch_items({a: {"k": 2}})  # only a.jpg's write had landed
    j = read_journal(journal_path(journal))
    assert [e.status for e in j.entries] == [EntryStatus.PENDING] * 3
    rb = plan_rollback(j, p)
    assert [(f.name, f.changes) for f in rb.plan.files] == [
        ("a.jpg", (KeyChange("k", KeyAction.UPDATE, 2, 1),))
    ]
    assert (rb.already, rb.conflicts, rb.plan.destructive_reasons) == (2, (), ())
    with pytest.raises(
        LimitExceededError, match=r"the plan updates 1 files, more than settings\.limits\.max_files = 0"
    ):
        plan_rollback(j, p, limits=Limits(max_files=0))
    assert apply_plan(rb.plan, p).ok
    assert p.get_items([a])[a].metadata == {"k": 1}


def test_rollback_refuses_a_journal_from_another_provider(make_provider, tmp_path):
    p = make_provider(make_snapshot({"f": [("a.jpg", {"k": 1})]}))
    plan = dataclasses.replace(
        make_plan(desired(manifest("m.yaml", "f", sel("name", "a.jpg", k=2))), p),
        provider=ProviderIdentity("sqlite", str(tmp_path / "other.db")),
    )
    journal = JournalWriter(tmp_path, plan)
    journal.before_batch([(plan.files[0], {"k": 1}, {"k": 2})])
    journal.close()
    with pytest.raises(JournalError) as exc:
        plan_rollback(read_journal(journal_path(journal)), p)
    assert str(exc.value) == (
        f"{journal_path(journal)}: the journal was written against sqlite:{tmp_path / 'other.db'}, not {p.identity}; "
        "a journal rolls back only on the provider it was written against"
    )
