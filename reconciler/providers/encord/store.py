"""The ``encord`` store kind: its config (an API domain), its identity (the API origin) and how it opens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

from reconciler.errors import UsageError
from reconciler.model import ProviderConfig
from reconciler.providers.base import ProviderIdentity, ProviderRequest, StateProvider, StoreKind
from reconciler.providers.encord.client import DEFAULT_DOMAIN, normalize_domain
from reconciler.redact import redact_url
from reconciler.types import JsonValue

__all__ = ["ENCORD", "EncordConfig", "EncordKind"]


@dataclass(frozen=True)
class EncordConfig(ProviderConfig):
    """``type: encord``: the API ``domain``; ``allow_insecure_http`` is the Workspace's explicit opt-in to
    plain ``http://`` off loopback (never given by ``--provider`` or a saved file)."""

    type: ClassVar[str] = "encord"
    domain: str = DEFAULT_DOMAIN
    allow_insecure_http: bool = False


class EncordKind:
    """Encord's public API (or the emulator): a location is the API origin, ``scheme://host[:port]``."""

    name = "encord"
    record_key = "domain"
    workspace_keys = frozenset({"domain", "allow_insecure_http"})
    url_forms = "encord: or encord:https://DOMAIN"

    def from_url(self, rest: str, base: ProviderConfig | None) -> EncordConfig:
        domain = rest.rstrip("/") or DEFAULT_DOMAIN
        if not domain.startswith(("https://", "http://")):
            raise UsageError(
                f"--provider {redact_url('encord:' + rest)!r}: the Encord domain must start with https://"
            )
        insecure = isinstance(base, EncordConfig) and base.allow_insecure_http
        return EncordConfig(domain=domain, allow_insecure_http=insecure)

    def from_workspace(self, raw: Mapping[str, JsonValue]) -> EncordConfig:
        domain = raw.get("domain")
        return EncordConfig(
            domain=domain if isinstance(domain, str) and domain.strip() else DEFAULT_DOMAIN,
            allow_insecure_http=raw.get("allow_insecure_http") is True,
        )

    def identity(self, config: ProviderConfig, root: Path) -> ProviderIdentity:
        assert isinstance(config, EncordConfig)
        try:
            origin = normalize_domain(config.domain, allow_insecure_http=True)
        except UsageError:
            origin = self.safe_location(config.domain.strip().rstrip("/"))
        return ProviderIdentity(self.name, origin)

    def same_location(self, a: str, b: str) -> bool:
        def origin(location: str) -> str:
            try:
                return normalize_domain(location, allow_insecure_http=True)
            except UsageError:
                return location.rstrip("/")

        return origin(a) == origin(b)

    def safe_location(self, location: str) -> str:
        if "://" not in location:
            return location
        parts = urlsplit(location)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))

    def workspace_entries(self, config: ProviderConfig, root: Path, out: Path) -> dict[str, JsonValue]:
        assert isinstance(config, EncordConfig)
        entries: dict[str, JsonValue] = {"domain": config.domain}
        if config.allow_insecure_http:
            entries["allow_insecure_http"] = True
        return entries

    def open(self, request: ProviderRequest) -> StateProvider:
        from reconciler.providers.encord.provider import encord_provider_from_config

        config = request.config
        assert isinstance(config, EncordConfig)
        return encord_provider_from_config(
            config.domain,
            request.env,
            parallelism=request.parallelism,
            allow_insecure_http=config.allow_insecure_http,
        )


ENCORD: StoreKind = EncordKind()
