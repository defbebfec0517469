"""``fmt``: canonical layout and key order, comments kept, idempotent, values never changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestParseError, ReconcilerError
from reconciler.manifest.discovery import find_manifest_files
from reconciler.manifest.emit import yaml_key, yaml_value
from reconciler.manifest.fmt import format_manifest_dir, format_text, key_order
from reconciler.manifest.yamlio import load_documents
from reconciler.model import canonical_json
from tests.helpers.cli import REPO
from tests.helpers.fmt_samples import CANONICAL, MESSY


def test_canonical_form():
    assert format_text(MESSY) == CANONICAL


def test_idempotent():
    assert format_text(CANONICAL) == CANONICAL
    assert format_text(format_text(MESSY)) == format_text(MESSY)


def test_comments_are_kept():
    out = format_text(MESSY)
    comments = [line.strip() for line in MESSY.splitlines() if line.lstrip().startswith("#")]
    comments.remove("# not a comment: text")
    for c in comments:
        assert c in out
    assert "# the kind" in out and "# every cam0x" in out


def test_values_are_unchanged():
    before = [d.data for d in load_documents(MESSY)]
    after = [d.data for d in load_documents(format_text(MESSY))]
    assert canonical_json(before) == canonical_json(after)


def test_selector_lists_keep_their_order():
    text = (
        "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: f\nfiles:\n"
        "  - name: z\n  - glob: a*\n  - uuid: 00000000-0000-4000-8000-000000000001\n"
    )
    assert format_text(text) == text


def test_key_order_follows_the_manifest_schema():
    assert key_order("Workspace") == ("apiVersion", "kind", "provider", "settings")
    assert key_order("MetadataSchema") == ("apiVersion", "kind", "prune", "keys")
    assert key_order("FileMetadata") == (
        "apiVersion", "kind", "folder", "dataset", "recursive", "children", "mode", "owns", "on_missing", "defaults",
        "files", "source",
    )  # fmt: skip
    assert key_order("Nope") == ("apiVersion", "kind")


def test_every_document_of_a_file_is_formatted_and_unknown_keys_go_last():
    text = (
        "kind: Workspace\napiVersion: reconciler/v1\n---\n"
        "keys: {a: text}\nzzz: 1\nkind: MetadataSchema\napiVersion: reconciler/v1\nprune: false\n"
    )
    assert format_text(text) == (
        "apiVersion: reconciler/v1\nkind: Workspace\n---\n"
        "apiVersion: reconciler/v1\nkind: MetadataSchema\nprune: false\nkeys: {a: text}\nzzz: 1\n"
    )


def test_explicit_null_and_floats_are_kept():
    text = (
        "apiVersion: reconciler/v1\nkind: X\nm:\n  a: null\n  b: 6.011013060506361e+16\n  c: 1e5\n  d: 1.0\n"
    )
    assert format_text(text) == text


def test_invalid_yaml_is_reported_with_its_position():
    with pytest.raises(ManifestParseError) as err:
        format_text("a: [1,\n", "m.yaml")
    assert str(err.value).startswith("m.yaml:2:1: invalid YAML")


def test_a_layout_that_would_change_values_is_refused(monkeypatch):
    import reconciler.manifest.fmt as fmt

    monkeypatch.setattr(fmt, "_format_document", lambda text, kind: text.replace("1", "2"))
    with pytest.raises(
        ReconcilerError, match=r"^m\.yaml: fmt would change the file's values, so it was left alone"
    ):
        format_text("apiVersion: reconciler/v1\nkind: X\na: 1\n", "m.yaml")


# Import writes with the emitter; what it writes must already be formatted, and read back exactly.
def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists and mappings of ``children`` (mapping keys: printable text on one line, like real names)."""
    keys = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=8)
    return st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    _containers,
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,10}", fullmatch=True), _values)
def test_emitted_values_read_back_exactly_and_are_already_formatted(key, value):
    text = f"apiVersion: reconciler/v1\nkind: X\nm:\n  {yaml_key(key)}: {yaml_value(value)}\n"
    data = load_documents(text)[0].data
    assert isinstance(data, dict)
    assert canonical_json(data["m"]) == canonical_json({key: value})
    assert format_text(text) == text


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("true", '"true"'),
        ("1.0", '"1.0"'),
        ("2024-01-01", '"2024-01-01"'),
        ("2024-05-01T10:00:00Z", '"2024-05-01T10:00:00Z"'),
        ("null", '"null"'),
        ("~", '"~"'),
        ("no", '"no"'),
        ("On", '"On"'),
        ("0x1F", '"0x1F"'),
        ("", '""'),
        ("a: b", '"a: b"'),
        ("plain text", "plain text"),
        ("London", "London"),
        (1, "1"),
        (1.0, "1.0"),
        (True, "true"),
        ([0.5, 1], "[0.5, 1]"),
        ({"latitude": 51.5, "longitude": -0.1}, "{latitude: 51.5, longitude: -0.1}"),
    ],
)
def test_strings_yaml_would_read_as_something_else_are_quoted(value, written):
    assert yaml_value(value) == written


# --------------------------------------------------------------------------------------------- directories


def test_format_manifest_dir_writes_only_what_changes(tmp_path: Path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.yaml").write_text(MESSY)
    (tmp_path / "ok.yml").write_text(CANONICAL)
    (tmp_path / ".reconciler").mkdir()
    (tmp_path / ".reconciler" / "x.yaml").write_text("not: [formatted")
    checked = format_manifest_dir(tmp_path, check=True)
    assert (checked.changed, checked.checked) == (["files/a.yaml"], 2)
    assert (tmp_path / "files" / "a.yaml").read_text() == MESSY
    done = format_manifest_dir(tmp_path)
    assert done.changed == ["files/a.yaml"]
    assert (tmp_path / "files" / "a.yaml").read_text() == CANONICAL
    assert format_manifest_dir(tmp_path, check=True).changed == []


def test_nothing_is_written_when_one_file_is_broken(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(MESSY)
    (tmp_path / "b.yaml").write_text("x: [1,\n")
    with pytest.raises(ManifestParseError):
        format_manifest_dir(tmp_path)
    assert (tmp_path / "a.yaml").read_text() == MESSY


def test_the_repository_manifests_are_formatted():
    root = REPO / "manifests"
    assert find_manifest_files(root).files
    assert format_manifest_dir(root, check=True).changed == []


BLOCKS = {
    "apiVersion": "apiVersion: reconciler/v1\n",
    "kind": "kind: FileMetadata\n",
    "folder": "# where\nfolder: a/b\n",
    "mode": "mode: merge   # eol\n",
    "defaults": "defaults:\n  # d\n  k: v\n",
    "files": "\n# the files\nfiles:\n  - name: x\n    metadata: {a: 1}\n",
    "source": "source: data/x.jsonl\n",
}


@settings(max_examples=50, deadline=None)
@given(st.permutations(sorted(BLOCKS)))
def test_any_top_level_order_gives_one_canonical_text(order):
    text = "".join(BLOCKS[k] for k in order)
    out = format_text(text)
    assert format_text(out) == out
    if not BLOCKS[order[0]].startswith(("#", "\n")):
        # (Comments above the first key are the document's header and stay on top, so they are excepted.)
        assert out == format_text("".join(BLOCKS[k] for k in sorted(BLOCKS)))
    assert [line.split(":")[0] for line in out.splitlines() if line[:1].isalpha()] == [
        "apiVersion", "kind", "folder", "mode", "defaults", "files", "source",
    ]  # fmt: skip
    for comment in ("# where", "# eol", "# d", "# the files"):
        assert comment in out


@pytest.mark.parametrize("written", ["[[[[]]]]", "[[[[1]]]]", "[1, [2, [3, [4, [5]]]]]", "{a: [[[[[]]]]]}"])
def test_deeply_nested_flow_sequences_are_kept_as_written(written):
    text = f"apiVersion: reconciler/v1\nkind: X\nm:\n  k: {written}\n  l:\n    - [[[[x]]]]\n"
    assert format_text(text) == text
