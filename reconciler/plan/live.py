"""The live metadata of planned files, read and written through whichever API holds it (SPEC §7b).

A file of a folder, and a data unit of a dataset that has a backing storage item, are storage items: read in
bulk (get-bulk) and written in bulk (patch-bulk, at most ``capabilities.max_batch`` per request). A data unit
without a backing item is reachable only through the legacy dataset API: its dataset is read once (one v1
call) and each such row is written with the per-row call. Apply, its staleness check and rollback all go
through these two functions, so the choice of API is made in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from reconciler.errors import ProviderAuthError, ProviderConflictError, ProviderError

if TYPE_CHECKING:
    from reconciler.plan.model import FileChange
    from reconciler.providers.base import StateProvider
    from reconciler.types import JsonValue, MetadataView

__all__ = ["read_planned", "write_planned"]


def _is_row(c: FileChange) -> bool:
    return c.dataset is not None and c.dataset.is_data_row_write


def read_planned(provider: StateProvider, changes: Sequence[FileChange]) -> dict[str, dict[str, JsonValue]]:
    """Fresh metadata of each planned file, by ``FileChange.uuid``; files that no longer exist are absent.

    Storage items are read in bulk (pages of ``max_batch``); rows without a backing item with one read of
    each dataset they belong to. Raises ProviderError.
    """
    out: dict[str, dict[str, JsonValue]] = {}
    uuids = [c.uuid for c in changes if not _is_row(c)]
    size = provider.capabilities.max_batch
    for i in range(0, len(uuids), size):
        for uuid, item in provider.get_items(uuids[i : i + size]).items():
            out[uuid] = item.metadata
    wanted: dict[str, set[str]] = {}
    for c in changes:
        if c.dataset is not None and _is_row(c):
            wanted.setdefault(c.dataset.hash, set()).add(c.dataset.data_hash)
    for ds_hash, hashes in sorted(wanted.items()):
        try:
            ds = provider.read_dataset(ds_hash)
        except ProviderConflictError:
            continue  # the dataset is gone: so are its rows
        for r in ds.rows:
            if r.data_hash in hashes and r.backing_item is None:
                out[r.data_hash] = r.metadata
    return out


def write_planned(
    provider: StateProvider, writes: Sequence[tuple[FileChange, MetadataView]]
) -> dict[str, str | None]:
    """Replace each file's whole metadata. Returns ``FileChange.uuid`` -> ``None`` (written) or the reason.

    Storage items go in one patch-bulk (the caller keeps batches within ``max_batch``); rows without a
    backing item with the legacy per-row call, per dataset. A failed patch-bulk request is each of its
    files' reason (the rows' answers are kept); raises ProviderAuthError (refused credentials).
    """
    storage: dict[str, Mapping[str, JsonValue]] = {}
    rows: dict[str, dict[str, Mapping[str, JsonValue]]] = {}
    for c, md in writes:
        if c.dataset is not None and _is_row(c):
            rows.setdefault(c.dataset.hash, {})[c.dataset.data_hash] = md
        else:
            storage[c.uuid] = md
    out: dict[str, str | None] = {}
    for ds_hash, patches in sorted(rows.items()):
        out.update(provider.write_data_rows(ds_hash, patches))
    if storage:
        try:
            out.update(provider.patch_items(storage))
        except ProviderAuthError:
            raise
        except ProviderError as exc:
            out.update({uuid: str(exc) for uuid in storage})
    return out
