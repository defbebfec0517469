"""Fuzzing every file reconciler reads: YAML manifests, ``source`` rows, saved plans, snapshots.

Each input is mutated (text edits and structural edits, with hypothesis, bounded and derandomized) and
read. The only acceptable outcomes: it is read, or a ``ReconcilerError`` that names the file and the line
(YAML, JSONL, CSV, JSON syntax) or the file and the field (JSON structure). Anything else would reach the
user as an internal error (exit 3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import (
    Diagnostic,
    ManifestError,
    ManifestValidationError,
    PlanFormatError,
    ReconcilerError,
    SourceLocation,
)
from reconciler.manifest.source import iter_source_rows
from reconciler.manifest.yamlio import load_documents
from reconciler.model import SourceSpec
from reconciler.plan.codec import plan_to_dict
from reconciler.plan.planfile import read_planfile, write_planfile
from reconciler.providers.sqlite import SqliteProvider
from reconciler.render.json import render_plan_json
from reconciler.render.markdown import render_plan_markdown
from reconciler.render.text import render_plan_text
from reconciler.schema import FieldSpec, KeyType
from reconciler.snapshot import SnapshotError, read_snapshot, write_snapshot
from tests.hardening.fuzzing import FUZZ, json_values, plan_checksum, text_mutations, tree_mutations
from tests.helpers.plans import add, demo_schema_changes, file_change, plan_of, remove, update, warning
from tests.helpers.states import make_snapshot


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------------------------- YAML


def _check_manifest_error(exc: ManifestError, display: str) -> None:
    issues = exc.issues if isinstance(exc, ManifestValidationError) else [Diagnostic(exc.location, str(exc))]  # type: ignore[arg-type]
    assert issues
    for issue in issues:
        loc = issue.location
        assert loc is not None, str(exc)
        assert loc.path == display, str(exc)
        assert loc.line is not None and loc.line >= 1, str(exc)
        assert issue.message.strip()


_YAML_TREES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(_YAML_TREES, st.sampled_from(["block", "flow"]))
def test_structured_yaml_round_trips_or_fails_with_a_location(tree: Any, style: str) -> None:
    # JSON text is YAML 1.2 flow style; the block form goes through the round-trip dumper.
    from reconciler.manifest.yamlio import dump_roundtrip

    text = json.dumps(tree, ensure_ascii=False) if style == "flow" else dump_roundtrip([tree])
    try:
        docs = load_documents(text, "m.yaml")
    except ManifestError as exc:
        _check_manifest_error(exc, "m.yaml")
        return
    assert docs and docs[0].data == tree


def test_escaped_lone_surrogates_are_refused_at_their_position() -> None:
    # JSON-style "\\ud800" escapes are legal YAML syntax but name no character; UTF-8 output cannot hold them.
    with pytest.raises(ManifestValidationError) as info:
        load_documents('a: 1\nb: "x\\ud800"\n', "m.yaml")
    assert (
        str(info.value)
        == "m.yaml:2:4: invalid string: a \\u escape names a lone UTF-16 surrogate, not a character"
    )


def test_control_characters_are_refused_at_their_position() -> None:
    with pytest.raises(ManifestError) as info:
        load_documents("a: 1\nb: x\x1fy\n", "m.yaml")
    assert str(info.value) == (
        "m.yaml:2:5: invalid YAML: character U+001F is not allowed in YAML (special characters are not allowed)"
    )


# --------------------------------------------------------------------------------------------- sources

_SCHEMA = {
    "n": FieldSpec(KeyType.NUMBER),
    "b": FieldSpec(KeyType.BOOLEAN),
    "t": FieldSpec(KeyType.DATETIME),
    "u": FieldSpec(KeyType.UUID),
    "v": FieldSpec(KeyType.VARCHAR),
    "e": FieldSpec(KeyType.ENUM, values=("a", "b")),
    "emb": FieldSpec(KeyType.EMBEDDING, size=2),
    "g": FieldSpec(KeyType.GEOSPATIAL),
}
_JSONL = "\n".join(
    [
        '{"name": "a.jpg", "metadata": {"n": 1, "b": true, "t": "2024-05-01", "e": "a"}}',
        '{"uuid": "00000000-0000-4000-8000-000000000001", "metadata": {"emb": [1, 2], "v": "x"}}',
        '{"name": "c.jpg", "metadata": {"g": {"latitude": 1, "longitude": 2}, "keyframes": [1, 2]}}',
        "",
    ]
)
_CSV = 'name,n,b,t,e,emb,keyframes\na.jpg,1,true,2024-05-01,a,"[1, 2]","[3]"\nb.jpg,,false,,b,,\n'


def _read_source(root: Path, name: str, data: bytes, fmt: str) -> list[Diagnostic]:
    (root / name).write_bytes(data)
    diags: list[Diagnostic] = []
    spec = SourceSpec(name, fmt, SourceLocation("m.yaml", 3, 9))
    for row in iter_source_rows(root, spec, _SCHEMA, diags):
        assert row.location.path == name and row.location.line is not None
    return diags


def _check_source_diags(diags: list[Diagnostic], name: str) -> None:
    for d in diags:
        assert d.location.path == name, str(d)
        if not d.message.endswith("above)"):  # the one summary line of a source with many problems
            assert d.location.line is not None, str(d)


@pytest.mark.parametrize(("fmt", "text"), [("jsonl", _JSONL), ("csv", _CSV)])
def test_source_text_mutations_give_located_diagnostics(fmt: str, text: str, work: Path) -> None:
    name = f"rows.{fmt}"

    @FUZZ
    @given(text_mutations(text, max_edits=6), st.booleans())
    def run(mutated: str, as_latin1: bool) -> None:
        data = mutated.encode("latin-1", "replace") if as_latin1 else mutated.encode("utf-8", "surrogatepass")
        _check_source_diags(_read_source(work, name, data, fmt), name)

    run()


_ROWS = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "name": json_values | st.text(min_size=1, max_size=8),
            "uuid": json_values,
            "metadata": st.dictionaries(
                st.sampled_from([*_SCHEMA, "keyframes", "free", "$bad", ""]), json_values, max_size=4
            )
            | json_values,
            "extra": json_values,
        },
    )
    | json_values,
    max_size=5,
)


@FUZZ
@given(rows=_ROWS)
def test_structured_jsonl_rows_give_located_diagnostics(rows: list[Any], work: Path) -> None:
    data = "\n".join(json.dumps(r) for r in rows).encode()
    _check_source_diags(_read_source(work, "rows.jsonl", data, "jsonl"), "rows.jsonl")


# --------------------------------------------------------------------------------------------- plan files


def _base_plan_dict() -> dict[str, Any]:
    plan = plan_of(
        file_change("cams", "a.mp4", add("k", 1), update("w", "sunny", "rain"), n=1),
        file_change("cams", "b.mp4", remove("old", [1, 2]), strategy="overwrite", n=2),
        schema=demo_schema_changes(),
        unchanged=3,
        warnings=(warning("a warning"),),
    )
    data = plan_to_dict(plan)
    data["checksum"] = plan_checksum(data)
    return data


_PLAN = _base_plan_dict()


def _read_and_render(path: Path) -> None:
    try:
        plan = read_planfile(path)
    except PlanFormatError as exc:
        assert str(exc).startswith(str(path)), str(exc)  # names the file (then line:col or the field)
        return
    render_plan_text(plan)
    render_plan_json(plan)
    render_plan_markdown(plan)


@FUZZ
@given(doc=tree_mutations(_PLAN))
def test_structurally_altered_plans_with_valid_checksums_are_refused_by_field(doc: Any, work: Path) -> None:
    # Re-sealing the checksum gets past the integrity check, so the reader's field checks are what is tested.
    if isinstance(doc, dict):
        doc["checksum"] = plan_checksum(doc)
    path = work / "plan.json"
    path.write_text(json.dumps(doc))
    _read_and_render(path)


@FUZZ
@given(text=text_mutations(json.dumps(_PLAN, indent=1), max_edits=3), reseal=st.booleans())
def test_text_altered_plans_are_refused_with_a_location(text: str, reseal: bool, work: Path) -> None:
    if reseal:
        try:
            doc = json.loads(text)
        except ValueError:
            pass
        else:
            if isinstance(doc, dict):
                doc["checksum"] = plan_checksum(doc)
                text = json.dumps(doc)
    path = work / "plan.json"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _read_and_render(path)


def test_a_saved_plan_reads_back(work: Path) -> None:
    path = work / "plan.json"
    path.write_text(json.dumps(_PLAN))
    plan = read_planfile(path)
    write_planfile(work / "again.json", plan)
    assert read_planfile(work / "again.json") == plan


# --------------------------------------------------------------------------------------------- snapshots

_SNAP = make_snapshot(
    {"traffic/cams": [("a.jpg", {"k": 1}), ("b.mp4", {"w": "rain", "n": [1, {"x": None}]})], "other": []},
    schema={"w": {"ty": "enum", "values": ["rain", "sun"]}, "n": {"ty": "number"}},
)


def _snapshot_doc() -> dict[str, Any]:
    import tempfile

    # Built through the writer, so the fuzzed base is exactly what reconciler writes.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "base.json"
        write_snapshot(path, _SNAP.schema, _SNAP.folders, _SNAP.items)
        return dict(json.loads(path.read_text()))


_SNAP_DOC = _snapshot_doc()


def _read_and_seed(path: Path, work: Path) -> None:
    try:
        read_snapshot(path)
    except SnapshotError as exc:
        assert str(exc).startswith(str(path)), str(exc)
        assert exc.location.path == str(path)
        return
    db = work / "seeded.db"
    db.unlink(missing_ok=True)
    try:
        SqliteProvider(db, seed=path).close()
    except ReconcilerError as exc:
        assert str(path) in str(exc) or "seed" in str(exc), str(exc)


@FUZZ
@given(doc=tree_mutations(_SNAP_DOC))
def test_structurally_altered_snapshots_are_refused_by_field(doc: Any, work: Path) -> None:
    path = work / "snap.json"
    path.write_text(json.dumps(doc))
    _read_and_seed(path, work)


def _jsonl_text() -> str:
    lines = [
        json.dumps({"record": "header", "format_version": "1"}),
        json.dumps({"record": "schema", "schema": _SNAP.schema}),
    ]
    lines += [
        json.dumps({"record": "folder", "uuid": f.uuid, "parent": f.parent, "name": f.name})
        for f in _SNAP.folders
    ]
    lines += [
        json.dumps({"record": "item", "uuid": i.uuid, "folder": i.folder, "name": i.name, "item_type": i.item_type,
                    "client_metadata": i.metadata})
        for i in _SNAP.items
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=text_mutations(_jsonl_text(), max_edits=4))
def test_text_altered_jsonl_snapshots_are_refused_with_a_location(text: str, work: Path) -> None:
    path = work / "snap.jsonl"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _read_and_seed(path, work)


# --------------------------------------------------------------------------------------------- applying altered plans


class _SavedPlanStore:
    """A SQLite live state, a real plan made against it, and a pristine copy of the database per example."""

    def __init__(self, root: Path) -> None:
        from reconciler.plan.planner import make_plan
        from tests.helpers.desired import desired, manifest, schema, sel

        snap = make_snapshot(
            {
                "cams": [
                    ("a.mp4", {"w": "sunny", "other": 1}),
                    ("b.mp4", {"w": "rain"}),
                    ("c.mp4", {"w": "x"}),
                ]
            },
            schema={"w": {"ty": "variant", "hint": "varchar"}, "gone": {"ty": "variant", "hint": "text"}},
        )
        seed = root / "seed.json"
        write_snapshot(seed, snap.schema, snap.folders, snap.items)
        self.pristine = root / "pristine.db"
        SqliteProvider(self.pristine, seed=seed).close()
        self.db = root / "live.db"
        d = desired(
            manifest("cams.yaml", "cams", sel("name", "a.mp4", w="fog"), sel("name", "b.mp4", w=None)),
            manifest("over.yaml", "cams", sel("name", "c.mp4", w="snow", extra=True), mode="overwrite"),
            schema_manifest=schema(
                prune=True, w=FieldSpec(KeyType.VARCHAR), extra=FieldSpec(KeyType.BOOLEAN)
            ),
            root=str(root),
        )
        p = SqliteProvider(self.pristine)
        try:
            plan = make_plan(d, p)
        finally:
            p.close()
        assert plan.files and plan.schema_changes
        out = root / "base-plan.json"
        write_planfile(out, plan)
        self.doc = json.loads(out.read_text())
        # The plan names the pristine database; the copy each example writes to must carry the same identity.
        self.doc["provider"]["path"] = str(self.db)
        self.doc["checksum"] = plan_checksum(self.doc)

    def fresh_provider(self) -> SqliteProvider:
        self.db.write_bytes(self.pristine.read_bytes())
        return SqliteProvider(self.db)


@pytest.fixture(scope="module")
def saved(work: Path) -> _SavedPlanStore:
    root = work / "saved"
    root.mkdir(exist_ok=True)
    return _SavedPlanStore(root)


def _altered_plan_docs() -> st.SearchStrategy[Any]:
    # The strategy needs the base document before the fixture exists: build one store up front.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        base = _SavedPlanStore(Path(tmp)).doc
    base["provider"]["path"] = "<live.db>"
    return tree_mutations(base)


@FUZZ
@given(doc=_altered_plan_docs(), allow_destructive=st.booleans())
def test_applying_an_altered_resealed_plan_fails_cleanly(
    doc: Any, allow_destructive: bool, saved: _SavedPlanStore, work: Path
) -> None:
    from reconciler.apply import apply_plan

    if isinstance(doc, dict):
        if isinstance(doc.get("provider"), dict) and doc["provider"].get("path") == "<live.db>":
            doc["provider"]["path"] = str(saved.db)
        doc["checksum"] = plan_checksum(doc)
    path = work / "altered-plan.json"
    path.write_text(json.dumps(doc))
    try:
        plan = read_planfile(path)
    except PlanFormatError as exc:
        assert str(exc).startswith(str(path)), str(exc)
        return
    provider = saved.fresh_provider()
    try:
        apply_plan(plan, provider, allow_destructive=allow_destructive, precheck=True)
    except ReconcilerError as exc:
        assert str(exc).strip()
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("after", None, "schema.changes[0].after: missing the key's type"),
        ("after", {"type": None}, "schema.changes[0].after: missing the key's type"),
        (
            "after",
            {"type": "enum", "values": [[]]},
            "schema.changes[0].after.values: every enum value must be",
        ),
        ("after", {"type": "embedding", "size": "8"}, "schema.changes[0].after.size: wrong type str"),
        ("renamed_from", 7, "schema.changes[0].renamed_from: wrong type int"),
    ],
)
def test_resealed_plans_with_bad_schema_changes_are_refused(
    field: str, value: Any, message: str, saved: _SavedPlanStore, work: Path
) -> None:
    doc = json.loads(json.dumps(saved.doc))
    doc["schema"]["changes"][0][field] = value
    doc["checksum"] = plan_checksum(doc)
    path = work / "bad-schema-plan.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PlanFormatError) as info:
        read_planfile(path)
    assert str(info.value).startswith(f"{path}.{message}")


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("summary", "files", "unchanged"), "3", "summary.files.unchanged: wrong type str"),
        (("summary", "api_calls"), [], "summary.api_calls: wrong type list"),
        (("summary", "api_calls", "reads"), True, "summary.api_calls.reads: wrong type bool"),
        (("warnings",), 5, "warnings: wrong type int"),
        (("destructive_reasons",), {}, "destructive_reasons: wrong type dict"),
    ],
)
def test_resealed_plans_with_bad_summaries_are_refused(
    where: tuple[str, ...], value: Any, message: str, saved: _SavedPlanStore, work: Path
) -> None:
    doc = json.loads(json.dumps(saved.doc))
    node = doc
    for step in where[:-1]:
        node = node[step]
    node[where[-1]] = value
    doc["checksum"] = plan_checksum(doc)
    path = work / "bad-summary-plan.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PlanFormatError) as info:
        read_planfile(path)
    assert str(info.value) == f"{path}.{message}"


# --------------------------------------------------------------------------------------------- journals


def _journal_bytes() -> bytes:
    """A real journal: two batches, the second one still in flight (pending), with non-ASCII metadata."""
    import tempfile

    from reconciler.apply import FileResult, FileStatus
    from reconciler.journal import JournalWriter

    files = [file_change("cams", f"é{i}.mp4", add("k", i), n=i) for i in range(6)]
    plan = plan_of(*files)
    with tempfile.TemporaryDirectory() as tmp:
        writer = JournalWriter(Path(tmp), plan)
        writer.before_batch([(c, {"old": "ü"}, {"old": "ü", "k": i}) for i, c in enumerate(files[:3])])
        writer.after_batch(
            [FileResult(c, FileStatus.WRITTEN) for c in files[:2]]
            + [FileResult(files[2], FileStatus.FAILED, "x")]
        )
        writer.before_batch([(c, {}, {"k": [1, {"a": None}]}) for c in files[3:]])
        writer.close()
        assert writer.path is not None
        return writer.path.read_bytes()


_JOURNAL = _journal_bytes()


@FUZZ
@given(cut=st.integers(0, len(_JOURNAL)))
def test_a_journal_cut_anywhere_reads_back(cut: int, work: Path) -> None:
    """A process killed mid-write leaves a prefix of the journal: it always reads (a torn tail is left out)."""
    from reconciler.errors import JournalError
    from reconciler.journal import read_journal

    path = work / "cut.jsonl"
    path.write_bytes(_JOURNAL[:cut])
    header_end = _JOURNAL.index(b"\n") + 1
    try:
        journal = read_journal(path)
    except JournalError as exc:
        assert cut < header_end, str(exc)  # only a journal without its whole header is unusable
        assert str(exc).startswith(f"{path}: not a usable journal"), str(exc)
        return
    if _JOURNAL[:cut].endswith(b"\n"):
        assert not journal.torn  # whole lines only (a cut just before a newline may leave a whole JSON line)
    assert len(journal.entries) <= 6


@FUZZ
@given(text=text_mutations(_JOURNAL.decode(), max_edits=3))
def test_an_altered_journal_is_refused_with_its_line(text: str, work: Path) -> None:
    from reconciler.errors import JournalError
    from reconciler.journal import read_journal

    path = work / "altered.jsonl"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        read_journal(path)
    except JournalError as exc:
        assert str(exc).startswith(f"{path}"), str(exc)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty", b""),
        ("not-json", b"plan: yes\n"),
        ("not-utf8", b'{"format_version": "1", "x": "\xff"}'),
        ("a-list", b"[1, 2]"),
        ("unknown-version", b'{"format_version": "9", "checksum": "sha256:0"}'),
        ("altered", json.dumps({**_PLAN, "created_at": "2030-01-01T00:00:00Z"}).encode()),
        ("resealed-bad-field", json.dumps({**_PLAN, "files": [7], "checksum": plan_checksum({**_PLAN, "files": [7]})}).encode()),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["show", "apply"])
def test_cli_refuses_bad_plan_files_with_exit_1_naming_the_file(
    name: str, data: bytes, command: str, work: Path
) -> None:
    from tests.helpers.cli import run

    path = work / f"{name}.json"
    path.write_bytes(data)
    r = run([command, str(path), "-C", str(work / "no-manifests")], cwd=work)
    assert (r.code, r.out) == (1, ""), r.err
    assert r.err.startswith(f"Error: {path}"), r.err
    assert r.err.count("\n") == 1  # one line, no traceback
