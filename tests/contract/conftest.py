"""The provider contract suite runs every test on each provider: sqlite, and encord against the emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from reconciler.providers.base import StateProvider
from reconciler.snapshot import Snapshot, write_snapshot

TOKEN = "contract-suite-token"


@pytest.fixture(params=["sqlite", "encord"])
def provider_kind(request) -> str:
    return request.param


@pytest.fixture
def make_provider(provider_kind, tmp_path) -> Iterator[Callable[[Snapshot], StateProvider]]:
    """``make_provider(snapshot)`` -> a provider whose live state is that snapshot."""
    opened: list[StateProvider] = []
    emulators = []

    def factory(snapshot: Snapshot) -> StateProvider:
        if provider_kind == "sqlite":
            from reconciler.providers.sqlite import SqliteProvider

            seed = tmp_path / f"seed{len(opened)}.json"
            write_snapshot(seed, snapshot.schema, snapshot.folders, snapshot.items, snapshot.datasets)
            p: StateProvider = SqliteProvider(tmp_path / f"live{len(opened)}.db", seed=seed)
        else:
            from reconciler.providers.encord.provider import encord_provider_from_config
            from reconciler.testing.emulator import Emulator

            emu = Emulator(snapshot, tokens=[TOKEN]).start()
            emulators.append(emu)
            p = encord_provider_from_config(
                emu.url, {"ENCORD_API_TOKEN": TOKEN}, parallelism=4, allow_insecure_http=False
            )
        opened.append(p)
        return p

    yield factory
    for p in opened:
        p.close()
    for e in emulators:
        e.stop()
