"""Apply under injected faults: 2,000 files through the emulator converge; a budget overrun is reported.

Faults come from both sides: the emulator answers 429 (with ``Retry-After``) and 503 or drops the
connection before handling a request; :class:`~tests.hardening.chaos.ChaosTransport` delays requests and
loses answers *after* the server handled them (so retried writes must be idempotent). Assertions are on the
emulator's final state: every file exactly as desired, every foreign key intact.
"""

from __future__ import annotations

import pytest

from reconciler.apply import FileStatus, apply_plan
from reconciler.journal import EntryStatus, JournalWriter, read_journal
from reconciler.plan.planner import make_plan
from reconciler.providers.base import Capabilities
from reconciler.render.text import render_apply_result
from tests.hardening.conftest import Waits, fast_policy
from tests.hardening.data import Scenario, desired_state
from tests.hardening.figures import record

N_FILES = 2000
#: (seed, files per write batch). Encord's batch is 1000 (two write batches for 2,000 files); batches of 100
#: put 20 bulk reads and 20 bulk writes in the line of fire in each run, like an apply of 20,000 files.
FAULT_RUNS = [(11, 1000), (12, 1000), (13, 100), (14, 100), (15, 100), (16, 100)]


@pytest.mark.parametrize(("seed", "batch"), FAULT_RUNS)
def test_apply_of_2000_files_converges_under_10_percent_faults(seed, batch, tmp_path, serve, connect):
    sc = Scenario(N_FILES, n_folders=8, seed=seed)
    emu = serve(sc.snapshot())
    # 10% of API requests fail at the server: 4% 429 (Retry-After: 1), 3% 503, 3% dropped connections.
    emu.set_faults(rate_429=0.04, retry_after_s=1, rate_503=0.03, rate_drop=0.03, seed=seed)
    waits = Waits()
    # Client side: 3% of answers lost after the server handled the request, 5% of requests delayed.
    provider, chaos = connect(emu, fast_policy(waits), rate_lost=0.03, rate_delay=0.05, seed=seed)
    provider.capabilities = Capabilities(max_batch=batch, parallel_writes=True)
    desired = desired_state(sc, tmp_path / "m")

    plan = make_plan(desired, provider)
    assert len(plan.files) == sc.changed_files()
    journal = JournalWriter(tmp_path / "journal", plan)
    try:
        result = apply_plan(plan, provider, parallelism=4, journal=journal)
    finally:
        journal.close()

    assert result.ok, render_apply_result(result)
    final = emu.snapshot()
    emu.set_faults()
    assert sc.wrong_files(final) == []
    assert sc.lost_foreign_keys(final) == 0
    assert not make_plan(desired, provider).has_changes
    assert journal.path is not None
    back = read_journal(journal.path)
    assert back.count(EntryStatus.WRITTEN) == result.count(FileStatus.WRITTEN) == sc.changed_files()
    assert chaos.faults() > 0
    if chaos.seen["429"]:
        assert 1.0 in waits.waits  # Retry-After honoured
    record(
        f"faults-seed{seed}",
        {
            "files": N_FILES,
            "batch": batch,
            "written": result.count(FileStatus.WRITTEN),
            "requests": chaos.seen["requests"],
            "faults": chaos.faults(),
            "by_kind": dict(sorted(chaos.seen.items())),
            "wrong_files": 0,
            "foreign_keys_lost": 0,
        },
    )


def test_faults_beyond_the_retry_budget_are_reported_and_a_rerun_converges(tmp_path, serve, connect):
    sc = Scenario(N_FILES, n_folders=4, seed=3)
    emu = serve(sc.snapshot())
    waits = Waits()
    broken = {"on": True}

    def refuse_later_writes(method: str, path: str, nth: int) -> int | None:
        # The first write batch goes through; every later one is answered 503 until "the outage" ends.
        if broken["on"] and method == "PATCH" and nth > 1:
            return 503
        return None

    provider, chaos = connect(
        emu, fast_policy(waits, max_attempts=3), parallelism=1, rule=refuse_later_writes, rule_retry_after="0"
    )
    desired = desired_state(sc, tmp_path / "m")
    plan = make_plan(desired, provider)
    changed = sc.changed_files()
    journal = JournalWriter(tmp_path / "journal", plan)
    try:
        result = apply_plan(plan, provider, parallelism=1, journal=journal)
    finally:
        journal.close()

    assert not result.ok
    assert result.count(FileStatus.WRITTEN) == 1000
    assert result.count(FileStatus.FAILED) == changed - 1000
    report = render_apply_result(result)
    failed = [r for r in result.files if r.status is FileStatus.FAILED]
    for r in failed:
        assert f"  failed: {r.change.address}: " in report
        assert "still failing after 3 attempt(s)" in r.reason
        assert "503" in r.reason
    assert report.endswith(f"Apply finished with errors: 1,000 file(s) written, {changed - 1000:,} failed.\n")
    assert journal.path is not None
    back = read_journal(journal.path)
    assert back.count(EntryStatus.WRITTEN) == 1000
    assert back.count(EntryStatus.FAILED) == changed - 1000
    # What was written is right, what failed is untouched, and no foreign key was lost either way.
    mid = emu.snapshot()
    assert len(sc.wrong_files(mid)) == changed - 1000
    assert sc.lost_foreign_keys(mid) == 0

    broken["on"] = False  # the outage ends: plan + apply again converges
    again = make_plan(desired, provider)
    assert len(again.files) == changed - 1000
    assert apply_plan(again, provider, parallelism=4).ok
    final = emu.snapshot()
    assert sc.wrong_files(final) == []
    assert sc.lost_foreign_keys(final) == 0
    record(
        "budget-overrun",
        {
            "files": N_FILES,
            "first_run_written": 1000,
            "first_run_failed": changed - 1000,
            "synthetic_503": chaos.seen["synthetic 503"],
            "rerun_converged": True,
        },
    )


# --------------------------------------------------------------------------------------------- the real CLI


def test_cli_apply_beyond_the_retry_budget_exits_1_naming_written_and_failed_files(tmp_path, serve):
    """The real command line with its default retry policy: writes refused past the budget are reported."""
    from reconciler.journal import read_journal
    from tests.hardening.conftest import TOKEN
    from tests.hardening.netutil import RuleProxy
    from tests.helpers.cli import run

    sc = Scenario(N_FILES, n_folders=4, seed=21)
    emu = serve(sc.snapshot())

    def refuse_later_writes(method: str, path: str, nth: int) -> tuple[int, dict[str, str]] | None:
        # 429 with Retry-After: 0 keeps the default policy's six attempts instant.
        return (429, {"Retry-After": "0"}) if method == "PATCH" and nth > 1 else None

    with RuleProxy(emu.url, refuse_later_writes) as proxy:
        root = sc.write_manifests(tmp_path / "m", {"type": "encord", "domain": proxy.url})
        env = {"ENCORD_API_TOKEN": TOKEN}
        r = run(["apply", "--auto-approve", "--parallelism", "1", "-C", str(root)], env=env)
        changed = sc.changed_files()
        assert r.code == 1, r.err
        failed_lines = [line for line in r.out.splitlines() if line.startswith("  failed: ")]
        assert len(failed_lines) == changed - 1000
        reason = (
            f"PATCH storage/items/patch-bulk at {proxy.url} still failing after 6 attempt(s) and 0.0 s of backoff "
            "(last: 429 Too Many Requests); try again later or lower parallelism"
        )
        assert all(line.endswith(reason) and "data/batch-" in line for line in failed_lines)
        assert f"Apply finished with errors: 1,000 file(s) written, {changed - 1000:,} failed.\n" in r.out
        journal_line = [line for line in r.out.splitlines() if line.startswith("Journal: ")]
        assert len(journal_line) == 1
        journal = read_journal(journal_line[0].removeprefix("Journal: "))
        written = {e.address for e in journal.entries if e.status is EntryStatus.WRITTEN}
        failed = {e.address for e in journal.entries if e.status is EntryStatus.FAILED}
        assert len(written) == 1000 and len(failed) == changed - 1000
        assert {line.split(": ")[1] for line in failed_lines} == failed  # the report names exactly these
        mid = emu.snapshot()
        assert len(sc.wrong_files(mid)) == changed - 1000
        assert sc.lost_foreign_keys(mid) == 0

        proxy.enabled = False  # the outage ends
        r = run(["apply", "--auto-approve", "-C", str(root)], env=env)
        assert r.code == 0, r.err
        assert f"Apply complete: {changed - 1000:,} file(s) written.\n" in r.out
        final = emu.snapshot()
        assert sc.wrong_files(final) == [] and sc.lost_foreign_keys(final) == 0
        refused = proxy.refused
    record("budget-cli", {"files": N_FILES, "written": 1000, "failed": changed - 1000, "refused_429": refused,
                          "exit_code": 1, "rerun_converged": True})  # fmt: skip


def test_cli_fault_storm_while_reading_exits_1_with_a_clear_error(tmp_path, serve):
    from tests.hardening.conftest import TOKEN
    from tests.helpers.cli import run

    sc = Scenario(200, n_folders=2, seed=22)
    emu = serve(sc.snapshot())
    emu.set_faults(rate_429=1.0, retry_after_s=0)
    root = sc.write_manifests(tmp_path / "m", {"type": "encord", "domain": emu.url})
    r = run(["apply", "--auto-approve", "-C", str(root)], env={"ENCORD_API_TOKEN": TOKEN})
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"Error: GET organisation/client-metadata-schema-v2 at {emu.url} still failing after 6 attempt(s) and "
        "0.0 s of backoff (last: 429 Too Many Requests); try again later or lower parallelism\n"
    )
    emu.set_faults()
    assert sc.wrong_files(emu.snapshot()) == [f for f in sc.wrong_files(sc.snapshot())]  # nothing written
