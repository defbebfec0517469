"""``python -m reconciler.testing.emulator``: URL on the first line, SIGTERM/SIGINT exit 0, clear refusals."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reconciler.snapshot import write_snapshot
from tests.emulator.conftest import IDS, standard_state

ROOT = Path(__file__).resolve().parents[2]


def spawn(*args: str, module: str = "reconciler.testing.emulator") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    snap = standard_state()
    path = tmp_path / "live.json"
    write_snapshot(path, snap.schema, snap.folders, snap.items)
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_the_state_and_exits_cleanly_on_signal(state_file, sig):
    with spawn("--state", str(state_file), "--token", "tok", "--latency-ms", "5") as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        r = httpx.get(url + f"/v2/public/storage/folders/{IDS.cams}", headers={"Authorization": "Bearer tok"})
        assert (r.status_code, r.json()["name"]) == (200, "cams")
        assert httpx.get(url + "/_emulator/faults").json()["latency_ms"] == 5.0
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    assert (proc.returncode, out, err) == (0, "", "")


def test_jsonl_state_and_package_entry_point(tmp_path):
    snap = standard_state()
    path = tmp_path / "live.jsonl"
    write_snapshot(path, snap.schema, snap.folders, snap.items)
    with spawn("--state", str(path), "--accept-any-key", module="reconciler.testing") as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        doc = httpx.get(url + "/_emulator/state").json()
        assert [i["name"] for i in doc["items"]][:3] == ["b.mp4", "a.jpg", "c.jpg"]
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_bad_state_file_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format_version": "1",\n "folders": [}\n')
    with spawn("--state", str(bad), "--accept-any-key") as proc:
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert out == ""
    assert err == f"error: {bad}:2:14: invalid JSON: Expecting value\n"


def test_missing_state_file(tmp_path):
    with spawn("--state", str(tmp_path / "none.json"), "--token", "t") as proc:
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert err == f"error: {tmp_path / 'none.json'}: cannot read snapshot: No such file or directory\n"


def test_refuses_to_start_without_credentials():
    with spawn() as proc:
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert out == ""
    assert err.startswith(
        "error: no credentials configured; pass --authorized-key PUBHEX, --token T or --accept-any-key"
    )


def test_bad_authorized_key_is_a_usage_error():
    with spawn("--authorized-key", "xyz") as proc:
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert err == "error: not an Ed25519 public key (64 hex characters or an 'ssh-ed25519 ...' line): 'xyz'\n"


def test_port_in_use_is_exit_1():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with spawn("--port", str(port), "--token", "t") as proc:
            _, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


def test_help_lists_the_options():
    with spawn("--help") as proc:
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--state",
        "--authorized-key",
        "--accept-any-key",
        "--token",
        "--latency-ms",
    ):
        assert flag in out


@pytest.mark.parametrize(
    ("host", "warns"),
    [
        ("127.0.0.1", False), ("127.0.0.2", False), ("::1", False), ("[::1]", False), ("localhost", False),
        ("0.0.0.0", True), ("::", True), ("192.168.1.5", True), ("emulator.example", True),
    ],
)  # fmt: skip
def test_binding_beyond_loopback_is_warned_about(host, warns):
    # The tests never bind beyond loopback; the warning itself is what main prints on stderr before serving.
    from reconciler.testing.emulator import bind_warning

    warning = bind_warning(host)
    if warns:
        assert warning == (
            f"warning: the emulator is listening on {host}, not on a loopback address: other machines can "
            "reach it, and it accepts the credentials it was given from anyone (use --host 127.0.0.1 unless "
            "you mean it)"
        )
    else:
        assert warning is None


def test_main_prints_the_warning_before_serving(monkeypatch, capsys):
    # main with a non-loopback --host, its Emulator bound to loopback all the same (tests use loopback only).
    import threading

    from reconciler.testing import emulator as emulator_mod

    real = emulator_mod.Emulator
    monkeypatch.setattr(emulator_mod, "Emulator", lambda **kw: real(**{**kw, "host": "127.0.0.1"}))
    stopper = threading.Timer(1.0, lambda: signal.raise_signal(signal.SIGTERM))
    stopper.start()
    try:
        code = emulator_mod.main(["--host", "0.0.0.0", "--port", "0", "--token", "t"])
    finally:
        stopper.cancel()
    out, err = capsys.readouterr()
    assert code == 0
    warning = emulator_mod.bind_warning("0.0.0.0")
    assert warning is not None and err == warning + "\n"
    assert out.startswith("http://127.0.0.1:")
