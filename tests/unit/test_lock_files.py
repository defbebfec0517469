"""Where a store's lock file is, and that a file planted at that path cannot redirect it (real files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.errors import LockError
from reconciler.lock import StoreLock, lock_path
from reconciler.providers.base import ProviderIdentity


def test_a_link_planted_at_the_lock_path_is_refused_and_its_target_left_alone(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    path = tmp_path / "live.db.lock"
    path.symlink_to(victim)
    with pytest.raises(LockError) as info:
        StoreLock(path, "sqlite:live.db", "apply").acquire()
    assert str(info.value) == (
        f"{path}: the lock file of sqlite:live.db is a symbolic link; a lock is never taken through one (remove it)"
    )
    assert victim.read_text() == "precious\n"
    path.unlink()
    path.symlink_to(tmp_path / "created-elsewhere.txt")  # a dangling link would have created its target
    with pytest.raises(LockError):
        StoreLock(path, "sqlite:live.db", "apply").acquire()
    assert not (tmp_path / "created-elsewhere.txt").exists()


def test_a_lock_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "live.db.lock"
    os.mkfifo(path)
    with pytest.raises(LockError) as info:
        StoreLock(path, "sqlite:live.db", "apply").acquire()
    assert "is not a regular file" in str(info.value)


def test_every_path_to_one_database_gives_one_lock(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "live.db").write_bytes(b"")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "link.db").symlink_to(tmp_path / "a" / "live.db")
    one = lock_path(ProviderIdentity("sqlite", str(tmp_path / "a" / "live.db")), tmp_path, beside_store=True)
    two = lock_path(ProviderIdentity("sqlite", str(tmp_path / "b" / "link.db")), tmp_path, beside_store=True)
    assert one == two == tmp_path / "a" / "live.db.lock"
    held = StoreLock(one, "sqlite", "apply")
    held.acquire()
    try:
        with pytest.raises(LockError, match="is locked by another run"):
            StoreLock(two, "sqlite", "apply").acquire()
    finally:
        held.release()


def test_a_domain_in_another_case_or_a_linked_journal_directory_gives_the_same_lock(tmp_path: Path) -> None:
    journals = tmp_path / "ws" / ".reconciler" / "journal"
    journals.mkdir(parents=True)
    (tmp_path / "linked").symlink_to(tmp_path / "ws" / ".reconciler")
    a = lock_path(ProviderIdentity("encord", "https://api.encord.com"), journals, beside_store=False)
    b = lock_path(
        ProviderIdentity("encord", "https://API.encord.com/"),
        tmp_path / "linked" / "journal",
        beside_store=False,
    )
    assert a == b
    assert a.parent == journals.parent and a.name.startswith("journal.encord-api.encord.com-")
