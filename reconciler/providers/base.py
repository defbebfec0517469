"""The StateProvider protocol: how the engine reads and writes live state, whatever the store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from reconciler.model import LiveDataset, LiveFolder, LiveItem, ProviderConfig
from reconciler.progress import Progress, no_progress
from reconciler.schema import WireSchema
from reconciler.types import JsonValue

__all__ = [
    "CallStats",
    "Capabilities",
    "ListedItem",
    "ProviderIdentity",
    "ProviderRequest",
    "StateProvider",
    "StoreKind",
    "TransactionalProvider",
]


@dataclass(frozen=True)
class ProviderIdentity:
    """Which store a plan was made against; carries no secrets. ``location`` is a path or a domain.

    How a location is written in a plan or journal (``registry.identity_to_json``), compared and redacted
    belongs to the store's :class:`StoreKind` (see :mod:`reconciler.providers.registry`).
    """

    type: str
    location: str

    def __str__(self) -> str:
        return f"{self.type}:{self.location}"


@dataclass(frozen=True)
class Capabilities:
    """What the engine may ask of a provider."""

    max_batch: int = 1000  # files per bulk read or write request
    parallel_writes: bool = True  # whether write batches may run concurrently
    # a ``TransactionalProvider``: a batch's re-read and write are one transaction (else apply reads writes back)
    atomic_batches: bool = False
    # the store is a local file (its identity's location): its lock file goes beside it, not beside the journal
    lock_beside_store: bool = False
    raw_listing: bool = False  # whether it has ``iter_raw_items`` (metadata as JSON text, parsed on use)
    #: Whether it has ``iter_raw_pages`` and ``read_raw_metadata``: a listing may keep a digest of each file's
    #: metadata text instead of the text, and re-read the files it compares value by value.
    digest_listing: bool = False
    #: Whether it has ``iter_listed_pages`` and ``check_listed_text`` (``plan.listing.PagedListingProvider``).
    paged_listing: bool = False
    #: Whether folders may be listed concurrently (a network store: the requests overlap; not the embedded
    #: store, whose listings are CPU work under one lock).
    parallel_reads: bool = False
    lists_datasets: bool = False  # whether ``list_datasets`` can name every dataset (Encord's v1 API cannot)


@dataclass(frozen=True)
class ProviderRequest:
    """Everything a store needs to open: its config, the manifest directory (relative paths), the environment
    (credentials, settings), parallelism, and what may happen to a store that does not exist yet:
    ``create`` an empty one (only commands that write), or load the config's seed (``seed``: commands that
    read live state to plan from it; never a saved plan or a journal, which need the store they recorded).
    Otherwise a missing store is an error and nothing is created. ``on_progress`` hears about long work
    done while opening (seeding a new database; :mod:`reconciler.progress`)."""

    config: ProviderConfig
    root: Path
    env: Mapping[str, str]
    parallelism: int
    create: bool = False
    seed: bool = True
    on_progress: Progress = no_progress


class StoreKind(Protocol):
    """One store type: its typed config, its identity and how it opens. One module per store defines one,
    and one line of :data:`reconciler.providers.registry.PROVIDERS` names it.

    ``name`` is the ``type`` of the Workspace, the ``--provider NAME:`` prefix and the identity's type;
    ``record_key`` names the location in plan and journal JSON (``path``, ``domain``); ``workspace_keys``
    are the Workspace ``provider:`` keys the store reads; ``url_forms`` is shown in ``--provider`` help.
    """

    name: str
    record_key: str
    workspace_keys: frozenset[str]
    url_forms: str

    def from_url(self, rest: str, base: ProviderConfig | None) -> ProviderConfig:
        """The config for ``--provider NAME:REST`` (``base``: the Workspace's, for opt-ins it keeps).
        Raises UsageError."""
        ...

    def from_workspace(self, raw: Mapping[str, JsonValue]) -> ProviderConfig:
        """The config of a Workspace ``provider:`` mapping (already validated), defaults filled in."""
        ...

    def identity(self, config: ProviderConfig, root: Path) -> ProviderIdentity:
        """The identity a provider opened from ``config`` has (relative paths against ``root``)."""
        ...

    def same_location(self, a: str, b: str) -> bool:
        """Whether two recorded locations name one store."""
        ...

    def safe_location(self, location: str) -> str:
        """``location`` without anything secret (credentials, query strings) for files and messages."""
        ...

    def workspace_entries(self, config: ProviderConfig, root: Path, out: Path) -> dict[str, JsonValue]:
        """The Workspace ``provider:`` keys (besides ``type``) that name, from a Workspace in directory
        ``out``, the store ``config`` names from ``root``."""
        ...

    def open(self, request: ProviderRequest) -> StateProvider:
        """Open the store. Raises UsageError or ProviderError (a missing store when not ``create``)."""
        ...


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

    def list_datasets(self) -> list[tuple[str, str]]:
        """Every dataset as ``(hash, title)``; only when ``capabilities.lists_datasets``."""
        ...

    def read_dataset(self, dataset_hash: str) -> LiveDataset:
        """A dataset (Encord's legacy data units) with each row's custom metadata: a row with a backing item
        carries that item's (written with :meth:`patch_items`), the others their own (written with
        :meth:`write_data_rows`). ProviderConflictError if there is no such dataset."""
        ...

    def write_data_rows(
        self, dataset_hash: str, patches: Mapping[str, Mapping[str, JsonValue]]
    ) -> dict[str, str | None]:
        """Replace the whole metadata of rows **without** a backing item (one request per row).
        Returns data hash -> ``None`` (written) or an error reason."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class TransactionalProvider(Protocol):
    """A store with transactions: reads and writes inside :meth:`batch_transaction` are one atomic unit, so
    no other writer's change lands between a batch's re-read and its write. A store without them (Encord: no
    conditional write exists) gets its writes read back after the last batch instead (``apply.py``)."""

    def batch_transaction(self) -> AbstractContextManager[None]: ...
