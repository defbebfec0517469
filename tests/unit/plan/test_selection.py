"""plan/selection.py: which files a manifest selects, once each, and what matches none or two."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from reconciler.errors import Diagnostic, SourceLocation
from reconciler.model import LiveFolder, SourceSpec
from reconciler.plan import selection
from reconciler.plan.listing import LiveIndex
from reconciler.plan.selection import Selection, overlap_groups, selected
from tests.helpers.desired import manifest, sel

F = LiveFolder("f-uuid", None, "f", "f")


def index_of(*rels: str, folder: LiveFolder = F) -> LiveIndex:
    index = LiveIndex(folder)
    for n, rel in enumerate(rels):
        index.uuids.append(f"00000000-0000-4000-8000-{n:012d}")
        index.rels.append(rel)
        index.metadata_raw.append("{}")
        if rel in index.by_name:
            index.ambiguous.setdefault(rel, [index.by_name[rel]]).append(n)
        index.by_name[rel] = n
    index.folders.add(folder.uuid)
    return index


def strs(diags: list[Diagnostic]) -> list[str]:
    return [str(d) for d in diags]


def test_rows_first_then_exact_entries_then_globs_each_file_once(tmp_path: Path):
    (tmp_path / "rows.jsonl").write_text(json.dumps({"name": "b.jpg", "metadata": {"n": 1}}) + "\n")
    m = dataclasses.replace(
        manifest("m.yaml", "f", sel("glob", "*.jpg"), sel("name", "c.jpg", n=2)),
        source=SourceSpec("rows.jsonl", "jsonl", SourceLocation("m.yaml", 7, 9)),
    )
    errors: list[Diagnostic] = []
    s = Selection(m, index_of("a.jpg", "b.jpg", "c.jpg", "d.png"), errors)
    got = [
        (i, row.key if row else None, e.pattern if e else None)
        for i, row, e in selected(s, tmp_path, {}, errors, None)
    ]
    assert got == [(1, "b.jpg", None), (2, None, "c.jpg"), (0, None, None)]
    assert errors == [] and s.glob_hit == [True]


def test_a_name_two_files_share_is_an_error_naming_both_uuids():
    errors: list[Diagnostic] = []
    s = Selection(
        manifest("m.yaml", "f", sel("name", "a.jpg", n=1)), index_of("a.jpg", "b.jpg", "a.jpg"), errors
    )
    assert s.exact == {}
    assert strs(errors) == [
        "m.yaml:5:5: name 'a.jpg' matches 2 files in folder 'f' (00000000-0000-4000-8000-000000000000 and "
        "00000000-0000-4000-8000-000000000002); select each by uuid instead"
    ]


def test_missing_selectors_are_reported_per_on_missing_and_capped(monkeypatch):
    monkeypatch.setattr(selection, "MAX_MISSING_REPORTED", 2)
    m = manifest(
        "m.yaml", "f", *[sel("name", f"x{i}.jpg") for i in range(4)], sel("glob", "*.png"), on_missing="warn"
    )
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    s = Selection(m, index_of("a.jpg"), errors)
    assert list(selected(s, Path("."), {}, errors, None)) == []
    s.finish_missing(errors, warnings)
    assert errors == []
    assert strs(warnings) == [
        "m.yaml:5:5: name 'x0.jpg' matches no file in folder 'f'",
        "m.yaml:5:5: name 'x1.jpg' matches no file in folder 'f'",
        "m.yaml:1:1: 2 more selector(s) or source row(s) match no file in folder 'f' (first 2 above)",
        "m.yaml:5:5: glob '*.png' matches no file",
    ]


def test_overlap_groups_by_shared_listing_or_folder():
    a = index_of("a.jpg")
    sub = LiveFolder("s-uuid", "f-uuid", "s", "f/s")
    b = index_of("b.jpg", folder=sub)
    b.folders.add("f-uuid")  # a recursive listing of f/s's parent would hold both
    c = index_of("c.jpg", folder=LiveFolder("o-uuid", None, "o", "o"))
    sels = [
        Selection(manifest(f"{n}.yaml", "f"), ix, []) for n, ix in (("a", a), ("a2", a), ("b", b), ("c", c))
    ]
    assert overlap_groups(sels) == [True, True, True, False]
