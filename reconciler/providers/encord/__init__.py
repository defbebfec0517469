"""The ``encord`` provider: live state on Encord's v2 public REST API over httpx (and the emulator)."""

from __future__ import annotations

from reconciler.providers.encord.auth import BearerAuth, Ed25519SigningAuth, auth_from_env, load_ed25519_key
from reconciler.providers.encord.client import (
    DEFAULT_DOMAIN,
    US_DOMAIN,
    EncordClient,
    RetryPolicy,
    normalize_domain,
)
from reconciler.providers.encord.provider import EncordProvider, encord_provider_from_config

__all__ = [
    "DEFAULT_DOMAIN",
    "US_DOMAIN",
    "BearerAuth",
    "Ed25519SigningAuth",
    "EncordClient",
    "EncordProvider",
    "RetryPolicy",
    "auth_from_env",
    "encord_provider_from_config",
    "load_ed25519_key",
    "normalize_domain",
]
