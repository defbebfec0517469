"""The Encord provider's dataset primitives against the emulator: one v1 call reads a dataset's rows with their
metadata; rows without a backing item are written with the per-row legacy call; answers are checked."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from reconciler.errors import ProviderAuthError, ProviderConflictError, ProviderConnectionError
from reconciler.model import LiveDataRow, LiveDataset
from reconciler.providers.encord import EncordProvider, RetryPolicy, auth_from_env
from reconciler.providers.encord.auth import BearerAuth
from reconciler.testing import Emulator
from tests.emulator.conftest import IDS, TOKEN
from tests.emulator.test_datasets import DS, ORPHAN, with_dataset

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from encord.orm.dataset import DatasetAccessSettings
    from encord.user_client import EncordUserClient


@pytest.fixture
def dsemu(ed_key: tuple[str, str]) -> Iterator[Emulator]:
    with Emulator(with_dataset(), authorized_keys=[ed_key[1]], tokens=[TOKEN]) as emu:
        yield emu


@pytest.fixture(params=["ssh-key", "bearer"])
def provider(
    request: pytest.FixtureRequest, dsemu: Emulator, ed_key: tuple[str, str]
) -> Iterator[EncordProvider]:
    env = {"ENCORD_SSH_KEY": ed_key[0]} if request.param == "ssh-key" else {"ENCORD_API_TOKEN": TOKEN}
    with EncordProvider(dsemu.url, auth_from_env(env)) as p:
        yield p


EXPECTED = LiveDataset(
    DS,
    "cams dataset",
    [
        LiveDataRow("dh-a", "a.jpg", "IMAGE", IDS.a, {}),
        LiveDataRow("dh-b", "b.mp4", "VIDEO", IDS.b, {"capture.weather": "rain", "n": 1}),
        LiveDataRow(ORPHAN, "legacy.png", "IMAGE", None, {"old": True}),
    ],
)


def test_read_dataset_is_one_v1_call(provider: EncordProvider, dsemu: Emulator) -> None:
    dsemu.reset_counts()
    assert provider.read_dataset(DS) == EXPECTED
    assert dsemu.request_counts()["by_route"] == {"POST public dataset GET": 1}
    assert provider.stats.by_route == {"POST public dataset": 1}


def test_backed_rows_are_written_through_the_storage_api(provider: EncordProvider, dsemu: Emulator) -> None:
    assert provider.patch_items({IDS.a: {"k": "storage"}}) == {IDS.a: None}
    assert provider.read_dataset(DS).rows[0].metadata == {"k": "storage"}


def test_rows_without_backing_item_are_written_per_row(provider: EncordProvider, dsemu: Emulator) -> None:
    dsemu.reset_counts()
    assert provider.write_data_rows(DS, {ORPHAN: {"new": 1}}) == {ORPHAN: None}
    assert dsemu.request_counts()["by_route"] == {"POST public datarow POST": 1}
    assert provider.stats.writes == 1
    assert dsemu.snapshot().datasets[0].rows[2].metadata == {"new": 1}


def test_what_reconciler_writes_the_sdk_reads_and_the_reverse(
    provider: EncordProvider, dsemu: Emulator, ed_key: tuple[str, str]
) -> None:
    client = EncordUserClient.create_with_ssh_private_key(ed_key[0], domain=dsemu.url)
    provider.write_data_rows(DS, {ORPHAN: {"by": "reconciler"}})
    provider.patch_items({IDS.b: {"by": "reconciler"}})
    dataset = client.get_dataset(DS, DatasetAccessSettings(fetch_client_metadata=True))
    assert [dict(r.client_metadata or {}) for r in dataset.data_rows] == [
        {},
        {"by": "reconciler"},
        {"by": "reconciler"},
    ]
    row = dataset.list_data_rows(title_eq="a.jpg")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        row.client_metadata = {"by": "sdk"}
        row.save()
    assert provider.read_dataset(DS).rows[0].metadata == {"by": "sdk"}
    assert provider.get_items([IDS.a])[IDS.a].metadata == {"by": "sdk"}


def test_unknown_dataset_and_row(provider: EncordProvider) -> None:
    with pytest.raises(ProviderConflictError) as info:
        provider.read_dataset("no-such")
    assert str(info.value) == (
        "v1 dataset GET (dataset no-such): no such, or no access to, the dataset or data row "
        "(AUTHORISATION_ERROR): dataset 'no-such' does not exist or no access to it"
    )
    assert provider.write_data_rows(DS, {"nope": {}}) == {
        "nope": "v1 datarow POST (dataset 5a1f0c3e-0000-4000-8000-00000000d5e7): no such, or no access to, the "
        "dataset or data row (RESOURCE_NOT_FOUND_ERROR): no data row 'nope' in dataset "
        "'5a1f0c3e-0000-4000-8000-00000000d5e7'"
    }


def test_refused_credentials(dsemu: Emulator) -> None:
    with EncordProvider(dsemu.url, BearerAuth("wrong")) as p, pytest.raises(ProviderAuthError) as info:
        p.read_dataset(DS)
    assert str(info.value).startswith(
        "Encord refused the credentials (AUTHENTICATION_ERROR) at http://127.0.0.1:"
    )
    with EncordProvider(dsemu.url, BearerAuth("wrong")) as p, pytest.raises(ProviderAuthError):
        p.write_data_rows(DS, {ORPHAN: {}})


def test_a_merging_v1_write_is_detected(provider: EncordProvider, dsemu: Emulator) -> None:
    dsemu.set_modes(patch_merges=True)
    assert provider.write_data_rows(DS, {ORPHAN: {"new": 1}}) == {
        ORPHAN: "v1 datarow " + ORPHAN + ": Encord kept key(s) that were not sent ('old'): the server merges "
        "patches into the stored metadata instead of replacing it, so keys cannot be removed this way and "
        "applying again would not converge"
    }
    dsemu.set_modes()
    assert provider.write_data_rows(DS, {ORPHAN: {"new": 1}}) == {ORPHAN: None}
    assert provider.read_dataset(DS).rows[2].metadata == {"new": 1}


def test_v1_calls_are_retried_and_faulted_like_v2(dsemu: Emulator) -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(sleep=sleeps.append, max_attempts=3, base_delay=0.01)
    with EncordProvider(dsemu.url, BearerAuth(TOKEN), retry=policy) as p:
        dsemu.set_faults(rate_503=1.0)
        with pytest.raises(ProviderConnectionError) as info:
            p.read_dataset(DS)
        assert "v1 dataset GET (dataset " in str(info.value)
        assert "still failing after 3 attempt(s)" in str(info.value)
        assert dsemu.request_counts()["by_route"]["POST public dataset GET"] == 3
        assert len(sleeps) == 2
        dsemu.set_faults()
        assert p.read_dataset(DS) == EXPECTED
