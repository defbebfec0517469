"""discovery: which files are manifests, and the digest over their bytes (no YAML parsed)."""

from __future__ import annotations

from pathlib import Path

from reconciler.manifest.discovery import DigestBuilder, discover_manifests, file_sha256


def test_manifests_are_found_recursively_sorted_and_hidden_ones_skipped(tmp_path: Path) -> None:
    for rel in ["b.yaml", "a/z.YML", "a/y.yaml", ".hidden.yaml", ".git/x.yaml", "notes.txt", "c.json"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x: 1\n")
    found = [p.relative_to(tmp_path).as_posix() for p in discover_manifests(tmp_path)]
    assert found == ["a/y.yaml", "a/z.YML", "b.yaml"]


def test_the_digest_follows_every_byte_and_name_but_not_the_order_files_are_added(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("x: 1\n")
    b.write_text("y: 2\n")

    def digest(*names: str) -> str:
        builder = DigestBuilder()
        for name in names:
            builder.add(name, tmp_path / name)
        return builder.digest()

    first = digest("a.yaml", "b.yaml")
    assert first.startswith("sha256:") and len(first) == 7 + 64
    assert digest("b.yaml", "a.yaml", "a.yaml") == first
    b.write_text("y: 3\n")
    assert digest("a.yaml", "b.yaml") != first
    builder = DigestBuilder()
    builder.add("renamed.yaml", a)
    builder.add("b.yaml", b)
    assert builder.digest() != digest("a.yaml", "b.yaml")


def test_an_unreadable_file_has_no_hash(tmp_path: Path) -> None:
    assert file_sha256(tmp_path / "missing.yaml") is None
    (tmp_path / "e.yaml").write_bytes(b"")
    assert (
        file_sha256(tmp_path / "e.yaml") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
