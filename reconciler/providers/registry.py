"""Provider name -> factory, and parsing of ``--provider URL`` (``sqlite:PATH``, ``encord:``, ``encord:URL``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import UsageError
from reconciler.model import ProviderConfig
from reconciler.providers.base import StateProvider
from reconciler.redact import redact_url

__all__ = ["DEFAULT_ENCORD_DOMAIN", "PROVIDERS", "ProviderRequest", "open_provider", "parse_provider_url"]

DEFAULT_ENCORD_DOMAIN = "https://api.encord.com"


@dataclass(frozen=True)
class ProviderRequest:
    """Everything a factory needs: the config, the manifest directory, the environment, and parallelism."""

    config: ProviderConfig
    root: Path
    env: Mapping[str, str]
    parallelism: int


def _sqlite(req: ProviderRequest) -> StateProvider:
    from reconciler.providers.sqlite import SqliteProvider

    path = Path(req.config.path or ".reconciler/live.db")
    if not path.is_absolute():
        path = req.root / path
    seed = None
    if req.config.seed:
        seed = Path(req.config.seed)
        if not seed.is_absolute():
            seed = req.root / seed
    return SqliteProvider(path, seed=seed)


def _encord(req: ProviderRequest) -> StateProvider:
    from reconciler.providers.encord.provider import encord_provider_from_config

    return encord_provider_from_config(
        req.config.domain or DEFAULT_ENCORD_DOMAIN,
        req.env,
        parallelism=req.parallelism,
        allow_insecure_http=req.config.allow_insecure_http,
    )


#: The explicit registry: adding a backend is one module and one line here.
PROVIDERS: dict[str, Callable[[ProviderRequest], StateProvider]] = {"sqlite": _sqlite, "encord": _encord}


def parse_provider_url(url: str, base: ProviderConfig | None = None) -> ProviderConfig:
    """``sqlite:PATH`` | ``encord:`` | ``encord:https://host`` -> ProviderConfig. Raises UsageError."""
    kind, sep, rest = url.partition(":")
    if not sep or kind not in PROVIDERS:
        raise UsageError(
            f"--provider {redact_url(url)!r}: expected sqlite:PATH, encord: or encord:https://DOMAIN "
            f"(known providers: {', '.join(sorted(PROVIDERS))})"
        )
    if kind == "sqlite":
        if not rest:
            raise UsageError("--provider sqlite:PATH needs a path")
        return ProviderConfig(type="sqlite", path=str(Path(rest).absolute()))
    domain = rest.rstrip("/") or DEFAULT_ENCORD_DOMAIN
    if not domain.startswith(("https://", "http://")):
        raise UsageError(f"--provider {redact_url(url)!r}: the Encord domain must start with https://")
    insecure = bool(base and base.type == "encord" and base.allow_insecure_http)
    return ProviderConfig(type="encord", domain=domain, allow_insecure_http=insecure)


def open_provider(req: ProviderRequest) -> StateProvider:
    factory = PROVIDERS.get(req.config.type)
    if factory is None:
        raise UsageError(f"unknown provider type {req.config.type!r} (known: {', '.join(sorted(PROVIDERS))})")
    return factory(req)
