"""Sharding: which share of a plan one of N jobs does (``plan --shard K/N``, ``apply --shard K/N``). Pure.

The rule, one of two ways, decided from the manifests' folders alone (every shard sees the same manifests,
so every shard decides alike):

* **By folder**, when the manifests name at least N folder groups. A group is a top folder with every
  manifest folder inside it (folders that can share files always share a group). The groups, ordered by
  the SHA-256 of their path, are dealt round-robin: group ``r`` goes to shard ``r mod N + 1``. A shard
  lists only its groups' folders, so each folder's listing is read by one shard.
* **By file**, when there are fewer groups than shards, or when a manifest names a dataset (whose data
  units are files of any folder): every shard lists every folder and dataset and keeps only the files whose
  uuid it owns, ``crc32(lowercase uuid) mod N + 1`` (a data unit's uuid: its backing item, else its data hash).

A file no manifest folder contains (one a key rename moves) belongs to the group whose tree holds it, else
to its uuid's shard. The schema is planned and applied by shard 1 only.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.errors import UsageError

__all__ = ["Shard", "ShardRule", "parse_shard", "uuid_shard"]

MAX_SHARDS = 1000


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def plans_schema(self) -> bool:
        return self.index == 1


def parse_shard(text: str) -> Shard:
    """``K/N`` with ``1 <= K <= N``. Raises UsageError."""
    k, sep, n = text.strip().partition("/")
    if sep and k.isdigit() and n.isdigit() and k.isascii() and n.isascii():
        index, count = int(k), int(n)
        if 1 <= index <= count <= MAX_SHARDS:
            return Shard(index, count)
    raise UsageError(f"--shard {text!r}: expected K/N with 1 <= K <= N <= {MAX_SHARDS} (e.g. --shard 2/4)")


def uuid_shard(uuid: str, count: int) -> int:
    """The shard (1-based) of a file by its uuid."""
    return zlib.crc32(uuid.lower().encode()) % count + 1


def _norm(path: str) -> str:
    return path.strip("/")


def _ancestors(path: str) -> list[str]:
    """The folders above ``path``, the root ``""`` included (none above the root)."""
    if not path:
        return []
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts))]


class ShardRule:
    """The rule for one shard, given every manifest's (resolved) folder path."""

    def __init__(self, shard: Shard, folder_paths: Iterable[str], *, by_file: bool = False) -> None:
        self.shard = shard
        paths = {_norm(p) for p in folder_paths}
        tops = [p for p in paths if not any(q in paths for q in _ancestors(p))]
        #: Whole folder groups (True) or files by uuid inside every folder (False; always with ``by_file``).
        self.by_folder = not by_file and len(tops) >= shard.count
        ordered = sorted(tops, key=lambda t: hashlib.sha256(t.encode()).hexdigest())
        self._top_shard = {t: r % shard.count + 1 for r, t in enumerate(ordered)}

    def _group_shard(self, path: str) -> int | None:
        p = _norm(path)
        hit = self._top_shard.get(p)
        if hit is None:
            for q in _ancestors(p):
                hit = self._top_shard.get(q)
                if hit is not None:
                    break
        return hit

    def lists(self, folder_path: str) -> bool:
        """Whether this shard plans the manifests on ``folder_path`` (by file: every shard does)."""
        return not self.by_folder or self._group_shard(folder_path) == self.shard.index

    def keeps(self, uuid: str) -> bool:
        """Whether this shard keeps a file it lists (by folder: every file of its folders)."""
        return self.by_folder or uuid_shard(uuid, self.shard.count) == self.shard.index

    def owns_file(self, uuid: str, folder_path: str) -> bool:
        """Whether a file found outside the manifests' listings (a key rename's scan) is this shard's."""
        if self.by_folder:
            n = self._group_shard(folder_path)
            if n is not None:
                return n == self.shard.index
        return uuid_shard(uuid, self.shard.count) == self.shard.index
