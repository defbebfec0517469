"""Safe defaults, each verified: TLS verification, no plain http off loopback, confined sources,
bounded YAML aliases, and size caps on manifests, sources, plan files, snapshots and server answers.

Every refusal is a clear one-line error (exit 1) that names the file (and line) or the domain, and comes
fast: nothing is read past its cap.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reconciler.config import Settings, provider_for
from reconciler.manifest import source as source_mod
from reconciler.manifest.loader import load_manifests
from reconciler.plan.planfile import MAX_PLANFILE_BYTES
from reconciler.snapshot import MAX_JSON_SNAPSHOT_BYTES, SnapshotError, read_snapshot
from reconciler.testing.emulator import Emulator
from tests.hardening.conftest import TOKEN
from tests.hardening.data import Scenario
from tests.hardening.netutil import CannedServer, TlsFront, make_ca_and_server_cert
from tests.helpers.cli import run, write

SCENARIO = Scenario(12, n_folders=2, seed=1)
TOKEN_ENV = {"ENCORD_API_TOKEN": TOKEN}


def _sqlite_root(tmp_path: Path) -> Path:
    root = SCENARIO.write_manifests(
        tmp_path / "m", {"type": "sqlite", "path": ".reconciler/live.db", "seed": "seed.json"}
    )
    SCENARIO.write_seed(root / "seed.json")
    return root


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# --------------------------------------------------------------------------------------------- TLS


def test_tls_certificates_are_verified_and_ssl_cert_file_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    with Emulator(SCENARIO.snapshot(), tokens=[TOKEN]) as emu, TlsFront(_port(emu.url), cert, key) as front:
        root = SCENARIO.write_manifests(tmp_path / "m", {"type": "encord", "domain": front.url})
        # A certificate from a CA the system does not trust: refused, with the way out named.
        r = run(["plan", "-C", str(root)], env=TOKEN_ENV)
        assert (r.code, r.out) == (1, "")
        assert r.err == (
            f"Error: cannot reach {front.url}: TLS certificate verification failed "
            "(for a private CA, point SSL_CERT_FILE at its certificate bundle)\n"
        )
        # The same server once SSL_CERT_FILE names the private CA: verified, and it works.
        r = run(["plan", "--detailed-exitcode", "-C", str(root)], env={**TOKEN_ENV, "SSL_CERT_FILE": str(ca)})
        assert r.code == 2, r.err
        assert "files 8 to update" in r.out


# --------------------------------------------------------------------------------------------- plain http


@pytest.mark.parametrize(
    "domain", ["http://example.com", "http://10.1.2.3:8080", "http://127.0.0.1.nip.io", "http://0.0.0.0:80"]
)
def test_plain_http_off_loopback_is_refused(domain: str, tmp_path: Path) -> None:
    root = _sqlite_root(tmp_path)
    r = run(["plan", "--provider", f"encord:{domain}", "-C", str(root)], env=TOKEN_ENV)
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"Error: refusing plain http:// for Encord domain {domain!r}: credentials and metadata would travel "
        "unencrypted; use https:// (http:// is allowed only for loopback hosts such as 127.0.0.1)\n"
    )


def test_plain_http_off_loopback_needs_allow_insecure_http_in_the_workspace(tmp_path: Path) -> None:
    refused = SCENARIO.write_manifests(tmp_path / "a", {"type": "encord", "domain": "http://10.1.2.3"})
    r = run(["plan", "-C", str(refused)], env=TOKEN_ENV)
    assert r.code == 1 and "refusing plain http://" in r.err
    allowed = SCENARIO.write_manifests(
        tmp_path / "b", {"type": "encord", "domain": "http://10.1.2.3", "allow_insecure_http": True}
    )
    # Opening the provider checks the domain (and connects to nothing yet).
    provider = provider_for(Settings(allowed, TOKEN_ENV), load_manifests(allowed), None)
    try:
        assert str(provider.identity) == "encord:http://10.1.2.3"
    finally:
        provider.close()


# --------------------------------------------------------------------------------------------- sources


def _manifest_with_source(root: Path, source: str) -> Path:
    write(
        root,
        {"files/x.yaml": f"apiVersion: reconciler/v1\nkind: FileMetadata\nfolder: data\nsource: {source}\n"},
    )
    return root


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("../outside.jsonl", "source '../outside.jsonl' must stay inside the manifest directory (no '..')"),
        ("data/../../outside.jsonl", "source 'data/../../outside.jsonl' must stay inside the manifest directory (no '..')"),
        ("/etc/outside.jsonl", "source '/etc/outside.jsonl' must be a relative path inside the manifest directory, not an absolute path"),
        ("data/link.jsonl", "source 'data/link.jsonl' resolves outside the manifest directory (through a symbolic link)"),
        ("linked/rows.jsonl", "source 'linked/rows.jsonl' resolves outside the manifest directory (through a symbolic link)"),
    ],
)  # fmt: skip
def test_sources_are_confined_to_the_manifest_directory(source: str, message: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "rows.jsonl").write_text('{"name": "img-000000.jpg", "metadata": {}}\n')
    (tmp_path / "outside.jsonl").write_text('{"name": "img-000000.jpg", "metadata": {}}\n')
    root = _sqlite_root(tmp_path)
    (root / "data" / "link.jsonl").symlink_to(outside / "rows.jsonl")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    _manifest_with_source(root, source)
    r = run(["validate", "-C", str(root)], cwd=root)
    assert r.code == 1
    assert f"Error: files/x.yaml:4:9: {message}\n" in r.err


# --------------------------------------------------------------------------------------------- YAML


def test_billion_laughs_is_refused_fast(tmp_path: Path) -> None:
    lines = ["apiVersion: reconciler/v1", "kind: MetadataSchema", 'a0: &a0 ["lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    lines.append("keys: {boom: *a9}")
    root = _sqlite_root(tmp_path)
    (root / "schema.yaml").write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    r = run(["validate", "-C", str(root)], cwd=root)
    elapsed = time.monotonic() - start
    assert r.code == 1
    assert "aliases (of anchor &a" in r.err and "expand to more than 10,000 nodes" in r.err
    assert r.err.startswith("Error: schema.yaml:")
    assert elapsed < 5


def test_deeply_nested_yaml_is_refused(tmp_path: Path) -> None:
    root = _sqlite_root(tmp_path)
    (root / "deep.yaml").write_text("a: " + "[" * 600 + "]" * 600 + "\n")
    r = run(["validate", "-C", str(root)], cwd=root)
    assert r.code == 1
    assert "Error: deep.yaml" in r.err and "nested too deeply" in r.err


# --------------------------------------------------------------------------------------------- sizes


def _sparse(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of ``size`` bytes that takes no disk space (the caps must trip on the size alone)."""
    with path.open("wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return path


def test_a_manifest_over_10_mib_is_refused(tmp_path: Path) -> None:
    root = _sqlite_root(tmp_path)
    _sparse(root / "big.yaml", 11 * 1024 * 1024, b"apiVersion: reconciler/v1\n")
    r = run(["validate", "-C", str(root)], cwd=root)
    assert r.code == 1
    assert (
        "Error: big.yaml: file is 11.0 MiB; a manifest may be at most 10.0 MiB (put bulk rows in a source: file)"
        in r.err
    )


def test_a_manifest_that_is_a_device_is_refused_not_read_forever(tmp_path: Path) -> None:
    root = _sqlite_root(tmp_path)
    (root / "zero.yaml").symlink_to("/dev/zero")  # out of the repository: refused before it is opened
    os.mkfifo(root / "pipe.yaml")  # inside it, but no regular file
    r = run(["validate", "-C", str(root)], cwd=root)
    assert r.code == 1
    assert (
        "Error: zero.yaml: symbolic link out of the repository that holds the manifest directory; not read\n"
        in r.err
    )
    assert "Error: pipe.yaml: not a regular file (a link to a device, a pipe, or a broken link)\n" in r.err


def test_a_source_line_over_the_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_mod, "MAX_ROW_BYTES", 4096)
    root = _sqlite_root(tmp_path)
    rows = (root / "data" / "batch-000.jsonl").read_text()
    (root / "data" / "batch-000.jsonl").write_text(rows + '{"name": "' + "x" * 10_000 + '"}\n')
    r = run(["plan", "-C", str(root)], cwd=root)
    assert r.code == 1
    assert (
        "Error: data/batch-000.jsonl:7: line is longer than 4,096 bytes (one row per line); not read further\n"
        in r.err
    )


def test_a_plan_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    plan = _sparse(tmp_path / "plan.json", MAX_PLANFILE_BYTES + 1, b"{")
    r = run(["show", str(plan)])
    assert (r.code, r.out) == (1, "")
    assert (
        r.err
        == f"Error: {plan}: plan file is {MAX_PLANFILE_BYTES + 1} bytes, more than the {MAX_PLANFILE_BYTES} allowed\n"
    )


def test_a_json_snapshot_over_the_cap_is_refused(tmp_path: Path) -> None:
    root = _sqlite_root(tmp_path)
    _sparse(root / "seed.json", MAX_JSON_SNAPSHOT_BYTES + 1, b"{")
    r = run(["plan", "-C", str(root)], cwd=root)
    assert r.code == 1
    assert (
        f"seed.json: snapshot is {MAX_JSON_SNAPSHOT_BYTES + 1:,} bytes; a .json snapshot may be at most"
        in r.err
    )


def test_a_jsonl_snapshot_line_over_the_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.snapshot as snapshot_mod

    monkeypatch.setattr(snapshot_mod, "MAX_JSONL_LINE_BYTES", 100)
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"record": "header", "format_version": "1"}\n{"record": "schema", "schema": {"'
        + "k" * 200
        + '": {}}}\n'
    )
    with pytest.raises(SnapshotError) as info:
        read_snapshot(path)
    assert str(info.value) == f"{path}:2: line is longer than 100 characters (one record per line)"


def test_a_server_answer_over_the_cap_is_refused(tmp_path: Path) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 999999999999\r\n\r\n{"
    root = _sqlite_root(tmp_path)
    with CannedServer(reply) as server:
        r = run(["plan", "--provider", f"encord:{server.url}", "-C", str(root)], env=TOKEN_ENV)
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        "Error: GET organisation/client-metadata-schema-v2: Encord's answer is larger than 268,435,456 bytes; "
        f"refusing to read it (is {server.url} the Encord API?)\n"
    )
