"""A dataset's data units as a live listing (SPEC §7b): the planner selects, layers and diffs them like files.

One read of the dataset (one v1 call on Encord) gives every data unit with its metadata. In the listing a
unit's name is its title and its identity is its backing storage item's uuid, so a dataset manifest and a
folder manifest that select the same storage item meet in the planner's conflict check like two folder
manifests; a unit without a backing item is known by its data hash. A ``uuid:`` selector matches a data hash.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

from reconciler.model import LiveFolder
from reconciler.plan.listing import DatasetListing, LiveIndex

if TYPE_CHECKING:
    from reconciler.plan.listing import Progress
    from reconciler.providers.base import StateProvider

__all__ = ["read_dataset_index"]


def read_dataset_index(
    provider: StateProvider,
    dataset_hash: str,
    on_progress: Progress,
    keep: Callable[[str], bool] | None = None,
) -> LiveIndex:
    """The data units of a dataset as a :class:`LiveIndex` (``index.dataset`` set).

    With ``keep`` (a shard), only the units whose uuid it accepts are kept, as in
    :func:`~reconciler.plan.listing.read_index`.

    Raises ProviderConflictError when there is no such dataset, other ProviderErrors as they come.
    """
    stage = f"reading dataset {dataset_hash}"
    on_progress(stage, 0, None)
    ds = provider.read_dataset(dataset_hash)
    # The listing's "folder": the dataset, named by its title in plans and messages.
    index = LiveIndex(LiveFolder(ds.hash, None, ds.title, ds.title))
    listing = DatasetListing(ds.hash, ds.title, [], [])
    by_hash: dict[str, int] = {}
    index.keep = keep
    elsewhere: list[int] = []
    n = 0
    for row in ds.rows:
        uuid = row.backing_item or row.data_hash
        if keep is not None and not keep(uuid):
            elsewhere.append(hash(row.title))
            listing.elsewhere.add(row.data_hash.lower())
            continue
        index.uuids.append(uuid)
        index.rels.append(row.title)
        index.metadata_raw.append(row.metadata)
        index.by_name[row.title] = n
        listing.data_hashes.append(row.data_hash)
        listing.backing.append(row.backing_item)
        by_hash[row.data_hash.lower()] = n
        n += 1
    index.by_data_hash = by_hash
    if len(index.by_name) < n:  # a title two units share selects neither by name (selection.py)
        seen: dict[str, list[int]] = {}
        for i, title in enumerate(index.rels):
            seen.setdefault(title, []).append(i)
        index.ambiguous = {t: ords for t, ords in seen.items() if len(ords) > 1}
    if elsewhere:
        index.elsewhere = array("q", sorted(elsewhere))
        for title, i in index.by_name.items():  # a title another shard's unit shares is ambiguous here too
            if title not in index.ambiguous and index.is_elsewhere(title):
                index.ambiguous[title] = [i]
    index.dataset = listing
    on_progress(stage, len(ds.rows), len(ds.rows))
    return index
