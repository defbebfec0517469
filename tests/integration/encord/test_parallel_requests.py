"""Folder look-ups and the read-back after an apply run up to ``parallelism`` requests at once on a provider that
serves reads concurrently, with the same requests and the same outcome as one at a time."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from reconciler.apply import ApplyResult, FileResult, FileStatus, _read_back
from reconciler.errors import ProviderConflictError, ProviderConnectionError, SourceLocation
from reconciler.model import FileManifest, LiveFolder, LiveItem, Mode
from reconciler.plan.files import _resolve_all
from reconciler.plan.model import FileChange, KeyAction, KeyChange, Strategy
from reconciler.providers.base import Capabilities

U = "00000000-0000-4000-8000-{:012d}".format


class _Lookups:
    """resolve_folder waits at a barrier: the look-ups finish only if ``parties`` of them run at once."""

    def __init__(self, parties: int, parallel: bool = True) -> None:
        self.capabilities = Capabilities(parallel_reads=parallel)
        self.barrier = threading.Barrier(parties, timeout=20)
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def resolve_folder(self, ref: str) -> LiveFolder:
        with self.lock:
            self.asked.append(ref)
        self.barrier.wait()
        if ref == "gone":
            raise ProviderConflictError("no folder 'gone'")
        return LiveFolder(f"uuid-{ref}", None, ref, ref)


def _manifest(folder: str) -> FileManifest:
    return FileManifest(f"{folder}.yaml", folder, Mode.MERGE, (), SourceLocation(f"{folder}.yaml", 1, 1))


def _resolve(provider: _Lookups, folders: Sequence[str], parallelism: int) -> dict[str, object]:
    manifests = [_manifest(f) for f in folders]
    found: dict[str, object] = {}
    progress: list[tuple[int, int | None]] = []

    def resolve(m: FileManifest) -> LiveFolder:
        try:
            folder = provider.resolve_folder(m.folder)
        except ProviderConflictError as exc:
            found[m.folder] = str(exc)
            raise
        found[m.folder] = folder.uuid
        return folder

    _resolve_all(manifests, resolve, provider, parallelism, lambda s, n, t: progress.append((n, t)))  # type: ignore[arg-type]
    assert progress == [(n, len(folders)) for n in range(1, len(folders) + 1)]
    return found


def test_folder_look_ups_overlap_up_to_the_parallelism() -> None:
    provider = _Lookups(3)
    found = _resolve(provider, ["a", "gone", "c"], parallelism=3)
    assert found == {"a": "uuid-a", "gone": "no folder 'gone'", "c": "uuid-c"}
    assert sorted(provider.asked) == ["a", "c", "gone"]  # each once


def test_folder_look_ups_are_one_at_a_time_without_parallel_reads() -> None:
    provider = _Lookups(1, parallel=False)
    assert _resolve(provider, ["a", "b"], parallelism=4) == {"a": "uuid-a", "b": "uuid-b"}
    assert provider.asked == ["a", "b"]


def _change(n: int) -> FileChange:
    return FileChange(
        uuid=U(n),
        folder="f",
        name=f"x{n:04d}.jpg",
        strategy=Strategy.MERGE,
        manifest="m.yaml",
        live_fingerprint="sha256:0",
        changes=(KeyChange("k", KeyAction.UPDATE, 0, n),),
    )


class _Back:
    """get_items for the read-back: ``parties`` requests must be in flight together; one chunk fails, one
    file changed after the write, one file is gone."""

    def __init__(self, parties: int, parallel: bool = True) -> None:
        self.capabilities = Capabilities(max_batch=2, parallel_reads=parallel)
        self.barrier = threading.Barrier(parties, timeout=20)
        self.calls: list[list[str]] = []

    def get_items(self, uuids: Sequence[str]) -> dict[str, LiveItem]:
        self.calls.append(list(uuids))
        self.barrier.wait()
        if U(5) in uuids:
            raise ProviderConnectionError("the server went away")
        out = {}
        for u in uuids:
            n = int(u[-12:])
            if n != 7:
                out[u] = LiveItem(u, "f", f"x{n:04d}.jpg", "image", {"k": n if n != 2 else -1})
        return out


def _result() -> ApplyResult:
    result = ApplyResult()
    for n in range(9):
        status = FileStatus.STALE if n == 3 else FileStatus.WRITTEN
        result.files.append(FileResult(_change(n), status, "moved" if n == 3 else ""))
    return result


@pytest.mark.parametrize(("parties", "parallel", "workers"), [(4, True, 4), (1, False, 4), (1, True, 1)])
def test_the_read_back_overlaps_and_concludes_as_one_at_a_time(
    parties: int, parallel: bool, workers: int
) -> None:
    provider = _Back(parties, parallel)
    result = _result()
    _read_back(result, provider, workers if parallel else 1)  # type: ignore[arg-type]
    assert result.verify_reads == 4  # 8 written files, 2 per read
    assert sorted(map(sorted, provider.calls)) == [[U(0), U(1)], [U(2), U(4)], [U(5), U(6)], [U(7), U(8)]]
    assert [(r.status.value, r.reason) for r in result.files] == [
        ("written", ""),
        ("written", ""),
        ("changed-after-write", "written, then changed by another writer: k"),
        ("stale", "moved"),
        ("written", ""),
        ("changed-after-write", "written, but reading it back failed: the server went away"),
        ("changed-after-write", "written, but reading it back failed: the server went away"),
        ("changed-after-write", "written, then the file disappeared"),
        ("written", ""),
    ]
