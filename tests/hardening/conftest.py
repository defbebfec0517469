"""Fixtures for the hardening tests: an emulator serving a large state, and fast-retrying Encord providers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from reconciler.providers.encord import EncordProvider, RetryPolicy
from reconciler.providers.encord.auth import BearerAuth
from reconciler.snapshot import Snapshot
from reconciler.testing.emulator import Emulator
from tests.hardening.chaos import ChaosTransport

TOKEN = "hardening-token"


@dataclass
class Waits:
    """An injectable ``sleep``: records every wait and waits only a token amount (keeps tests fast)."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def fast_policy(waits: Waits, *, max_attempts: int = 10) -> RetryPolicy:
    """The production schedule shape with tiny delays; ``Retry-After`` is honoured (recorded, not slept)."""
    return RetryPolicy(
        max_attempts=max_attempts, base_delay=0.001, max_delay=0.01, sleep=waits, jitter=lambda cap: cap
    )


@pytest.fixture
def serve() -> Iterator[Callable[[Snapshot], Emulator]]:
    """``serve(snapshot)`` -> a running emulator on 127.0.0.1 accepting bearer ``TOKEN``; stopped afterwards."""
    running: list[Emulator] = []

    def start(snapshot: Snapshot) -> Emulator:
        emu = Emulator(snapshot, tokens=[TOKEN]).start()
        running.append(emu)
        return emu

    yield start
    for emu in running:
        emu.stop()


@pytest.fixture
def connect() -> Iterator[Callable[..., tuple[EncordProvider, ChaosTransport]]]:
    """``connect(emulator, policy, **chaos)`` -> (provider, its ChaosTransport); closed afterwards."""
    opened: list[EncordProvider] = []

    def make(
        emu: Emulator, policy: RetryPolicy, *, parallelism: int = 4, **chaos: object
    ) -> tuple[EncordProvider, ChaosTransport]:
        transport = ChaosTransport(httpx.HTTPTransport(), **chaos)  # type: ignore[arg-type]
        p = EncordProvider(
            emu.url, BearerAuth(TOKEN), parallelism=parallelism, retry=policy, transport=transport
        )
        opened.append(p)
        return p, transport

    yield make
    for p in opened:
        p.close()
