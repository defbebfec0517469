"""Shared set-up of the interrupt and kill tests: a seeded SQLite database and an emulator, 1,000s of files."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.testing.emulator import Emulator
from tests.helpers.workspace import (
    EMULATOR_FILES,
    MANIFEST,
    SQLITE_FILES,
    TOKEN,
    Case,
    cams_snapshot,
    child_env,
    encord_workspace,
    seed_sqlite,
    sqlite_workspace,
    write_dir,
)


@pytest.fixture(scope="module")
def sqlite_seed(tmp_path_factory) -> Path:
    return seed_sqlite(tmp_path_factory.mktemp("seed") / "live.db", cams_snapshot(SQLITE_FILES))


@pytest.fixture
def sqlite_case(tmp_path: Path, sqlite_seed: Path) -> Callable[[str], Case]:
    """``sqlite_case(name)``: a fresh workspace on a copy of the seeded database."""

    def make(name: str = "ws") -> Case:
        d = write_dir(tmp_path / name, {"workspace.yaml": sqlite_workspace(), "cams.yaml": MANIFEST})
        shutil.copy(sqlite_seed, d / "live.db")
        return Case(d, child_env(), SQLITE_FILES)

    return make


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator(cams_snapshot(EMULATOR_FILES), tokens=[TOKEN]).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator_case(tmp_path: Path, emulator: Emulator) -> Callable[[str], Case]:
    """``emulator_case(name)``: a workspace on the emulator, state reset, 25 ms latency per request."""

    def make(name: str = "ws") -> Case:
        emulator.set_faults()
        emulator.load(cams_snapshot(EMULATOR_FILES))
        emulator.set_faults(latency_ms=25)
        d = write_dir(
            tmp_path / name, {"workspace.yaml": encord_workspace(emulator.url), "cams.yaml": MANIFEST}
        )
        return Case(d, child_env({"ENCORD_API_TOKEN": TOKEN}), EMULATOR_FILES, kill_within=0.8, emu=emulator)

    return make
