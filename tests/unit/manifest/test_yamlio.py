"""yamlio: YAML 1.2 values with positions, refused constructs, and the comment-keeping round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ManifestError, ManifestParseError, ManifestValidationError
from reconciler.manifest.yamlio import (
    dump_roundtrip,
    load_documents,
    load_roundtrip,
    read_documents,
)


def one(text: str) -> object:
    (doc,) = load_documents(text, "x.yaml")
    return doc.data


def error(text: str) -> str:
    with pytest.raises(ManifestError) as info:
        load_documents(text, "x.yaml")
    return str(info.value)


def test_yaml_12_scalars() -> None:
    assert one(
        "a: yes\nb: no\nc: on\nd: off\ne: true\nf: False\ng: ~\nh: 0x1F\ni: 0o17\nj: 1.5\nk: '5'\nl: 012\nm: 1e3\n"
    ) == {
        "a": "yes",
        "b": "no",
        "c": "on",
        "d": "off",
        "e": True,
        "f": False,
        "g": None,
        "h": 31,
        "i": 15,
        "j": 1.5,
        "k": "5",
        "l": 12,
        "m": 1000.0,
    }


def test_timestamps_keep_the_text_written() -> None:
    assert one(
        "a: 2024-05-01T10:00:00Z\nb: 2024-05-01\nc: 2024-05-01 10:00:00.5 -5\nd: 2024-05-01T10:00:00+02:00\n"
    ) == {
        "a": "2024-05-01T10:00:00Z",
        "b": "2024-05-01",
        "c": "2024-05-01 10:00:00.5 -5",
        "d": "2024-05-01T10:00:00+02:00",
    }
    # Nanoseconds are not cut to microseconds.
    assert one("a: 2024-05-01T10:00:00.123456789Z\n") == {"a": "2024-05-01T10:00:00.123456789Z"}


@pytest.mark.parametrize("text", ["2024-02-30", "2024-05-01T25:00:00Z", "2024-05-01T10:00:00+24:00"])
def test_timestamps_that_name_no_instant_are_refused(text: str) -> None:
    with pytest.raises(ManifestValidationError) as info:
        load_documents(f"a: {text}\n", "x.yaml")
    assert [str(d) for d in info.value.issues] == [f"x.yaml:1:4: invalid !!timestamp value {text!r}"]


def test_positions_of_keys_and_values() -> None:
    (doc,) = load_documents("a:\n  b: [1, {c: 2}]\n", "x.yaml")
    assert doc.keys[("a",)] == (1, 1)
    assert doc.keys[("a", "b")] == (2, 3)
    assert doc.values[("a", "b")] == (2, 6)
    assert doc.values[("a", "b", 1, "c")] == (2, 14)
    assert doc.value_position(("a", "b", 1, "missing")) == (2, 10)
    assert doc.key_position(("a", "zzz")) == (2, 3)


def test_multiple_documents() -> None:
    docs = load_documents("a: 1\n---\nb: 2\n---\n", "x.yaml")
    assert [(d.index, d.line, d.data) for d in docs] == [(0, 1, {"a": 1}), (1, 3, {"b": 2}), (2, 5, None)]


def test_empty_file_has_no_documents() -> None:
    assert load_documents("# only a comment\n", "x.yaml") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\na: 2\n", "x.yaml:2:1: duplicate key 'a' (first defined at line 1)"),
        (
            "a: !!python/object:os.system x\n",
            "x.yaml:1:4: language-specific tag !!python/object:os.system is not allowed",
        ),
        (
            "a: !!python/name:os.system\n",
            "x.yaml:1:4: language-specific tag !!python/name:os.system is not allowed",
        ),
        ("a: !custom 1\n", "x.yaml:1:4: unsupported YAML tag !custom"),
        ("a: !!set {x, y}\n", "x.yaml:1:4: unsupported YAML tag !!set"),
        ("a: !!binary aGk=\n", "x.yaml:1:4: unsupported YAML tag !!binary"),
        ("a: !!int x\n", "x.yaml:1:4: invalid !!int value 'x'"),
        ("1: x\n", "x.yaml:1:1: mapping key 1 must be a string (quote it: '1')"),
        ("[a]: x\n", "x.yaml:1:1: mapping keys must be plain strings, not lists or mappings"),
        ("a: &x [1, *x]\n", "x.yaml:1:4: recursive alias: a node cannot contain itself"),
        ("a:\n\tb: 1\n", "x.yaml:2:1: tab characters are not allowed for indentation (indent with spaces)"),
        (
            "a:\n  b: 1\n  \tc: 2\n",
            "x.yaml:3:3: tab characters are not allowed for indentation (indent with spaces)",
        ),
        ("a: b: c\n", "x.yaml:1:5: invalid YAML: mapping values are not allowed here"),
        ("a: *nope\n", "x.yaml:1:4: invalid YAML: found undefined alias 'nope'"),
        ("%YAML 1.1\n---\na: yes\n", "x.yaml:1:1: only YAML 1.2 is supported (found %YAML 1.1)"),
    ],
)
def test_refused_input(text: str, message: str) -> None:
    assert error(text) == message


def test_several_construction_problems_at_once() -> None:
    with pytest.raises(ManifestValidationError) as info:
        load_documents("a: 1\na: 2\nb: !x 1\n", "x.yaml")
    assert [str(i) for i in info.value.issues] == [
        "x.yaml:2:1: duplicate key 'a' (first defined at line 1)",
        "x.yaml:3:4: unsupported YAML tag !x",
    ]


def test_tabs_inside_block_scalars_are_fine() -> None:
    assert one("a: |\n  \tindented text\nb: 1\n") == {"a": "\tindented text\n", "b": 1}


def test_tab_after_a_colon() -> None:
    assert error("a: 1\nb:\t1\n") == "x.yaml:2:3: tab characters are not allowed here (use spaces)"


def test_aliases_are_bounded() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcd", "bcde", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    message = error("\n".join(lines))
    assert (
        message
        == "x.yaml:3:4: aliases (of anchor &c) expand to more than 10,000 nodes; refusing to expand them further"
    )


def test_small_aliases_and_merge_keys() -> None:
    assert one("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\nlist: &l [1]\nagain: *l\n") == {
        "base": {"x": 1, "y": 2},
        "use": {"y": 3, "x": 1},
        "list": [1],
        "again": [1],
    }


def test_file_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * 2000 + "\n")
    with pytest.raises(ManifestParseError) as info:
        read_documents(path, "big.yaml", max_bytes=1024)
    assert str(info.value) == (
        "big.yaml: file is 2004 bytes; a manifest may be at most 1024 bytes (put bulk rows in a source: file)"
    )


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(ManifestParseError) as info:
        read_documents(path, "bad.yaml")
    assert str(info.value) == "bad.yaml:2:4: file is not valid UTF-8 (byte 0xff)"


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert read_documents(path, "bom.yaml")[0].data == {"a": 1}


def test_roundtrip_keeps_comments_and_quotes() -> None:
    text = "# top\na: 1   # trailing\nb:\n  - 'x'\n  - \"y\"\n---\n# second\nc: {d: 1}\n"
    docs = load_roundtrip(text)
    assert len(docs) == 2
    assert dump_roundtrip(docs) == text


def test_roundtrip_canonical_indentation() -> None:
    assert dump_roundtrip(load_roundtrip("a:\n- 1\n- 2\nb:\n    c: 1\n")) == "a:\n  - 1\n  - 2\nb:\n  c: 1\n"


def test_roundtrip_malformed() -> None:
    with pytest.raises(ManifestParseError) as info:
        load_roundtrip("a: [1\n")
    assert "invalid YAML" in str(info.value)
