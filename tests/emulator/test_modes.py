"""Where Encord's behaviour is unconfirmed, reconciler is correct under either answer.

Each test switches the emulator to the other answer (``PUT /_emulator/modes``) and runs the real CLI (or the
provider) against it: the outcome is the right one, failures name the files and their reason, the journal
records them, and once the server behaves a re-run converges with a last ``plan`` showing no changes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.errors import ProviderResponseError
from reconciler.model import LiveItem
from reconciler.providers.encord import EncordClient, EncordProvider, RetryPolicy
from reconciler.providers.encord import provider as provider_mod
from reconciler.providers.encord.auth import BearerAuth
from reconciler.snapshot import Snapshot
from reconciler.testing import Emulator
from tests.helpers.cli import run
from tests.helpers.states import make_snapshot, uid
from tests.helpers.workspace import HEADER, encord_workspace, file_manifest, write_dir

TOKEN = "modes-token"
ENV = {"ENCORD_API_TOKEN": TOKEN}
PATCH = "PATCH storage/items/patch-bulk"


def cams(n: int = 4, md: dict[str, object] | None = None) -> Snapshot:
    return make_snapshot({"cams": [(f"c{i}.jpg", {"n": i, **(md or {})}) for i in range(n)]})


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(cams(), tokens=[TOKEN]) as emulator:
        yield emulator


@dataclass
class Ws:
    dir: Path
    emu: Emulator

    def cli(self, *args: str) -> tuple[int, str, str]:
        r = run(["-C", str(self.dir), *args], env=ENV)
        return r.code, r.out, r.err

    def journal(self) -> list[dict[str, object]]:
        (path,) = sorted((self.dir / ".reconciler" / "journal").glob("*.jsonl"))[-1:]
        return [json.loads(line) for line in path.read_text().splitlines()]

    def results(self) -> dict[str, tuple[object, object]]:
        return {str(r["uuid"]): (r["status"], r["reason"]) for r in self.journal() if r["record"] == "result"}

    def converges(self) -> None:
        self.emu.set_modes()
        code, out, err = self.cli("apply", "--auto-approve")
        assert (code, err) == (0, ""), out
        code, out, err = self.cli("plan", "--detailed-exitcode")
        assert (code, err) == (0, ""), out
        assert "No changes." in out


def workspace(tmp_path: Path, emu: Emulator, manifest: str) -> Ws:
    d = write_dir(tmp_path / "ws", {"workspace.yaml": encord_workspace(emu.url), "cams.yaml": manifest})
    return Ws(d, emu)


def md_of(emu: Emulator, name: str) -> dict[str, object]:
    return dict(next(i.metadata for i in emu.snapshot().items if i.name == name))


# ---- the modes endpoint ----------------------------------------------------------------------------


def test_modes_endpoint_reads_replaces_and_validates(emu: Emulator) -> None:
    with httpx.Client(base_url=emu.url) as c:
        assert c.get("/_emulator/modes").json() == {
            "patch_merges": False,
            "patch_drop_results": 0,
            "get_bulk_drop_results": 0,
            "refuse_recursive": False,
            "children_in_listings": False,
            "max_body_bytes": None,
            "metadata_as_signed_url": False,
        }
        answer = c.put("/_emulator/modes", json={"patch_merges": True, "max_body_bytes": 100})
        assert answer.status_code == 200
        assert answer.json()["patch_merges"] is True
        assert emu.modes().max_body_bytes == 100
        bad = c.put("/_emulator/modes", json={"patch_merge": True})
        assert bad.status_code == 400
        assert bad.json()["message"].startswith("unknown mode 'patch_merge' (known: children_in_listings, ")
        assert c.put("/_emulator/modes", json={"max_body_bytes": 0}).json() == {
            "message": "max_body_bytes must be a positive integer or null"
        }
        assert c.put("/_emulator/modes", json={"patch_merges": 1}).json() == {
            "message": "patch_merges must be true or false"
        }
        assert emu.modes().max_body_bytes == 100  # a refused PUT changes nothing
        c.put("/_emulator/modes", json={})
        assert emu.modes().max_body_bytes is None


def _api(emu: Emulator) -> httpx.Client:
    return httpx.Client(base_url=emu.url + "/v2/public/", headers={"Authorization": f"Bearer {TOKEN}"})


def test_refuse_recursive_mode_answers_400_like_the_sdk_demands(emu: Emulator) -> None:
    folder = uid("folder:cams")
    emu.set_modes(refuse_recursive=True)
    with _api(emu) as api:
        refused = api.get(f"storage/folders/{folder}/items", params={"isRecursive": "True"})
        assert (refused.status_code, refused.json()) == (
            400,
            {"message": "isRecursive=True requires 'search' or 'itemTypes'"},
        )
        assert api.get(
            f"storage/folders/{folder}/items", params={"isRecursive": "True", "search": "c"}
        ).is_success
        assert api.get(f"storage/folders/{folder}/items", params={"isRecursive": "False"}).is_success


def test_max_body_bytes_mode_answers_413(emu: Emulator) -> None:
    emu.set_modes(max_body_bytes=50)
    with _api(emu) as api:
        answer = api.post("storage/items/get-bulk", json={"itemUuids": [uid("item:cams/c0.jpg")] * 3})
    assert answer.status_code == 413
    assert answer.json()["message"].endswith("is over the limit of 50 bytes")


def test_signed_url_refuses_credentials(emu: Emulator) -> None:
    item = uid("item:cams/c1.jpg")
    url = f"{emu.url}/_emulator/client-metadata/{item}"
    assert httpx.get(url).json() == {"n": 1}
    refused = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 400


# ---- patch-bulk replaces the whole dict (unconfirmed) ----------------------------------------------


def test_patch_answer_leaving_files_out_fails_them_and_a_rerun_converges(
    tmp_path: Path, emu: Emulator
) -> None:
    ws = workspace(tmp_path, emu, file_manifest("cams", "*.jpg", "{tag: t}"))
    emu.set_modes(patch_drop_results=1)
    code, out, err = ws.cli("apply", "--auto-approve")
    reason = (
        "PATCH storage/items/patch-bulk: Encord's answer (200) left this file out, so it may not have been "
        "written; run apply again"
    )
    assert (code, err) == (1, "")
    assert f"  failed: cams/c3.jpg: {reason}\n" in out
    assert "Apply finished with errors: 3 file(s) written, 1 failed." in out
    results = ws.results()
    assert results[uid("item:cams/c3.jpg")] == ("failed", reason)
    assert [results[uid(f"item:cams/c{i}.jpg")] for i in range(3)] == [("written", "")] * 3
    assert md_of(emu, "c3.jpg") == {"n": 3}
    ws.converges()
    assert md_of(emu, "c3.jpg") == {"n": 3, "tag": "t"}


def test_a_merging_server_is_detected_and_named(tmp_path: Path, emu: Emulator) -> None:
    overwrite = HEADER + "kind: FileMetadata\nfolder: cams\nmode: overwrite\nfiles:\n  - glob: 'c[01].jpg'\n" \
        "    metadata: {tag: t}\n"  # fmt: skip
    ws = workspace(tmp_path, emu, overwrite)
    emu.set_modes(patch_merges=True)
    reason = (
        "PATCH storage/items/patch-bulk: Encord kept key(s) that were not sent ('n'): the server merges patches "
        "into the stored metadata instead of replacing it, so keys cannot be removed this way and applying "
        "again would not converge"
    )
    for _ in range(2):  # said again on every run, never a silent "Apply complete"
        code, out, err = ws.cli("apply", "--auto-approve")
        assert (code, err) == (1, "")
        assert f"  failed: cams/c0.jpg: {reason}\n" in out
        assert f"  failed: cams/c1.jpg: {reason}\n" in out
        assert "Apply complete" not in out
        assert ws.results()[uid("item:cams/c0.jpg")] == ("failed", reason)
    ws.converges()
    assert md_of(emu, "c0.jpg") == {"tag": "t"}


def test_a_merging_server_is_fine_for_writes_that_remove_nothing(tmp_path: Path, emu: Emulator) -> None:
    ws = workspace(tmp_path, emu, file_manifest("cams", "*.jpg", "{tag: t}"))
    emu.set_modes(patch_merges=True)
    code, out, err = ws.cli("apply", "--auto-approve")
    assert (code, err) == (0, ""), out
    code, out, _ = ws.cli("plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out


def test_get_bulk_answer_leaving_files_out_fails_the_batch_naming_them(tmp_path: Path, emu: Emulator) -> None:
    ws = workspace(tmp_path, emu, file_manifest("cams", "*.jpg", "{tag: t}"))
    emu.set_modes(get_bulk_drop_results=1)
    code, out, err = ws.cli("apply", "--auto-approve")
    assert (code, err) == (1, "")
    missing = uid("item:cams/c3.jpg")
    assert (
        "reading before write failed: POST storage/items/get-bulk: Encord answered 200 without 1 of the 1 "
        f"requested file(s), twice ({missing}); an incomplete answer, so nothing was concluded about them"
    ) in out
    assert "Apply complete" not in out
    assert all(md_of(emu, f"c{i}.jpg") == {"n": i} for i in range(4))  # nothing was written
    ws.converges()


def test_get_bulk_answer_leaving_files_out_refuses_a_saved_plan(tmp_path: Path, emu: Emulator) -> None:
    ws = workspace(tmp_path, emu, file_manifest("cams", "*.jpg", "{tag: t}"))
    plan = ws.dir / "p.plan"
    assert ws.cli("plan", "--out", str(plan))[0] == 0
    emu.set_modes(get_bulk_drop_results=1)
    code, out, err = ws.cli("apply", str(plan))
    assert (code, err) == (
        1,
        "Error: POST storage/items/get-bulk: Encord answered 200 without 1 of the 1 requested file(s), twice "
        f"({uid('item:cams/c3.jpg')}); an incomplete answer, so nothing was concluded about them\n",
    )
    assert all(md_of(emu, f"c{i}.jpg") == {"n": i} for i in range(4))
    emu.set_modes()
    code, out, err = ws.cli("apply", str(plan))
    assert (code, err) == (0, ""), out
    ws.converges()


# ---- request size ----------------------------------------------------------------------------------


def test_413_halves_the_batch_until_it_fits(tmp_path: Path, emu: Emulator) -> None:
    emu.load(cams(8, {"blob": "x" * 400}))
    ws = workspace(tmp_path, emu, file_manifest("cams", "*.jpg", "{tag: t}"))
    emu.set_modes(max_body_bytes=1200)  # two files' patches fit, eight do not
    emu.reset_counts()
    code, out, err = ws.cli("apply", "--auto-approve")
    assert (code, err) == (0, ""), out
    assert "Apply complete: 8 file(s) written." in out
    # 8 -> 413; 4 + 4 -> 413 each; 2 + 2 + 2 + 2 written: 7 requests.
    assert emu.request_counts()["by_route"][PATCH] == 7
    assert all(md_of(emu, f"c{i}.jpg")["tag"] == "t" for i in range(8))
    code, out, _ = ws.cli("plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out


def test_a_file_too_large_alone_fails_with_the_reason(tmp_path: Path, emu: Emulator) -> None:
    emu.load(cams(2))
    emu.set_modes(max_body_bytes=300)
    ws = workspace(tmp_path, emu, file_manifest("cams", "c1.jpg", "{tag: '" + "y" * 400 + "'}"))
    code, out, err = ws.cli("apply", "--auto-approve")
    assert (code, err) == (1, "")
    assert "  failed: cams/c1.jpg: PATCH storage/items/patch-bulk: request too large (" in out
    assert "the file's metadata alone is too large for Encord" in out
    ws.converges()


def test_patch_bulk_is_split_by_payload_size(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emu.load(cams(10))
    patches = {uid(f"item:cams/c{i}.jpg"): {"blob": "z" * 990} for i in range(10)}
    one = len(json.dumps({"blob": "z" * 990})) + 64  # the metadata's JSON and the entry around it
    monkeypatch.setattr(provider_mod, "PATCH_MAX_BYTES", 3 * one)
    with EncordProvider(emu.url, BearerAuth(TOKEN)) as p:
        emu.reset_counts()
        assert p.patch_items(patches) == dict.fromkeys(patches)
    # at most 3 files of ~1 KB per request: 3 + 3 + 3 + 1
    assert emu.request_counts()["by_route"] == {PATCH: 4}


def test_default_size_cap_and_4096_d_embeddings() -> None:
    rng = random.Random(7)
    one = json.dumps({"clip": [rng.uniform(-1, 1) for _ in range(4096)]})
    assert provider_mod.PATCH_MAX_BYTES == 16 * 1024 * 1024
    assert 80_000_000 < 1000 * len(one) < 90_000_000  # a full 1000-file request would be ~85 MB
    assert provider_mod.PATCH_MAX_BYTES // (len(one) + 64) in range(190, 210)  # about 200 files per request


# ---- listings --------------------------------------------------------------------------------------

RECURSIVE = HEADER + "kind: FileMetadata\nfolder: traffic\nrecursive: true\nfiles:\n  - glob: '**/*.jpg'\n" \
    "    metadata: {tag: r}\n"  # fmt: skip


def test_recursive_manifest_works_on_a_server_refusing_recursive_listings(
    tmp_path: Path, emu: Emulator
) -> None:
    emu.load(
        make_snapshot(
            {"traffic": [("t.jpg", {})], "traffic/cams": [("c.jpg", {})], "traffic/cams/n": [("d.jpg", {})]}
        )
    )
    ws = workspace(tmp_path, emu, RECURSIVE)
    emu.set_modes(refuse_recursive=True)
    code, out, err = ws.cli("plan")
    assert (code, err) == (0, "")
    assert [line.split()[1] for line in out.splitlines() if line.startswith("  ~ ")] == [
        "cams/c.jpg",
        "cams/n/d.jpg",
        "t.jpg",
    ]
    code, out, err = ws.cli("apply", "--auto-approve")
    assert (code, err) == (0, ""), out
    code, out, _ = ws.cli("plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out
    assert emu.modes().refuse_recursive


GROUPS = HEADER + "kind: FileMetadata\nfolder: scans\nchildren: true\nfiles:\n  - glob: '**'\n" \
    "    metadata: {tag: g}\n"  # fmt: skip


def scans() -> Snapshot:
    snap = make_snapshot({"scans": [("a.jpg", {})]})
    folder = snap.folders[0].uuid
    group = uid("item:scans/grp")
    snap.items += [
        LiveItem(group, folder, "grp", "imageGroup", {}),
        LiveItem(uid("item:scans/grp/1"), folder, "1.png", "image", {}, group),
        LiveItem(uid("item:scans/grp/2"), folder, "2.png", "image", {}, group),
    ]
    return snap


@pytest.mark.parametrize("listed_twice", [False, True])
def test_child_items_listed_in_the_folder_too_are_counted_once(
    tmp_path: Path, emu: Emulator, listed_twice: bool
) -> None:
    emu.load(scans())
    emu.set_modes(children_in_listings=listed_twice)
    ws = workspace(tmp_path, emu, GROUPS)
    code, out, err = ws.cli("plan")
    assert (code, err) == (0, "")
    assert [line.split()[1] for line in out.splitlines() if line.startswith("  ~ ")] == [
        "a.jpg",
        "grp",
        "grp/1.png",
        "grp/2.png",
    ]
    assert "files 4 to update" in out
    code, out, err = ws.cli("apply", "--auto-approve")
    assert (code, err) == (0, ""), out
    code, out, _ = ws.cli("plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out


def test_child_items_twice_through_the_provider(emu: Emulator) -> None:
    emu.load(scans())
    emu.set_modes(children_in_listings=True)
    with EncordProvider(emu.url, BearerAuth(TOKEN)) as p:
        folder = p.resolve_folder("scans")
        both = [(x.rel_name, x.item.uuid) for x in p.iter_items(folder, recursive=False, children=True)]
    assert both == [
        ("a.jpg", uid("item:scans/a.jpg")),
        ("grp", uid("item:scans/grp")),
        ("grp/1.png", uid("item:scans/grp/1")),
        ("grp/2.png", uid("item:scans/grp/2")),
    ]


# ---- large metadata through signed URLs ------------------------------------------------------------


def test_metadata_served_through_signed_urls(tmp_path: Path, emu: Emulator) -> None:
    emu.set_modes(metadata_as_signed_url=True)
    ws = workspace(tmp_path, emu, file_manifest("cams", "*.jpg", "{tag: s}"))
    code, out, err = ws.cli("plan")
    assert (code, err) == (0, "")
    assert out.count('+ tag               "s"') == 4
    assert "- n" not in out  # live keys came through the URL: nothing else is planned
    code, out, err = ws.cli("apply", "--auto-approve")
    assert (code, err) == (0, ""), out
    assert md_of(emu, "c2.jpg") == {"n": 2, "tag": "s"}
    code, out, _ = ws.cli("plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out


def test_signed_urls_are_fetched_without_credentials_and_counted(emu: Emulator) -> None:
    emu.set_modes(metadata_as_signed_url=True)
    policy = RetryPolicy(sleep=lambda s: None)
    with EncordProvider(emu.url, BearerAuth(TOKEN), retry=policy) as p:
        got = p.get_items([uid(f"item:cams/c{i}.jpg") for i in range(4)])
        assert [got[uid(f"item:cams/c{i}.jpg")].metadata for i in range(4)] == [{"n": i} for i in range(4)]
        assert p.stats.by_route["GET clientMetadataSignedUrl"] == 4
        listed = p.iter_items(p.resolve_folder("cams"), recursive=False, children=False)
        assert [x.item.metadata for x in listed] == [{"n": i} for i in range(4)]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://example.com/md?sig=secret", "scheme 'http', host 'example.com'"),
        ("ftp://127.0.0.1/md", "scheme 'ftp', host '127.0.0.1'"),
        ("not a url", "scheme '', host ''"),
    ],
)
def test_signed_urls_must_be_https_or_loopback(url: str, shown: str) -> None:
    with (
        EncordClient("http://127.0.0.1:9", BearerAuth(TOKEN)) as client,
        pytest.raises(ProviderResponseError) as info,
    ):
        client.fetch_signed_json(url, "item x: clientMetadataSignedUrl")
    assert str(info.value) == (
        f"item x: clientMetadataSignedUrl: Encord answered a signed URL that is not https:// ({shown}); "
        "plain http:// is fetched only from loopback hosts"
    )
    assert client.stats.by_route == {}


def _echo_patch_bulk(transform: Callable[[dict[str, Any]], dict[str, Any]]) -> httpx.MockTransport:
    """A server answering patch-bulk with each sent dict passed through ``transform``, written compactly."""

    def handler(request: httpx.Request) -> httpx.Response:
        patches = json.loads(request.content)["itemPatches"]
        results = [
            {"uuid": u, "parent": uid("folder:cams"), "name": "x.jpg", "itemType": "image",
             "clientMetadata": json.dumps(transform(p["clientMetadata"]), separators=(",", ":"))}
            for u, p in patches.items()
        ]  # fmt: skip
        return httpx.Response(200, json={"results": results})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("transform", "reason"),
    [
        (lambda md: dict(reversed(md.items())), None),  # other key order and spacing: the same dict
        (lambda md: {**md, "n": 1.0}, None),  # 1.0 is the number 1
        (lambda md: {**md, "n": True}, "key(s) 'n'"),  # but true is not
        (lambda md: {k: v for k, v in md.items() if k != "tag"}, "key(s) 'tag'"),
    ],
)
def test_patch_answers_are_compared_as_json_not_as_text(
    transform: Callable[[dict[str, Any]], dict[str, Any]], reason: str | None
) -> None:
    item = uid("item:cams/c0.jpg")
    with EncordProvider(
        "https://api.encord.com", BearerAuth(TOKEN), transport=_echo_patch_bulk(transform)
    ) as p:
        answer = p.patch_items({item: {"n": 1, "tag": "t"}})[item]
    if reason is None:
        assert answer is None
    else:
        assert answer == (
            f"PATCH storage/items/patch-bulk: Encord answered metadata other than what was sent ({reason}); "
            "the file may not hold what the plan says"
        )
