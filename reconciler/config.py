"""Run settings resolved once from flags, the environment and the Workspace manifest, then passed explicitly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.model import DesiredState, ProviderConfig, WorkspaceSettings
from reconciler.providers.base import ProviderIdentity, StateProvider
from reconciler.providers.registry import ProviderRequest, open_provider, parse_provider_url

__all__ = ["RecordedTarget", "Settings", "other_provider", "provider_for", "recorded_target", "same_provider"]


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


def same_provider(a: ProviderIdentity, b: ProviderIdentity) -> bool:
    """Whether two identities name one store (sqlite paths resolved; domains without credentials)."""
    from reconciler.journal import safe_identity

    a, b = safe_identity(a), safe_identity(b)
    if a.type != b.type:
        return False
    if a.type == "sqlite":
        return Path(a.location).resolve() == Path(b.location).resolve()
    return a.location.rstrip("/") == b.location.rstrip("/")


@dataclass(frozen=True)
class RecordedTarget:
    """Where a saved plan or an apply journal runs: the store it records, and the Workspace settings to use.

    Manifests are not needed; when the manifest directory holds a Workspace, its settings (and its
    ``allow_insecure_http``) are used, else the defaults, relative to the current directory.
    """

    config: ProviderConfig
    root: Path
    settings: WorkspaceSettings
    workspace_provider: ProviderConfig | None

    def open(self, env: Mapping[str, str]) -> StateProvider:
        return open_provider(
            ProviderRequest(
                config=self.config, root=self.root, env=env, parallelism=self.settings.parallelism
            )
        )

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.root / p


def recorded_target(ident: ProviderIdentity, settings: Settings) -> RecordedTarget:
    """The target for a recorded provider identity (a saved plan's or a journal's)."""
    from reconciler.manifest.loader import load_manifests

    root, ws, base = Path.cwd(), WorkspaceSettings(), None
    if settings.manifest_dir.is_dir():
        desired = load_manifests(settings.manifest_dir)
        root, ws, base = Path(desired.root), desired.workspace.settings, desired.workspace.provider
    if ident.type == "sqlite":
        config = ProviderConfig(type="sqlite", path=ident.location)
    else:
        insecure = bool(base and base.type == "encord" and base.allow_insecure_http)
        config = ProviderConfig(type=ident.type, domain=ident.location, allow_insecure_http=insecure)
    return RecordedTarget(config, root, ws, base)


def other_provider(
    ident: ProviderIdentity, provider_url: str | None, target: RecordedTarget
) -> ProviderConfig | None:
    """The store ``--provider`` names when it is not the recorded one (``None``: no flag, or the same store)."""
    if not provider_url:
        return None
    other = parse_provider_url(provider_url, target.workspace_provider)
    loc = (other.path if other.type == "sqlite" else other.domain) or ""
    return None if same_provider(ident, ProviderIdentity(other.type, loc)) else other
