"""Fixtures of the Encord provider's unit tests: an in-process fake API and a provider talking to it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from reconciler.providers.encord import EncordProvider, RetryPolicy
from reconciler.providers.encord.auth import BearerAuth

from .fake_api import FakeApi


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def provider(api: FakeApi) -> Iterator[EncordProvider]:
    policy = RetryPolicy(sleep=lambda s: None, jitter=lambda cap: 0.0)
    with EncordProvider(
        "https://api.encord.com", BearerAuth("t"), retry=policy, transport=httpx.MockTransport(api)
    ) as p:
        yield p
