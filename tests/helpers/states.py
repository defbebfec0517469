"""Small live states for tests, built in code."""

from __future__ import annotations

import uuid

from reconciler.model import LiveFolder, LiveItem
from reconciler.snapshot import Snapshot

NS = uuid.UUID("0b7a4f6e-1111-4a2b-8c3d-5e6f7a8b9c0d")


def uid(name: str) -> str:
    return str(uuid.uuid5(NS, name))


def make_snapshot(
    folders: dict[str, list[tuple[str, dict]]] | None = None,
    schema: dict | None = None,
    *,
    item_type: str = "image",
) -> Snapshot:
    """``{"a/b": [("name.jpg", {...}), ...]}`` -> a Snapshot with every parent folder created."""
    snap = Snapshot(schema=dict(schema or {}))
    seen: dict[str, LiveFolder] = {}
    for path, files in sorted((folders or {}).items()):
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p not in seen:
                parent = "/".join(parts[: i - 1]) or None
                seen[p] = LiveFolder(
                    uid("folder:" + p), uid("folder:" + parent) if parent else None, parts[i - 1], p
                )
                snap.folders.append(seen[p])
        for name, md in files:
            snap.items.append(
                LiveItem(uid(f"item:{path}/{name}"), seen[path].uuid, name, item_type, dict(md))
            )
    return snap
