"""Small input details through the real command line: ASCII-only CSV numbers, names that differ only in
Unicode normalisation, and plan ids that follow the plan's content."""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import pytest

from tests.helpers.cli import run
from tests.helpers.states import make_snapshot
from tests.helpers.workspace import file_manifest, seed_sqlite, sqlite_workspace, write_dir

SCHEMA = "apiVersion: reconciler/v1\nkind: MetadataSchema\nkeys:\n  count: number\n  tag: text\n"


def _ws(tmp_path: Path, names: list[str], files: dict[str, str]) -> Path:
    snap = make_snapshot({"cams": [(n, {}) for n in names]})
    seed_sqlite(tmp_path / "live.db", snap)
    return write_dir(
        tmp_path / "m", {"workspace.yaml": sqlite_workspace("../live.db"), "schema.yaml": SCHEMA, **files}
    )


def _converges(ws: Path) -> None:
    r = run(["-C", str(ws), "apply", "--auto-approve"])
    assert r.code == 0, r.err
    final = run(["-C", str(ws), "plan", "--detailed-exitcode"])
    assert final.code == 0 and "No changes." in final.out, final.out + final.err


CSV_MANIFEST = "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: cams\nsource: rows.csv\n"


@pytest.mark.parametrize("digits", ["١٢", "１２", "12.٥"])
def test_csv_numbers_take_ascii_digits_only(tmp_path: Path, digits: str):
    ws = _ws(tmp_path, ["a.jpg"], {"cams.yaml": CSV_MANIFEST, "rows.csv": f"name,count\na.jpg,{digits}\n"})
    r = run(["-C", str(ws), "validate"])
    assert r.code == 1
    assert r.err == (
        f"Error: rows.csv:2: count: {digits!r} is not a number (write numbers with the digits 0-9)\n"
        "1 problem found; nothing was written.\n"
    )
    (ws / "rows.csv").write_text("name,count\na.jpg,12\n")
    _converges(ws)


NFC = unicodedata.normalize("NFC", "café.jpg")
NFD = unicodedata.normalize("NFD", "café.jpg")


@pytest.mark.parametrize(("on_missing", "code", "prefix"), [("error", 1, "Error"), ("ignore", 0, "Warning")])
def test_a_name_differing_only_in_unicode_normalisation_is_reported(
    tmp_path: Path, on_missing: str, code: int, prefix: str
):
    # Encord has the NFD spelling (as a macOS upload gives); the manifest says NFC: they are different names.
    manifest = (
        "apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: cams\n"
        f"on_missing: {on_missing}\nfiles:\n  - name: {NFC}\n    metadata: {{tag: t}}\n"
    )
    ws = _ws(tmp_path, [NFD, "b.jpg"], {"cams.yaml": manifest})
    r = run(["-C", str(ws), "plan"])
    assert r.code == code
    message = (
        f"{prefix}: cams.yaml:6:11: name {NFC!r} matches no file in folder 'cams', but the folder has "
        "'cafe\\u0301.jpg', which differs from 'caf\\xe9.jpg' only in Unicode normalisation (NFC/NFD); write the "
        "name exactly as Encord has it\n"
    )
    assert message in r.err
    (ws / "cams.yaml").write_text(manifest.replace(NFC, NFD))
    _converges(ws)


def test_two_targeted_plans_of_the_same_files_get_different_ids(tmp_path: Path):
    ws = _ws(
        tmp_path,
        ["a.jpg"],
        {
            "tags.yaml": file_manifest("cams", "*.jpg", "{tag: t}"),
            "counts.yaml": file_manifest("cams", "*.jpg", "{count: 3}"),
        },
    )
    pristine = tmp_path / "pristine.db"
    shutil.copyfile(tmp_path / "live.db", pristine)
    ids = []
    for target in ("tags.yaml", "counts.yaml"):
        shutil.copyfile(pristine, tmp_path / "live.db")
        out = tmp_path / f"{target}.plan.json"
        assert run(["-C", str(ws), "plan", "--target", target, "--out", str(out)]).code == 0
        r = run(["-C", str(ws), "apply", str(out), "--auto-approve"])
        assert r.code == 0, r.err
        journals = sorted((ws / ".reconciler" / "journal").glob("*.jsonl"))
        ids.append(journals[-1].stem.rsplit("-", 1)[-1])
        shutil.rmtree(ws / ".reconciler")
    assert ids[0] != ids[1]
    _converges(ws)
