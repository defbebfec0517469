"""``load_workspace`` reads only the Workspace document (same messages as ``load_manifests``), and
``manifests_digest`` equals ``load_manifests(...).digest`` without validating any document."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestValidationError
from reconciler.manifest.loader import load_manifests
from reconciler.manifest.workspace import load_workspace, manifests_digest
from reconciler.providers.sqlite import SqliteConfig

REPO = Path(__file__).resolve().parents[3]
WS = "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: sqlite, path: live.db}\n"
FM = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: cams\nsource: {src}\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def issues(root: Path, loader: object) -> list[str]:
    with pytest.raises(ManifestValidationError) as info:
        loader(root)  # type: ignore[operator]
    return [str(i) for i in info.value.issues]


CASE_DIRS = sorted(p for p in (REPO / "tests" / "cases").iterdir() if (p / "manifests").is_dir())


@pytest.mark.parametrize(
    "src", [REPO / "manifests", *(p / "manifests" for p in CASE_DIRS)], ids=lambda p: p.parent.name
)
def test_the_digest_equals_the_loaders(tmp_path: Path, src: Path):
    root = tmp_path / "m"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns(".reconciler"))
    if not (root / "workspace.yaml").exists():
        (root / "workspace.yaml").write_text(WS)
    assert manifests_digest(root) == load_manifests(root).digest


def test_the_digest_counts_sources_as_the_loader_does(tmp_path: Path):
    root = write(
        tmp_path / "m",
        {
            "workspace.yaml": WS,
            "a.yaml": FM.format(src="data/a.jsonl"),
            "b.yaml": FM.format(src="' data/b.csv '") + "---\n" + FM.format(src="data/a.jsonl"),
            "data/a.jsonl": '{"name": "x", "metadata": {}}\n',
            "data/b.csv": "name\nx\n",
            "data/unused.jsonl": "{}\n",
        },
    )
    os.symlink(root / "data" / "a.jsonl", root / "data" / "link.jsonl")
    write(root, {"c.yaml": FM.format(src="data/link.jsonl")})
    assert manifests_digest(root) == load_manifests(root).digest
    before = manifests_digest(root)
    (root / "data" / "unused.jsonl").write_text("{}\n{}\n")
    assert manifests_digest(root) == before  # a file no manifest names is not part of it
    (root / "data" / "b.csv").write_text("name\ny\n")
    assert manifests_digest(root) != before
    assert manifests_digest(root) == load_manifests(root).digest


@pytest.mark.parametrize(
    "src", ["/etc/passwd", "../outside.jsonl", "data/x.txt", "data/missing.jsonl", "''", "[a, b]"]
)
def test_rejected_sources_count_as_the_loader_counts_them(tmp_path: Path, src: str):
    """A manifest whose source the loader refuses does not load; its digest still matches the bytes rule."""
    root = write(tmp_path / "m", {"workspace.yaml": WS, "a.yaml": FM.format(src=src), "data/x.txt": "x"})
    write(tmp_path, {"outside.jsonl": "{}\n"})
    digest = manifests_digest(root)
    expected = write(tmp_path / "same", {"workspace.yaml": WS, "a.yaml": FM.format(src=src)})
    assert digest.startswith("sha256:")
    # Only the two manifest files: the rejected source contributes nothing.
    assert manifests_digest(expected) == digest


def test_the_workspace_alone_is_read(tmp_path: Path):
    root = write(
        tmp_path / "m",
        {
            "workspace.yaml": WS,
            "broken.yaml": "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: [unclosed\n",
            "bad-kind.yaml": "apiVersion: reconciler/v1\nkind: FileMetadta\n",
        },
    )
    assert load_manifests.__name__  # the full loader fails on this directory:
    with pytest.raises(ManifestValidationError):
        load_manifests(root)
    loaded = load_workspace(root)
    assert loaded.root == root.resolve()
    assert loaded.workspace.provider == SqliteConfig(path="live.db")


@pytest.mark.parametrize(
    "files",
    [
        {"workspace.yaml": WS.replace("path: live.db", "path: live.db, domian: x")},
        {"workspace.yaml": WS.replace("reconciler/v1", "reconciler/v2")},
        {"workspace.yaml": WS + "settings: {parallelism: 0, undeclared_keys: maybe}\n"},
        {"workspace.yaml": WS.replace("type: sqlite, path: live.db", "type: encord, path: live.db")},
        {"workspace.yaml": WS, "second.yaml": WS},
        {"workspace.yaml": WS + "---\n" + WS},
        {"files.yaml": FM.format(src="a.jsonl")},
        {"workspace.yaml": "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: [\n"},
    ],
    ids=[
        "unknown field",
        "api version",
        "settings",
        "key of another store",
        "two files",
        "two docs",
        "no workspace",
        "unparseable",
    ],
)
def test_workspace_problems_read_as_the_loader_reports_them(tmp_path: Path, files: dict[str, str]):
    root = write(tmp_path / "m", files)
    full = issues(root, load_manifests)
    alone = issues(root, load_workspace)
    assert alone and all(i in full for i in alone)
    assert [i for i in full if "workspace" in i.lower() or "second" in i or "apiVersion" in i] == alone


def test_a_large_source_hashed_by_another_process_gives_the_same_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The loader hashes a source of ``HASH_AHEAD_BYTES`` or more in a forked copy while it goes on (Linux):
    the digest is the one hashing it here gives; so it is when that copy dies before it says."""
    from reconciler.manifest import discovery

    rows = "".join(f'{{"name": "f{i}.jpg", "metadata": {{"n": {i}}}}}\n' for i in range(3000))
    root = write(
        tmp_path / "m",
        {"workspace.yaml": WS, "a.yaml": FM.format(src="data/a.jsonl"), "data/a.jsonl": rows},
    )
    want = manifests_digest(root)  # (every file hashed here)
    monkeypatch.setattr(discovery, "HASH_AHEAD_BYTES", 1000)
    started: list[discovery._HashAhead | None] = []
    original = discovery._HashAhead.start.__func__  # type: ignore[attr-defined]

    def start(cls: type[discovery._HashAhead], file: Path) -> discovery._HashAhead | None:
        started.append(original(cls, file))
        return started[-1]

    monkeypatch.setattr(discovery._HashAhead, "start", classmethod(start))
    assert load_manifests(root).digest == want
    made = [s for s in started if s is not None]
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert [s.file.name for s in made] == ["a.jsonl"] and made[0]._pid is None  # (waited for, reaped)
    # The copy dies before it answers: the file is hashed here after all.
    import hashlib

    parent = os.getpid()

    class Dying:
        def sha256(self, *args: Any) -> Any:
            if os.getpid() != parent:
                os._exit(3)
            return hashlib.sha256(*args)

    with monkeypatch.context() as mp:
        mp.setattr(discovery, "hashlib", Dying())
        started.clear()
        assert load_manifests(root).digest == want
        assert len([s for s in started if s is not None]) == len(made)
    # Other threads running: hashed here (a forked copy would have only the thread that forks).
    import threading

    started.clear()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert load_manifests(root).digest == want
    finally:
        stop.set()
        other.join()
    assert len(started) == 3 and started == [None] * 3
