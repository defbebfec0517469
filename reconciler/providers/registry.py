"""The stores reconciler knows, by name, and everything that depends on which store: parsing ``--provider URL``,
building a config from a Workspace, identities (write, read back, compare, redact) and opening.

Each store is one module defining a :class:`~reconciler.providers.base.StoreKind` (its typed config, identity
and how it opens); :data:`PROVIDERS` names it in one line. Modules are imported on first use, so a command
that never talks to Encord never imports httpx.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path

from reconciler.errors import UsageError
from reconciler.model import ProviderConfig
from reconciler.providers.base import ProviderIdentity, ProviderRequest, StateProvider, StoreKind
from reconciler.redact import redact_url
from reconciler.types import JsonValue

__all__ = [
    "DEFAULT_TYPE",
    "PROVIDERS",
    "ProviderRequest",
    "config_from_json",
    "config_from_workspace",
    "config_to_json",
    "describe",
    "identity_from_json",
    "identity_of",
    "identity_to_json",
    "kind",
    "names",
    "open_provider",
    "parse_provider_url",
    "safe_identity",
    "same_store",
    "workspace_entries",
    "workspace_key_owner",
]

#: The explicit registry: adding a store is one module (its StoreKind) and one line here.
PROVIDERS: dict[str, StoreKind | str] = {
    "sqlite": "reconciler.providers.sqlite:SQLITE",
    "encord": "reconciler.providers.encord.store:ENCORD",
}

#: The store of a Workspace that names no ``provider.type``.
DEFAULT_TYPE = "sqlite"


def names() -> list[str]:
    return sorted(PROVIDERS)


def kind(name: str) -> StoreKind:
    """The store called ``name``. Raises UsageError for a name no module registers."""
    entry = PROVIDERS.get(name)
    if entry is None:
        raise UsageError(f"unknown provider type {name!r} (known: {', '.join(names())})")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        loaded: StoreKind = getattr(importlib.import_module(module), attr)
        PROVIDERS[name] = loaded
        return loaded
    return entry


def _url_forms() -> str:
    forms = [kind(n).url_forms for n in names()]
    return ", ".join(forms[:-1]) + " or " + forms[-1] if len(forms) > 1 else forms[0]


def parse_provider_url(url: str, base: ProviderConfig | None = None) -> ProviderConfig:
    """``NAME:REST`` (``sqlite:PATH``, ``encord:``, ``encord:https://host``) -> that store's config.

    ``base`` is the Workspace's config, whose explicit opt-ins (``allow_insecure_http``) carry over to the
    same store type. Raises UsageError.
    """
    name, sep, rest = url.partition(":")
    if not sep or name not in PROVIDERS:
        raise UsageError(
            f"--provider {redact_url(url)!r}: expected {_url_forms()} (known providers: {', '.join(names())})"
        )
    store = kind(name)
    return store.from_url(rest, base if base is not None and base.type == name else None)


def config_from_workspace(raw: Mapping[str, JsonValue]) -> ProviderConfig:
    """The config a Workspace's ``provider:`` mapping names (its ``type``, default :data:`DEFAULT_TYPE`).

    The mapping is validated elsewhere; an unknown type gives the default store's config (the error is
    reported by the manifest checks).
    """
    name = raw.get("type")
    name = name if isinstance(name, str) and name in PROVIDERS else DEFAULT_TYPE
    return kind(name).from_workspace(raw)


def workspace_key_owner(key: str) -> str | None:
    """The store whose Workspace ``provider:`` key ``key`` is (``None``: no store reads it)."""
    return next((n for n in names() if key in kind(n).workspace_keys), None)


def identity_of(config: ProviderConfig, root: Path) -> ProviderIdentity:
    """The identity a provider opened from ``config`` (relative paths against ``root``) has."""
    return kind(config.type).identity(config, root)


def identity_to_json(identity: ProviderIdentity) -> dict[str, str]:
    """``{"type": ..., "<record_key>": location}``, as plans and journals record it."""
    return {"type": identity.type, kind(identity.type).record_key: identity.location}


def identity_from_json(data: object) -> ProviderIdentity:
    """A recorded identity read back. Raises ValueError with the reason (the caller adds the location)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
        raise ValueError("'provider' must be an object naming a type")
    name = data["type"]
    if name not in PROVIDERS:
        raise ValueError(f"unknown provider type {name!r} (known: {', '.join(names())})")
    key = kind(name).record_key
    location = data.get(key)
    if not isinstance(location, str):
        raise ValueError(f"'provider' of type {name} needs {key!r}")
    return ProviderIdentity(name, location)


def safe_identity(identity: ProviderIdentity) -> ProviderIdentity:
    """The identity with anything secret removed from its location (what plans and journals record)."""
    if identity.type not in PROVIDERS:
        return identity
    return ProviderIdentity(identity.type, kind(identity.type).safe_location(identity.location))


def same_store(a: ProviderIdentity, b: ProviderIdentity) -> bool:
    """Whether two identities name one store (per the store: resolved paths, normalised origins)."""
    if a.type != b.type or a.type not in PROVIDERS:
        return False
    store = kind(a.type)
    return store.same_location(store.safe_location(a.location), store.safe_location(b.location))


def describe(config: ProviderConfig, root: Path) -> str:
    """``type:location`` for messages (never a secret)."""
    return str(safe_identity(identity_of(config, root)))


def config_to_json(config: ProviderConfig) -> dict[str, JsonValue]:
    """``{"type": ..., field: value, ...}``: the config's own fields."""
    out: dict[str, JsonValue] = {"type": config.type}
    for f in dataclasses.fields(config):
        out[f.name] = getattr(config, f.name)
    return out


def config_from_json(data: Mapping[str, JsonValue]) -> ProviderConfig:
    """The config :func:`config_to_json` wrote. Raises ValueError for an unknown type or field."""
    name = data.get("type")
    if not isinstance(name, str) or name not in PROVIDERS:
        raise ValueError(f"unknown provider type {name!r} (known: {', '.join(names())})")
    base = kind(name).from_workspace({})
    fields = {f.name for f in dataclasses.fields(base)}
    extra = sorted(set(data) - fields - {"type"})
    if extra:
        raise ValueError(f"provider {name} has no field(s) {', '.join(extra)}")
    return dataclasses.replace(base, **{k: v for k, v in data.items() if k != "type"})


def workspace_entries(config: ProviderConfig, root: Path, out: Path) -> dict[str, JsonValue]:
    """The Workspace ``provider:`` mapping (``type`` first) that names, from directory ``out``, the store
    ``config`` names from ``root``."""
    return {"type": config.type, **kind(config.type).workspace_entries(config, root, out)}


def open_provider(req: ProviderRequest) -> StateProvider:
    """Open the store ``req.config`` names. Raises UsageError or ProviderError."""
    return kind(req.config.type).open(req)
