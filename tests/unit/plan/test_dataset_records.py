"""A data unit's dataset in the plan JSON and in the journal: written, read back, and refused when altered."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.errors import JournalError, PlanFormatError
from reconciler.journal import JournalWriter, read_journal
from reconciler.plan.codec import plan_from_dict, plan_to_dict
from reconciler.plan.model import DatasetRef, FileChange, KeyAction, KeyChange, Plan, Strategy
from reconciler.providers.base import ProviderIdentity

BACKED = DatasetRef("ds1", "cams", "dh-a", "item-a")
ORPHAN = DatasetRef("ds1", "cams", "dh-l", None)


def change(uuid: str, name: str, ref: DatasetRef | None) -> FileChange:
    return FileChange(
        uuid,
        "cams",
        name,
        Strategy.MERGE,
        "d.yaml",
        "sha256:x",
        (KeyChange("k", KeyAction.ADD, None, 1),),
        ref,
    )


PLAN = Plan(
    tool_version="0",
    created_at="2024-05-01T12:00:00Z",
    provider=ProviderIdentity("sqlite", "/tmp/live.db"),
    manifests_digest="sha256:d",
    schema_fingerprint="sha256:s",
    schema_changes=(),
    files=(
        change("item-a", "a.jpg", BACKED),
        change("dh-l", "legacy.png", ORPHAN),
        change("u", "x.jpg", None),
    ),
    unchanged=0,
)


def test_the_plan_json_carries_the_dataset_and_reads_back() -> None:
    doc = plan_to_dict(PLAN)
    assert [f.get("dataset") for f in doc["files"]] == [
        {"hash": "ds1", "title": "cams", "data_hash": "dh-a", "backing_item": "item-a"},
        {"hash": "ds1", "title": "cams", "data_hash": "dh-l", "backing_item": None},
        None,
    ]
    assert "dataset" not in doc["files"][2]
    assert doc["summary"]["api_calls"] == {"reads": 0, "writes": 0, "data_row_writes": 1}
    assert plan_from_dict(doc) == PLAN
    no_rows = replace(PLAN, files=PLAN.files[:1])
    assert plan_to_dict(no_rows)["summary"]["api_calls"] == {"reads": 0, "writes": 0}


@pytest.mark.parametrize(
    ("index", "dataset", "message"),
    [
        (0, "ds1", "plan.files[0].dataset: wrong type str"),
        (0, {"title": "cams", "data_hash": "dh-a"}, "plan.files[0].dataset: missing field 'hash'"),
        (0, {"hash": "ds1", "title": "cams", "data_hash": "dh-a", "backing_item": 3},
         "plan.files[0].dataset.backing_item: wrong type int"),
        (0, {"hash": "ds1", "title": "cams", "data_hash": "dh-a", "backing_item": "other"},
         "plan.files[0].dataset: uuid must be the row's backing_item, or its data_hash when it has none"),
        (1, {"hash": "ds1", "title": "cams", "data_hash": "dh-other", "backing_item": None},
         "plan.files[1].dataset: uuid must be the row's backing_item, or its data_hash when it has none"),
    ],
)  # fmt: skip
def test_an_altered_dataset_field_is_refused(index: int, dataset: object, message: str) -> None:
    doc = json.loads(json.dumps(plan_to_dict(PLAN)))
    doc["files"][index]["dataset"] = dataset
    with pytest.raises(PlanFormatError) as info:
        plan_from_dict(doc)
    assert str(info.value) == message


def test_the_journal_records_a_data_units_dataset(tmp_path: Path) -> None:
    w = JournalWriter(tmp_path / "j", PLAN, now=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc))
    w.before_batch([(f, {}, {"k": 1}) for f in PLAN.files])
    w.close()
    assert w.path is not None
    assert [e.dataset for e in read_journal(w.path).entries] == [BACKED, ORPHAN, None]
    lines = w.path.read_text().splitlines()
    rec = json.loads(lines[2])
    rec["dataset"]["data_hash"] = "dh-other"
    lines[2] = json.dumps(rec)
    w.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(JournalError) as info:
        read_journal(w.path)
    assert str(info.value).endswith(
        "corrupt journal line (a data unit's uuid must be its backing_item, or its data_hash)"
    )


def test_text_and_markdown_group_data_units_under_their_dataset() -> None:
    from reconciler.render.markdown import render_plan_markdown
    from reconciler.render.text import render_plan_text

    text = render_plan_text(PLAN)
    assert text.index("Dataset cams:\n  ~ a.jpg") < text.index("Folder cams:\n  ~ x.jpg")
    assert text.endswith(
        "files 3 to update (3 merge, 0 overwrite; 1 by the legacy per-row call), 0 unchanged.\n"
    )
    md = render_plan_markdown(PLAN)
    assert "<summary>Dataset <code>cams</code>: 2 files to update (2 merge, 0 overwrite)</summary>" in md
    assert "<summary><code>cams</code>: 1 file to update (1 merge, 0 overwrite)</summary>" in md
