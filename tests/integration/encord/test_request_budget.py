"""The request budget: a change to 10,000 files through Encord's API in at most 45 requests (including the
read-back of every written file after the last batch, SPEC §7a)."""

from __future__ import annotations

import pytest

from reconciler.testing.emulator import Emulator
from tests.helpers.cli import run, write
from tests.helpers.states import make_snapshot

TOKEN = "budget-token"
N = 10_000


@pytest.fixture(scope="module")
def emulator():
    snap = make_snapshot(
        {"traffic/cams": [(f"cam{i:05d}.mp4", {"team.b": i}) for i in range(N)]}, item_type="video"
    )
    with Emulator(snap, tokens=[TOKEN]) as emu:
        yield emu


def test_apply_10k_files_within_45_requests_then_plan_reads_only(tmp_path, emulator):
    root = write(
        tmp_path / "m",
        {
            "ws.yaml": "apiVersion: reconciler/v1\nkind: Workspace\nprovider: {type: encord, domain: "
            + emulator.url
            + "}\n",
            "cams.yaml": "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: traffic/cams\n"
            "files:\n  - glob: '*.mp4'\n    metadata: {split: train}\n",
        },
    )
    env = {"ENCORD_API_TOKEN": TOKEN}
    emulator.reset_counts()
    applied = run(["-C", str(root), "apply", "--auto-approve"], env=env)
    assert applied.code == 0, applied.err
    assert "Apply complete: 10,000 file(s) written." in applied.out
    counts = emulator.request_counts()
    assert counts["by_route"] == {
        "GET organisation/client-metadata-schema-v2": 1,
        "GET storage/folders": 1,  # resolve 'traffic' from the top level
        "GET storage/folders/{uuid}/folders": 1,  # then 'cams' inside it
        "GET storage/folders/{uuid}/items": 10,  # listing, 1,000 per page
        # fresh re-read right before each write batch, then the read-back after the last batch
        "POST storage/items/get-bulk": 10 + 10,
        "PATCH storage/items/patch-bulk": 10,  # 1,000 files per write
    }
    assert counts["total"] == 43 <= 45

    emulator.reset_counts()
    again = run(["-C", str(root), "plan", "--detailed-exitcode"], env=env)
    assert again.code == 0, again.out + again.err
    counts = emulator.request_counts()
    assert counts["by_route"]["GET storage/folders/{uuid}/items"] == N // 1000
    assert not any(route.startswith(("PATCH", "POST organisation")) for route in counts["by_route"])
    assert counts["total"] == 13
