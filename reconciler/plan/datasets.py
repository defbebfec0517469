"""A dataset's data units as a live listing (SPEC §7b): the planner selects, layers and diffs them like files.

One read of the dataset (one v1 call on Encord) gives every data unit with its metadata. In the listing a
unit's name is its title and its identity is its backing storage item's uuid, so a dataset manifest and a
folder manifest that select the same storage item meet in the planner's conflict check like two folder
manifests; a unit without a backing item is known by its data hash. A ``uuid:`` selector matches a data hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.model import LiveFolder
from reconciler.plan.listing import DatasetListing, LiveIndex

if TYPE_CHECKING:
    from reconciler.plan.listing import Progress
    from reconciler.providers.base import StateProvider

__all__ = ["read_dataset_index"]


def read_dataset_index(provider: StateProvider, dataset_hash: str, on_progress: Progress) -> LiveIndex:
    """The data units of a dataset as a :class:`LiveIndex` (``index.dataset`` set).

    Raises ProviderConflictError when there is no such dataset, other ProviderErrors as they come.
    """
    stage = f"reading dataset {dataset_hash}"
    on_progress(stage, 0, None)
    ds = provider.read_dataset(dataset_hash)
    # The listing's "folder": the dataset, named by its title in plans and messages.
    index = LiveIndex(LiveFolder(ds.hash, None, ds.title, ds.title))
    listing = DatasetListing(ds.hash, ds.title, [], [])
    by_hash: dict[str, int] = {}
    for n, row in enumerate(ds.rows):
        index.uuids.append(row.backing_item or row.data_hash)
        index.rels.append(row.title)
        index.metadata_raw.append(row.metadata)
        index.by_name[row.title] = n
        listing.data_hashes.append(row.data_hash)
        listing.backing.append(row.backing_item)
        by_hash[row.data_hash.lower()] = n
    index.by_data_hash = by_hash
    if len(index.by_name) < len(ds.rows):  # a title two units share selects neither by name (selection.py)
        seen: dict[str, list[int]] = {}
        for n, title in enumerate(index.rels):
            seen.setdefault(title, []).append(n)
        index.ambiguous = {t: ords for t, ords in seen.items() if len(ords) > 1}
    index.dataset = listing
    on_progress(stage, len(ds.rows), len(ds.rows))
    return index
