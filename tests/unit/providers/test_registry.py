"""Store identity belongs to ``reconciler.providers``: one StoreKind per store, named by one registry line.

A toy third store, defined here and registered with one line, gets ``--provider`` parsing, identities
(written, read back, compared, redacted), config JSON and opening without any other module changing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from reconciler.errors import PlanFormatError, UsageError
from reconciler.model import ProviderConfig
from reconciler.plan.codec import plan_from_dict, plan_to_dict
from reconciler.providers import registry
from reconciler.providers.base import ProviderIdentity, ProviderRequest, StateProvider, StoreKind
from reconciler.providers.encord.store import EncordConfig
from reconciler.providers.sqlite import SqliteConfig
from reconciler.types import JsonValue
from tests.helpers.plans import plan_of


@dataclass(frozen=True)
class ToyConfig(ProviderConfig):
    type: ClassVar[str] = "toy"
    bucket: str = "default"


class ToyKind:
    """A store whose location is ``bucket`` (case-insensitive), with a secret after ``#``."""

    name = "toy"
    record_key = "bucket"
    workspace_keys = frozenset({"bucket"})
    url_forms = "toy:BUCKET"

    def from_url(self, rest: str, base: ProviderConfig | None) -> ProviderConfig:
        if not rest:
            raise UsageError("--provider toy:BUCKET needs a bucket")
        return ToyConfig(bucket=rest)

    def from_workspace(self, raw: Mapping[str, JsonValue]) -> ProviderConfig:
        bucket = raw.get("bucket")
        return ToyConfig(bucket=bucket if isinstance(bucket, str) else "default")

    def identity(self, config: ProviderConfig, root: Path) -> ProviderIdentity:
        assert isinstance(config, ToyConfig)
        return ProviderIdentity(self.name, config.bucket)

    def same_location(self, a: str, b: str) -> bool:
        return a.lower() == b.lower()

    def safe_location(self, location: str) -> str:
        return location.partition("#")[0]

    def workspace_entries(self, config: ProviderConfig, root: Path, out: Path) -> dict[str, JsonValue]:
        assert isinstance(config, ToyConfig)
        return {"bucket": config.bucket}

    def open(self, request: ProviderRequest) -> StateProvider:
        raise UsageError(f"the toy store {self.identity(request.config, request.root)} is not real")


TOY: StoreKind = ToyKind()


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(registry.PROVIDERS, "toy", TOY)  # the one registry line
    yield


@pytest.mark.usefixtures("toy")
def test_a_third_store_is_one_module_and_one_registry_line(tmp_path: Path):
    config = registry.parse_provider_url("toy:Photos#s3cret")
    assert config == ToyConfig(bucket="Photos#s3cret")
    ident = registry.identity_of(config, tmp_path)
    assert ident == ProviderIdentity("toy", "Photos#s3cret")
    assert registry.safe_identity(ident) == ProviderIdentity("toy", "Photos")
    assert registry.describe(config, tmp_path) == "toy:Photos"
    assert registry.identity_to_json(ident) == {"type": "toy", "bucket": "Photos#s3cret"}
    assert registry.identity_from_json({"type": "toy", "bucket": "photos"}) == ProviderIdentity(
        "toy", "photos"
    )
    assert registry.same_store(ident, ProviderIdentity("toy", "PHOTOS"))
    assert not registry.same_store(ident, ProviderIdentity("toy", "videos"))
    assert not registry.same_store(ident, ProviderIdentity("sqlite", "Photos"))
    assert registry.config_to_json(config) == {"type": "toy", "bucket": "Photos#s3cret"}
    assert registry.config_from_json({"type": "toy", "bucket": "b"}) == ToyConfig(bucket="b")
    assert registry.config_from_workspace({"type": "toy", "bucket": "w"}) == ToyConfig(bucket="w")
    assert registry.workspace_key_owner("bucket") == "toy"
    assert registry.workspace_entries(config, tmp_path, tmp_path) == {
        "type": "toy",
        "bucket": "Photos#s3cret",
    }
    with pytest.raises(UsageError, match=r"^the toy store toy:Photos#s3cret is not real$"):
        registry.open_provider(ProviderRequest(config, tmp_path, {}, 1))
    with pytest.raises(UsageError) as info:
        registry.parse_provider_url("ftp:x")
    assert str(info.value) == (
        "--provider 'ftp:x': expected encord: or encord:https://DOMAIN, sqlite:PATH or toy:BUCKET "
        "(known providers: encord, sqlite, toy)"
    )


@pytest.mark.usefixtures("toy")
def test_a_plan_records_and_reads_back_a_third_stores_identity():
    plan = plan_of()
    data = plan_to_dict(plan)
    data["provider"] = {"type": "toy", "bucket": "b"}
    assert plan_from_dict(data).provider == ProviderIdentity("toy", "b")
    data["provider"] = {"type": "toy", "path": "b"}
    with pytest.raises(PlanFormatError, match=r"^plan.provider: 'provider' of type toy needs 'bucket'$"):
        plan_from_dict(data)


def test_the_built_in_stores(tmp_path: Path):
    assert registry.parse_provider_url(f"sqlite:{tmp_path}/x.db") == SqliteConfig(path=f"{tmp_path}/x.db")
    assert registry.parse_provider_url("encord:") == EncordConfig()
    insecure = EncordConfig(domain="http://10.0.0.1", allow_insecure_http=True)
    # The Workspace's explicit opt-in carries over to --provider for the same store type only.
    assert registry.parse_provider_url("encord:http://10.0.0.2/", insecure) == EncordConfig(
        "http://10.0.0.2", allow_insecure_http=True
    )
    assert registry.parse_provider_url("encord:http://10.0.0.2", SqliteConfig()) == EncordConfig(
        "http://10.0.0.2"
    )
    assert registry.identity_of(SqliteConfig(path="db/live.db"), tmp_path) == ProviderIdentity(
        "sqlite", str(tmp_path / "db" / "live.db")
    )
    assert registry.identity_of(EncordConfig("HTTPS://API.Encord.com/"), tmp_path) == ProviderIdentity(
        "encord", "https://api.encord.com"
    )
    a = ProviderIdentity("sqlite", str(tmp_path / "a" / ".." / "live.db"))
    assert registry.same_store(a, ProviderIdentity("sqlite", str(tmp_path / "live.db")))
    assert registry.same_store(
        ProviderIdentity("encord", "https://user:pw@api.encord.com/"),
        ProviderIdentity("encord", "https://api.encord.com"),
    )
    assert not registry.same_store(
        ProviderIdentity("encord", "https://api.encord.com"),
        ProviderIdentity("encord", "https://api.us.encord.com"),
    )
    assert registry.config_from_json(
        registry.config_to_json(EncordConfig("https://x.example"))
    ) == EncordConfig("https://x.example")
    with pytest.raises(ValueError, match=r"^provider sqlite has no field\(s\) domain$"):
        registry.config_from_json({"type": "sqlite", "domain": "x"})
    with pytest.raises(ValueError, match=r"^unknown provider type 'toy' \(known: encord, sqlite\)$"):
        registry.identity_from_json({"type": "toy", "bucket": "b"})


def test_no_store_branches_outside_providers():
    """No ``== "sqlite"`` / ``== "encord"`` and no isinstance checks on provider classes in the engine."""
    root = Path(__file__).resolve().parents[3] / "reconciler"
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("providers/"):
            continue
        text = path.read_text()
        for needle in ('== "sqlite"', '== "encord"', '!= "sqlite"', '!= "encord"', "isinstance(provider,"):
            if needle in text:
                offenders.append(f"{rel}: {needle}")
    assert offenders == []
