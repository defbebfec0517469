"""The long phases a command goes through, and the one name each has on the progress line.

The engine never prints: a long phase reports ``(label, done, total)`` through a :data:`Progress` callback
(``PlanHooks.on_progress``, ``ApplyHooks.on_progress``, ``ProviderRequest.on_progress``); ``total`` is
``None`` while it is not known yet. The CLI draws the reports on stderr when it is a terminal. Every label
is made here, so the phase vocabulary has one owner.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

__all__ = [
    "APPLYING",
    "PRECHECK",
    "RENAMES",
    "RESOLVING_FOLDERS",
    "Progress",
    "no_progress",
    "planning",
    "reading",
    "seeding",
]

#: ``on_progress(label, done, total)``.
Progress = Callable[[str, int, "int | None"], None]

#: Finding each manifest's folder in the store (Encord: one name search per path level).
RESOLVING_FOLDERS = "resolving folders"
#: ``renamed_from``: every folder of the organisation read for files holding an old key (done/total: folders).
RENAMES = "renames: reading every folder"
#: Before a saved plan (or a rollback) writes: the schema and every planned file read again (done: files).
PRECHECK = "checking the plan against live state"
#: Write batches (done/total: files).
APPLYING = "applying"


def seeding(database: PurePath, snapshot: PurePath) -> str:
    """A new SQLite database loaded from its seed snapshot (done/total: files)."""
    return f"seeding {database.name} from {snapshot.name}"


def reading(folder: str) -> str:
    """One folder listed (done: files so far)."""
    return f"reading {folder}"


def planning(manifest: str) -> str:
    """One manifest's files selected and diffed (done/total: files)."""
    return f"planning {manifest}"


def no_progress(label: str, done: int, total: int | None) -> None:
    """A :data:`Progress` that reports nowhere."""
    return None
