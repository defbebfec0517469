"""The StateProvider protocol: how the engine reads and writes live state, whatever the store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.model import LiveFolder, LiveItem
from reconciler.schema import WireSchema
from reconciler.types import JsonValue

__all__ = ["CallStats", "Capabilities", "ListedItem", "ProviderIdentity", "StateProvider"]


@dataclass(frozen=True)
class ProviderIdentity:
    """Which store a plan was made against; carries no secrets. ``location`` is a path or a domain."""

    type: str
    location: str

    def to_json(self) -> dict[str, str]:
        key = "path" if self.type == "sqlite" else "domain"
        return {"type": self.type, key: self.location}

    def __str__(self) -> str:
        return f"{self.type}:{self.location}"


@dataclass(frozen=True)
class Capabilities:
    """What the engine may ask of a provider."""

    max_batch: int = 1000  # files per bulk read or write request
    supports_children: bool = True
    parallel_writes: bool = True  # whether write batches may run concurrently


@dataclass
class CallStats:
    """Requests made so far (for the plan's ``api_calls``); sqlite counts statements of the same kind."""

    reads: int = 0
    writes: int = 0
    by_route: dict[str, int] = field(default_factory=dict)

    def count(self, route: str, *, write: bool) -> None:
        if write:
            self.writes += 1
        else:
            self.reads += 1
        self.by_route[route] = self.by_route.get(route, 0) + 1


@dataclass(frozen=True)
class ListedItem:
    """An item as listed under a folder: ``rel_name`` is its name relative to that folder.

    In a recursive listing that is ``sub/dir/name``; for a child item of an image group it is
    ``GROUP/CHILD`` (prefixed by the group's own relative folder path when recursive).
    """

    rel_name: str
    item: LiveItem


class StateProvider(Protocol):
    """Read and write live state. Every method raises only ``ProviderError`` subclasses."""

    identity: ProviderIdentity
    capabilities: Capabilities
    stats: CallStats

    def read_schema(self) -> WireSchema:
        """The organisation's schema in wire shape, in server order (``{}`` when there is none)."""
        ...

    def write_schema(self, schema: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the whole schema (Encord takes the complete map, never a diff)."""
        ...

    def list_folders(self) -> list[LiveFolder]:
        """Every folder, sorted by path."""
        ...

    def resolve_folder(self, ref: str) -> LiveFolder:
        """A folder by path from the root (``a/b``) or by UUID; ProviderConflictError if there is none."""
        ...

    def iter_items(self, folder: LiveFolder, *, recursive: bool, children: bool) -> Iterator[ListedItem]:
        """The items of a folder (and its subfolders when recursive; child items when ``children``)."""
        ...

    def get_items(self, uuids: Sequence[str]) -> dict[str, LiveItem]:
        """Fresh copies of the given items, by uuid; items that no longer exist are absent."""
        ...

    def patch_items(self, patches: Mapping[str, Mapping[str, JsonValue]]) -> dict[str, str | None]:
        """Replace each item's whole metadata dict. Returns uuid -> ``None`` (written) or an error reason.

        At most ``capabilities.max_batch`` items per call.
        """
        ...

    def close(self) -> None: ...
