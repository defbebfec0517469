"""Run settings resolved once from flags, the environment and the Workspace manifest, then passed explicitly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.model import DesiredState, ProviderConfig
from reconciler.providers.base import StateProvider
from reconciler.providers.registry import ProviderRequest, open_provider, parse_provider_url

__all__ = ["Settings", "provider_for"]


@dataclass(frozen=True)
class Settings:
    """What every command gets: where the manifests are, the environment, and global flags."""

    manifest_dir: Path
    env: Mapping[str, str]
    debug: bool = False
    color: bool = False


def provider_config(desired: DesiredState, override: str | None) -> ProviderConfig:
    base = desired.workspace.provider
    return parse_provider_url(override, base) if override else base


def provider_for(
    settings: Settings, desired: DesiredState, override: str | None, parallelism: int | None = None
) -> StateProvider:
    """Open the provider named by ``--provider`` or the Workspace manifest."""
    return open_provider(
        ProviderRequest(
            config=provider_config(desired, override),
            root=Path(desired.root),
            env=settings.env,
            parallelism=parallelism or desired.workspace.settings.parallelism,
        )
    )
