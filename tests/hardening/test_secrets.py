"""Secrets never leave the process: canary credentials are looked for in everything reconciler writes.

A canary Ed25519 key (encrypted with a canary password) and a canary bearer token sit in the environment
while every command runs against the emulator, succeeding and failing, with and without ``--debug``.
None of the canaries (the key's PEM lines, its raw private bytes in hex and base64, the password, the
token) may appear in stdout, stderr, log records (``--debug`` logging, captured at DEBUG), plan files,
journals, snapshots or imported manifests.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from reconciler.testing.emulator import Emulator
from tests.hardening.data import Scenario
from tests.hardening.figures import record
from tests.helpers.cli import Result, run
from tests.helpers.keys import make_ed25519_key

CANARY_PASSWORD = "canary-pw-Qx7Jm2Lr"
CANARY_TOKEN = "canary-token-Zp4Wv9Ks3Hd"
SCENARIO = Scenario(40, n_folders=2, seed=9)


@dataclass(frozen=True)
class Canaries:
    pem: str
    pub: str
    strings: tuple[str, ...]

    def leaks(self, text: str) -> list[str]:
        return [c for c in self.strings if c in text]


@pytest.fixture(scope="module")
def canaries() -> Canaries:
    pem, pub = make_ed25519_key(CANARY_PASSWORD.encode())
    key = load_ssh_private_key(pem.encode(), CANARY_PASSWORD.encode())
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem_lines = [line for line in pem.splitlines() if len(line) >= 16 and "PRIVATE KEY" not in line]
    strings = (
        CANARY_PASSWORD,
        CANARY_TOKEN,
        raw.hex(),
        base64.b64encode(raw).decode().rstrip("="),
        *pem_lines,
    )
    return Canaries(pem, pub, strings)


@pytest.fixture
def emulator(canaries: Canaries) -> Iterator[Emulator]:
    with Emulator(SCENARIO.snapshot(), authorized_keys=[canaries.pub], tokens=[CANARY_TOKEN]) as emu:
        yield emu


def _key_env(canaries: Canaries, **extra: str) -> dict[str, str]:
    return {
        "ENCORD_SSH_KEY": canaries.pem,
        "ENCORD_SSH_KEY_PASSWORD": CANARY_PASSWORD,
        "ENCORD_API_TOKEN": CANARY_TOKEN,
        **extra,
    }


def _scan_files(root: Path, canaries: Canaries) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", "replace")
        hits = canaries.leaks(text)
        if hits:
            found[str(path)] = hits
    return found


def test_no_command_leaks_a_credential(
    canaries: Canaries, emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    work = tmp_path / "work"
    root = SCENARIO.write_manifests(work / "m", {"type": "encord", "domain": emulator.url})
    key_dir = tmp_path / "keys"  # outside the scanned tree: it holds the canary on purpose
    key_dir.mkdir()
    key_file = key_dir / "id_ed25519"
    key_file.write_text(canaries.pem)
    junk_file = key_dir / "junk"
    junk_file.write_text(f"not a key {CANARY_PASSWORD} {CANARY_TOKEN}\n")
    other_pem, _ = make_ed25519_key()
    url = emulator.url
    good = _key_env(canaries)
    token_only = {"ENCORD_API_TOKEN": CANARY_TOKEN}
    journal_dir = root / ".reconciler" / "journal"

    runs: list[tuple[str, list[str], dict[str, str], set[int]]] = [
        ("validate", ["validate"], good, {0}),
        ("plan text", ["plan", "--out", str(work / "plan.json")], good, {0}),
        ("plan json", ["plan", "--format", "json"], good, {0}),
        ("plan markdown", ["plan", "--format", "markdown"], token_only, {0}),
        ("show", ["show", str(work / "plan.json")], good, {0}),
        ("apply saved", ["apply", str(work / "plan.json")], good, {0}),
        ("plan after", ["plan", "--detailed-exitcode"], token_only, {0}),
        ("snapshot", ["snapshot", "--out", str(work / "snap.json")], good, {0}),
        ("snapshot jsonl", ["snapshot", "--out", str(work / "snap.jsonl")], token_only, {0}),
        ("import", ["import", "--schema", "--folder", "data", "--out", str(work / "imported{d}")], good, {0}),
        ("rollback", ["rollback", "<journal>", "--auto-approve", "--allow-destructive"], good, {0}),
        ("apply again", ["apply", "--auto-approve"], token_only, {0}),
        ("fmt", ["fmt", "--check"], good, {0, 1}),
        ("schema-json", ["schema-json"], good, {0}),
        # Failures: wrong password, wrong key, junk key file, refused token, credentials in the URL.
        ("wrong password", ["plan"], _key_env(canaries, ENCORD_SSH_KEY_PASSWORD="x" + CANARY_PASSWORD), {1}),
        ("unauthorised key", ["plan"], {"ENCORD_SSH_KEY": other_pem, "ENCORD_API_TOKEN": CANARY_TOKEN}, {1}),
        ("key file", ["plan"], {"ENCORD_SSH_KEY_FILE": str(key_file), "ENCORD_SSH_KEY_PASSWORD": CANARY_PASSWORD}, {0}),
        ("junk key file", ["plan"], {"ENCORD_SSH_KEY_FILE": str(junk_file)}, {1}),
        ("junk key text", ["plan"], {"ENCORD_SSH_KEY": f"{CANARY_TOKEN}\\n{CANARY_PASSWORD}"}, {1}),
        ("refused token", ["plan"], {"ENCORD_API_TOKEN": CANARY_TOKEN + "x"}, {1}),
        ("token in URL", ["plan", "--provider", url.replace("http://", f"encord:http://u:{CANARY_TOKEN}@")], good, {1}),
        ("password in URL", ["plan", "--provider", f"encord:http://u:{CANARY_PASSWORD}@[::1"], good, {1}),
        ("query in URL", ["plan", "--provider", f"encord:{url}/?token={CANARY_TOKEN}"], good, {1}),
    ]  # fmt: skip
    results: dict[str, Result] = {}
    for debug in (False, True):
        for name, args, env, codes in runs:
            args = [
                str(_latest(journal_dir)) if a == "<journal>" else a.replace("{d}", str(int(debug)))
                for a in args
            ]
            if name in ("apply saved",) and debug:
                continue  # the saved plan was applied; its re-run is covered by "apply again"
            full = [*args, "-C", str(root)] + (["--debug"] if debug else [])
            r = run(full, env=env, cwd=work)
            results[f"{name}{' --debug' if debug else ''}"] = r
            assert r.code in codes, (name, debug, r.code, r.out, r.err)
            assert not canaries.leaks(r.out + r.err), (name, debug, canaries.leaks(r.out + r.err))
    logged = caplog.text + "".join(
        logging.Formatter().formatException(rec.exc_info) for rec in caplog.records if rec.exc_info
    )
    assert caplog.records, "--debug logged nothing: the log check would prove nothing"
    assert not canaries.leaks(logged)
    assert not _scan_files(work, canaries)
    assert (
        list(journal_dir.glob("*.jsonl")) and (work / "snap.json").exists() and (work / "imported1").is_dir()
    )
    record(
        "secrets-inprocess",
        {"commands": len(results), "canaries": len(canaries.strings), "log_records": len(caplog.records),
         "files_scanned": sum(1 for p in work.rglob("*") if p.is_file()), "leaks": 0},
    )  # fmt: skip


def _latest(journal_dir: Path) -> Path:
    journals = sorted(journal_dir.glob("*.jsonl"))
    return journals[0] if journals else journal_dir / "missing.jsonl"


@pytest.mark.parametrize(
    ("args", "env_kind", "code"),
    [
        (["plan", "--debug"], "key", 0),
        (["apply", "--auto-approve", "--debug"], "token", 0),
        (["plan", "--debug"], "bad-password", 1),
        (["plan", "--debug"], "refused-token", 1),
    ],
)
def test_debug_output_of_a_real_process_leaks_nothing(
    args: list[str], env_kind: str, code: int, canaries: Canaries, emulator: Emulator, tmp_path: Path
) -> None:
    # A child process: --debug really configures logging to stderr (in-process, pytest owns the root logger).
    root = SCENARIO.write_manifests(tmp_path / "m", {"type": "encord", "domain": emulator.url})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCORD_")}
    env.update(
        {
            "key": _key_env(canaries),
            "token": {"ENCORD_API_TOKEN": CANARY_TOKEN},
            "bad-password": _key_env(canaries, ENCORD_SSH_KEY_PASSWORD="wrong"),
            "refused-token": {"ENCORD_API_TOKEN": "zz" + CANARY_TOKEN},
        }[env_kind]
    )
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", *args, "-C", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == code, proc.stderr
    assert "DEBUG" in proc.stderr or "INFO" in proc.stderr  # logging really was on
    assert not canaries.leaks(proc.stdout + proc.stderr)
    assert not _scan_files(tmp_path, canaries)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://me:s3cret@api.encord.com/v2?token=abc", "https://***@api.encord.com/v2?***"),
        ("http://u:p@ss@[::1", "http://***@[::1"),
        ("encord:http://u:pw@h/x#frag", "encord:http://***@h/x?***"),
        ("http://127.0.0.1:80/?token=x", "http://127.0.0.1:80/?***"),
        ("https://api.encord.com", "https://api.encord.com"),
        ("sqlite:/tmp/a@b/live.db", "sqlite:/tmp/a@b/live.db"),
        ("u:pw@host", "***@host"),
    ],
)
def test_urls_in_messages_are_redacted(url: str, shown: str) -> None:
    from reconciler.redact import redact_url

    assert redact_url(url) == shown
