"""The CLI runs each command with the cyclic collector's thresholds raised, and gives the caller's back."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import cli


def test_a_command_runs_with_the_raised_thresholds_and_restores_the_callers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, ...]] = []

    def fake_main(args: list[str]) -> int:
        seen.append(gc.get_threshold())
        return 0

    before = (500, 7, 9)
    previous = gc.get_threshold()
    gc.set_threshold(*before)
    try:
        monkeypatch.setattr(cli, "_main", fake_main)
        assert cli.main(["--version"]) == 0
        assert seen == [cli.GC_THRESHOLD]
        assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*previous)


def test_the_thresholds_are_restored_when_the_command_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_main(args: list[str]) -> int:
        raise RuntimeError("boom")

    before = (600, 8, 8)
    previous = gc.get_threshold()
    gc.set_threshold(*before)
    try:
        monkeypatch.setattr(cli, "_main", failing_main)
        with pytest.raises(RuntimeError):
            cli.main(["plan"])
        assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*previous)


def test_a_real_command_leaves_the_thresholds_as_they_were() -> None:
    previous = gc.get_threshold()
    assert cli.main(["--version"]) == 0
    assert gc.get_threshold() == previous


def test_the_process_entry_point_exits_with_the_commands_code_after_freezing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def fake_main() -> int:
        calls.append("main")
        return 3

    monkeypatch.setattr(cli, "main", fake_main)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    with pytest.raises(SystemExit) as exc:
        cli.run()
    assert exc.value.code == 3
    assert calls == ["main", "freeze"]


def test_python_dash_m_reconciler_exits_with_the_commands_code(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCORD_")}
    ok = subprocess.run(
        [sys.executable, "-m", "reconciler", "--version"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0 and ok.stdout.startswith("reconciler"), ok
    bad = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "-C", str(tmp_path / "missing")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and bad.stderr.strip(), bad
