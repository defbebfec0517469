"""Fixtures for the Encord provider against the project's emulator on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from reconciler.model import LiveFolder, LiveItem
from reconciler.providers.encord import EncordProvider, RetryPolicy, auth_from_env
from reconciler.snapshot import Snapshot
from reconciler.testing.emulator import Emulator
from tests.helpers.keys import make_ed25519_key


def U(n: int) -> str:
    """A deterministic UUID (version 4 layout) for test data."""
    return f"00000000-0000-4000-8000-{n:012d}"


@dataclass
class Sleeps:
    """An injectable sleep that records each wait and does not wait."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass(frozen=True)
class Keys:
    pem: str
    pub: str


@pytest.fixture(scope="session")
def keys() -> Keys:
    pem, pub = make_ed25519_key()
    return Keys(pem, pub)


def base_snapshot() -> Snapshot:
    """traffic/cams/2024 plus a sibling; a few items, an image group with children."""
    folders = [
        LiveFolder(U(1), None, "traffic", "traffic"),
        LiveFolder(U(2), U(1), "cams", "traffic/cams"),
        LiveFolder(U(3), U(2), "2024", "traffic/cams/2024"),
        LiveFolder(U(4), None, "traffic-archive", "traffic-archive"),
        LiveFolder(U(5), None, "scans", "scans"),
    ]
    items = [
        LiveItem(U(100), U(2), "cam01.mp4", "video", {"capture.weather": "sunny"}),
        LiveItem(U(101), U(2), "cam02.mp4", "video", {}),
        LiveItem(U(102), U(3), "night.mp4", "video", {"n": 1.5, "tags": ["a", "b"]}),
        LiveItem(U(103), U(1), "readme.pdf", "pdf", {"é": "ü"}),
        LiveItem(U(200), U(5), "scan-07", "imageGroup", {"patient": "p7"}),
        LiveItem(U(201), U(5), "slice-1.png", "image", {"i": 1}, parent_item=U(200)),
        LiveItem(U(202), U(5), "slice-2.png", "image", {}, parent_item=U(200)),
        LiveItem(U(210), U(5), "series-1", "dicomSeries", {}),
        LiveItem(U(211), U(5), "1.dcm", "dicomFile", {"k": True}, parent_item=U(210)),
        LiveItem(U(220), U(5), "plain.png", "image", {}),
    ]
    schema = {"capture.weather": {"ty": "enum", "values": ["rain", "snow", "sunny"]}}
    return Snapshot(schema=schema, folders=folders, items=items)


@pytest.fixture
def emulator(keys: Keys) -> Iterator[Emulator]:
    with Emulator(base_snapshot(), authorized_keys=[keys.pub], tokens=["tok-integration"]) as emu:
        yield emu


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def provider(emulator: Emulator, keys: Keys, sleeps: Sleeps) -> Iterator[EncordProvider]:
    policy = RetryPolicy(sleep=sleeps, base_delay=0.01, max_delay=0.05)
    auth = auth_from_env({"ENCORD_SSH_KEY": keys.pem})
    with EncordProvider(emulator.url, auth, parallelism=4, retry=policy) as p:
        yield p
