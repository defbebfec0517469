"""Run settings, and the one place that decides which store a command, a saved plan or a journal writes to.

The store is always the one the operator names: ``--provider URL``, or else the Workspace document of the
manifest directory (``-C``). A saved plan or a journal only records the store it was made against; it never
chooses one (it travels between CI jobs and may have been edited), so a file recording another store is
refused before a provider is opened, that is before any request is sent or any credential is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError, UsageError
from reconciler.model import DesiredState, ProviderConfig, WorkspaceSettings
from reconciler.progress import Progress, no_progress
from reconciler.providers.base import ProviderIdentity, StateProvider
from reconciler.providers.registry import (
    ProviderRequest,
    identity_of,
    open_provider,
    parse_provider_url,
    safe_identity,
    same_store,
)

__all__ = ["Settings", "Target", "command_target", "provider_for", "recorded_target", "same_provider"]


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
    settings: Settings,
    desired: DesiredState,
    override: str | None,
    parallelism: int | None = None,
    *,
    create: bool = False,
    on_progress: Progress = no_progress,
) -> StateProvider:
    """Open the provider named by ``--provider`` or the Workspace manifest (``create``: commands that write;
    ``on_progress``: see :class:`~reconciler.providers.base.ProviderRequest`)."""
    return open_provider(
        ProviderRequest(
            config=provider_config(desired, override),
            root=Path(desired.root),
            env=settings.env,
            parallelism=parallelism or desired.workspace.settings.parallelism,
            create=create,
            on_progress=on_progress,
        )
    )


def same_provider(a: ProviderIdentity, b: ProviderIdentity) -> bool:
    """Whether two identities name one store (each store decides: resolved paths, normalised origins)."""
    return same_store(a, b)


@dataclass(frozen=True)
class Target:
    """The store a command uses, who named it, and the Workspace settings that go with it.

    ``named_by`` is ``--provider`` or ``the Workspace (<file>)``; ``root`` is the manifest directory
    (relative paths in the Workspace are relative to it), or the current directory without one.
    """

    config: ProviderConfig
    root: Path
    settings: WorkspaceSettings
    named_by: str

    @property
    def identity(self) -> ProviderIdentity:
        return identity_of(self.config, self.root)

    def open(
        self,
        env: Mapping[str, str],
        *,
        create: bool = False,
        seed: bool = True,
        on_progress: Progress = no_progress,
    ) -> StateProvider:
        """Open the store (``create``/``seed``/``on_progress``: see
        :class:`~reconciler.providers.base.ProviderRequest`)."""
        return open_provider(
            ProviderRequest(
                config=self.config,
                root=self.root,
                env=env,
                parallelism=self.settings.parallelism,
                create=create,
                seed=seed,
                on_progress=on_progress,
            )
        )

    def resolve(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.root / p


def command_target(settings: Settings, provider_url: str | None, *, purpose: str) -> Target:
    """The store of a command that needs no manifests but the Workspace: ``--provider``, else the Workspace.

    Only the Workspace document is read (a broken FileMetadata manifest does not matter). With
    ``--provider`` no manifest directory is needed; when there is one, its Workspace's settings are used.
    ``purpose`` completes the message when neither is given (``"apply PLANFILE writes to"``).

    Raises UsageError, or ManifestValidationError for a broken Workspace.
    """
    from reconciler.manifest.workspace import load_workspace

    directory = settings.manifest_dir
    if provider_url:
        if directory.is_dir():
            loaded = load_workspace(directory)
            config = parse_provider_url(provider_url, loaded.workspace.provider)
            return Target(config, loaded.root, loaded.workspace.settings, "--provider")
        return Target(parse_provider_url(provider_url), Path.cwd(), WorkspaceSettings(), "--provider")
    if not directory.is_dir():
        raise UsageError(
            f"manifest directory {str(directory)!r} does not exist: {purpose} the store its Workspace names "
            "(use -C/--dir to point at it, or name the store with --provider URL)"
        )
    loaded = load_workspace(directory)
    named_by = f"the Workspace in {directory / loaded.workspace.location.path}"
    return Target(loaded.workspace.provider, loaded.root, loaded.workspace.settings, named_by)


def recorded_target(
    recorded: ProviderIdentity,
    settings: Settings,
    provider_url: str | None,
    *,
    made: str,
    rule: str,
    error: type[ReconcilerError],
) -> Target:
    """The target for a saved plan or a journal: the operator's store, which must be the one ``recorded``.

    A file recording any other store raises ``error`` (nothing opened, nothing sent):
    ``<made> <recorded> but <who> names <store>; <rule>``.
    """
    purpose = "a saved plan or a journal writes only to"
    target = command_target(settings, provider_url, purpose=purpose)
    if not same_store(recorded, target.identity):
        shown = safe_identity(recorded)
        mine = safe_identity(target.identity)
        raise error(f"{made} {shown} but {target.named_by} names {mine}; {rule}")
    return target
