"""Fuzzing whole manifest directories: the demo workspace with one file mutated, loaded and planned.

Text mutations (characters inserted, deleted, swapped) and structural mutations (a field of a document
replaced, removed or added, the document written back as YAML) of each demo manifest and of its ``source``
files. Loading must succeed or raise a ``ReconcilerError`` whose every problem names the file and line;
a manifest set that loads is planned against the demo live state, which must again end normally or in a
``ReconcilerError``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import Diagnostic, ManifestError, ManifestValidationError, ReconcilerError
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.yamlio import load_documents
from reconciler.plan.planner import make_plan
from reconciler.providers.sqlite import SqliteProvider
from tests.hardening.fuzzing import FUZZ, text_mutations, tree_mutations
from tests.helpers.cli import REPO

DEMO = REPO / "manifests"
MANIFESTS = sorted(
    p.relative_to(DEMO).as_posix() for p in DEMO.rglob("*.yaml") if ".reconciler" not in p.parts
)
SOURCES = sorted(p.relative_to(DEMO).as_posix() for p in (DEMO / "data").iterdir())


class Workdir:
    """A copy of the demo manifests and a seeded live database, with one file swapped per example."""

    def __init__(self, root: Path) -> None:
        self.root = root / "m"
        shutil.copytree(DEMO, self.root, ignore=shutil.ignore_patterns(".reconciler"))
        self.db = root / "live.db"
        SqliteProvider(self.db, seed=self.root / "demo-live.json").close()

    def swapped(self, rel: str, data: bytes) -> Iterator[Path]:
        path = self.root / rel
        original = path.read_bytes()
        path.write_bytes(data)
        try:
            yield self.root
        finally:
            path.write_bytes(original)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    return Workdir(tmp_path_factory.mktemp("manifests"))


def _issues(exc: ReconcilerError) -> list[Diagnostic]:
    if isinstance(exc, ManifestValidationError):
        return list(exc.issues)
    if isinstance(exc, ManifestError):
        assert exc.location is not None, str(exc)
        return [Diagnostic(exc.location, str(exc))]
    raise AssertionError(f"{type(exc).__name__} from loading manifests: {exc}")


def _load_and_plan(root: Path, db: Path) -> None:
    try:
        desired = load_manifests(root, check_sources=True)
    except ReconcilerError as exc:
        issues = _issues(exc)
        assert issues
        for d in issues:
            assert d.location.path and not d.location.path.startswith("/"), str(
                d
            )  # relative to the directory
            if (
                not d.message.startswith(("manifest directory", "no Workspace"))
                and "more problem" not in d.message
            ):
                assert d.location.line is not None, str(d)
        return
    provider = SqliteProvider(db)
    try:
        make_plan(desired, provider)
    except ReconcilerError as exc:
        assert str(exc).strip()
    finally:
        provider.close()


_TEXTS = {rel: (DEMO / rel).read_text() for rel in MANIFESTS + SOURCES}
_DOCS = {rel: [d.data for d in load_documents(_TEXTS[rel], rel)] for rel in MANIFESTS}
FEW = settings(FUZZ, max_examples=80)


@st.composite
def _text_case(draw: st.DrawFn, files: list[str], max_edits: int) -> tuple[str, str]:
    rel = draw(st.sampled_from(files))
    return rel, draw(text_mutations(_TEXTS[rel], max_edits=max_edits))


@st.composite
def _tree_case(draw: st.DrawFn) -> tuple[str, Any]:
    rel = draw(st.sampled_from(MANIFESTS))
    return rel, draw(tree_mutations(_DOCS[rel]))


@FEW
@given(case=_text_case(MANIFESTS, 4))
def test_text_mutated_manifests_load_or_fail_with_locations(case: tuple[str, str], workdir: Workdir) -> None:
    rel, mutated = case
    for root in workdir.swapped(rel, mutated.encode("utf-8", "surrogatepass")):
        _load_and_plan(root, workdir.db)


@FEW
@given(case=_tree_case())
def test_structurally_mutated_manifests_load_or_fail_with_locations(
    case: tuple[str, Any], workdir: Workdir
) -> None:
    rel, mutated = case
    # One JSON document per YAML document: JSON is YAML 1.2 flow style.
    parts = mutated if isinstance(mutated, list) else [mutated]
    text = "\n---\n".join(json.dumps(d, ensure_ascii=False) for d in parts) + "\n"
    for root in workdir.swapped(rel, text.encode()):
        _load_and_plan(root, workdir.db)


@settings(FUZZ, max_examples=40)
@given(case=_text_case(SOURCES, 6))
def test_mutated_sources_load_or_fail_with_locations(case: tuple[str, str], workdir: Workdir) -> None:
    rel, mutated = case
    for root in workdir.swapped(rel, mutated.encode("utf-8", "surrogatepass")):
        _load_and_plan(root, workdir.db)
