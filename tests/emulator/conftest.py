"""Fixtures for the emulator tests: a small fixed live state, a running emulator, signed httpx clients."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from reconciler.model import LiveFolder, LiveItem
from reconciler.snapshot import Snapshot
from reconciler.testing import Emulator
from tests.emulator.signing import SignedAuth, load_ed25519
from tests.helpers.keys import make_ed25519_key

TOKEN = "test-token-123"
_NS = uuid.UUID("6f1c2a4e-9d3b-4c8a-b7e5-0a1b2c3d4e5f")


def uid(name: str) -> str:
    """A stable lowercase UUID for a name (uuid5), so tests can name folders and items."""
    return str(uuid.uuid5(_NS, name))


SCHEMA = {"capture.weather": {"ty": "enum", "values": ["rain", "sunny"]}}


@dataclass(frozen=True)
class Ids:
    """The uuids of the standard state (see ``standard_state``)."""

    traffic: str = uid("folder:traffic")
    cams: str = uid("folder:traffic/cams")
    night: str = uid("folder:traffic/cams/night")
    archive: str = uid("folder:archive")
    a: str = uid("item:a.jpg")
    b: str = uid("item:b.mp4")
    c: str = uid("item:c.jpg")
    group: str = uid("item:scan-07")
    child1: str = uid("item:scan-07/img-1.jpg")
    child2: str = uid("item:scan-07/img-2.jpg")
    child3: str = uid("item:scan-07/img-3.jpg")
    n1: str = uid("item:n1.jpg")


IDS = Ids()


def standard_state() -> Snapshot:
    """traffic/{cams/{night}}, archive; cams holds b.mp4, a.jpg, c.jpg and image group scan-07 (3 children)."""
    i = IDS
    return Snapshot(
        schema={k: dict(v) for k, v in SCHEMA.items()},
        folders=[
            LiveFolder(i.traffic, None, "traffic", "traffic"),
            LiveFolder(i.cams, i.traffic, "cams", "traffic/cams"),
            LiveFolder(i.night, i.cams, "night", "traffic/cams/night"),
            LiveFolder(i.archive, None, "archive", "archive"),
        ],
        items=[
            LiveItem(i.b, i.cams, "b.mp4", "video", {"capture.weather": "rain", "n": 1}),
            LiveItem(i.a, i.cams, "a.jpg", "image", {}),
            LiveItem(i.c, i.cams, "c.jpg", "image", {"note": "é"}),
            LiveItem(i.group, i.cams, "scan-07", "imageGroup", {"kind": "group"}),
            LiveItem(i.child2, i.cams, "img-2.jpg", "image", {"frame": 2}, i.group),
            LiveItem(i.child1, i.cams, "img-1.jpg", "image", {"frame": 1}, i.group),
            LiveItem(i.child3, i.cams, "img-3.jpg", "image", {"frame": 3}, i.group),
            LiveItem(i.n1, i.night, "n1.jpg", "image", {}),
        ],
    )


@pytest.fixture(scope="session")
def ed_key() -> tuple[str, str]:
    """(OpenSSH private key text, public key hex) of the key the emulator accepts."""
    return make_ed25519_key()


@pytest.fixture
def emu(ed_key: tuple[str, str]) -> Iterator[Emulator]:
    with Emulator(standard_state(), authorized_keys=[ed_key[1]], tokens=[TOKEN]) as emulator:
        yield emulator


@pytest.fixture
def api(emu: Emulator, ed_key: tuple[str, str]) -> Iterator[httpx.Client]:
    """A signed client whose base URL is ``/v2/public/``."""
    auth = SignedAuth(load_ed25519(ed_key[0]))
    with httpx.Client(base_url=emu.url + "/v2/public/", auth=auth) as client:
        yield client


@pytest.fixture
def control(emu: Emulator) -> Iterator[httpx.Client]:
    """An unauthenticated client at the emulator's origin, for ``/_emulator/`` endpoints."""
    with httpx.Client(base_url=emu.url) as client:
        yield client
