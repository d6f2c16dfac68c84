"""``jobd migrate`` as a real process: crashes, concurrent runners, drift, dry runs (acceptance 2, 4–6, 8)."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from jobd.errors import ExitCode
from jobd.migrations.steps import load_steps

from .conftest import Fleet

pytestmark = pytest.mark.mysql

SLOW_STEP = "0004_slow.sql:slow_step"
# Two statements with a pause between them: a kill -9 in the pause leaves
# the tenant half-way through the step, the case snapshots exist for.
SLOW_FILE = """-- jobd:step slow_step
ALTER TABLE contacts ADD COLUMN score INT NULL;
DO SLEEP(0.4);
ALTER TABLE contacts ADD INDEX contacts_score (score);
"""


def add_slow_step(fleet: Fleet) -> None:
    (fleet.folder / "0004_slow.sql").write_text(SLOW_FILE)


def wait_for(condition, *, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def half_migrated_tenant(fleet: Fleet) -> str | None:
    """A tenant whose slow step has run its first statement but is not recorded."""
    rows = fleet.sql(
        None,
        "SELECT TABLE_SCHEMA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA LIKE %s "
        "AND TABLE_NAME = 'contacts' AND COLUMN_NAME = 'score'",
        fleet.prefix.replace("_", r"\_") + "%",
    )
    for (database,) in rows:
        if database.count("__snap_"):
            continue
        in_flight = fleet.sql(database, "SELECT COUNT(*) FROM jobd_migration_runs WHERE step_in_flight = %s", SLOW_STEP)
        if in_flight[0][0]:
            return database
    return None


def died_inside_a_step(fleet: Fleet) -> list[str]:
    """Tenants whose runner died with a step in flight (those the next run must restore)."""
    rows = fleet.sql(
        None,
        "SELECT TABLE_SCHEMA FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE %s AND TABLE_NAME = 'jobd_migration_runs'",
        fleet.prefix.replace("_", r"\_") + "%",
    )
    return sorted(
        database.removeprefix(fleet.prefix) for (database,) in rows
        if fleet.sql(database, "SELECT COUNT(*) FROM jobd_migration_runs WHERE state = 'running' AND step_in_flight IS NOT NULL")[0][0]
    )


def structure(fleet: Fleet, tenant: str) -> dict[str, str]:
    return {
        table: re.sub(r" AUTO_INCREMENT=\d+", "", create)
        for table, (_, create) in fleet.fingerprint(tenant).items()
    }


def test_kill_9_mid_step_then_rerun_converges_every_tenant(fleet: Fleet) -> None:
    # A longer pause than SLOW_FILE's: the kill must land inside the step
    # even when a loaded machine is slow to notice the tenant is half-way.
    (fleet.folder / "0004_slow.sql").write_text(SLOW_FILE.replace("SLEEP(0.4)", "SLEEP(1.5)"))
    runner = fleet.popen_cli("--parallel", "2", capture=False)
    try:
        wait_for(lambda: half_migrated_tenant(fleet), timeout=60, what="a tenant half-way through the slow step")
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
    finally:
        if runner.poll() is None:
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait(timeout=10)
    assert runner.returncode == -signal.SIGKILL
    victims = died_inside_a_step(fleet)  # read after the kill: a dead runner's marker never changes
    assert victims, "the kill landed between steps everywhere"

    # The dead runner's server session finishes its statement before the
    # server notices the client is gone, and holds the tenant's lock until
    # then: wait for it rather than report the tenant busy.
    rerun = fleet.run_cli("--parallel", "8", "--lock-wait", "30", "--json")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    outcomes = {item["tenant"]: item for item in json.loads(rerun.stdout)["tenants"]}
    for victim in victims:
        assert any("restored after run" in note for note in outcomes[victim]["notes"]), outcomes[victim]
        states = fleet.sql(fleet.database(victim), "SELECT state FROM jobd_migration_runs ORDER BY started_at")
        assert [state for (state,) in states] == ["restored", "succeeded"]
    expected = [step.label for step in load_steps(fleet.folder)]
    reference = structure(fleet, fleet.tenants[0])
    for tenant in fleet.tenants:
        assert fleet.applied(tenant) == expected, tenant
        assert structure(fleet, tenant).keys() == reference.keys()
        assert {k: v for k, v in structure(fleet, tenant).items() if k != "jobd_migrations"} == {
            k: v for k, v in reference.items() if k != "jobd_migrations"
        }, tenant


def test_two_runners_at_once_never_migrate_a_tenant_twice(fleet: Fleet) -> None:
    add_slow_step(fleet)
    first = fleet.popen_cli("--parallel", "2", "--json")
    second = fleet.popen_cli("--parallel", "2", "--json")
    outputs = [process.communicate(timeout=100) for process in (first, second)]

    summaries = [json.loads(stdout) for stdout, _ in outputs]
    migrated = [
        {item["tenant"] for item in summary["tenants"] if item["status"] == "migrated"} for summary in summaries
    ]
    assert not migrated[0] & migrated[1]
    assert migrated[0] | migrated[1] == set(fleet.tenants)
    busy = [item for summary in summaries for item in summary["tenants"] if item["status"] == "busy"]
    assert busy and all("another runner is migrating it" in item["error"] for item in busy)
    assert {first.returncode, second.returncode} <= {0, int(ExitCode.FAILURE)}
    for tenant in fleet.tenants:
        runs = fleet.sql(fleet.database(tenant), "SELECT state FROM jobd_migration_runs")
        assert runs == [("succeeded",)], tenant


def test_second_runner_with_lock_wait_waits_instead_of_refusing(small_fleet: Fleet) -> None:
    add_slow_step(small_fleet)
    first = small_fleet.popen_cli("--parallel", "4", "--json")
    second = small_fleet.popen_cli("--parallel", "4", "--json", "--lock-wait", "30")
    outputs = [process.communicate(timeout=100) for process in (first, second)]

    # The first runner may find a tenant the waiting one got to first (busy);
    # the waiting runner never refuses, and each tenant is migrated once.
    assert second.returncode == 0, outputs
    first_statuses, second_statuses = ([item["status"] for item in json.loads(stdout)["tenants"]] for stdout, _ in outputs)
    assert "busy" not in second_statuses
    assert (first_statuses + second_statuses).count("migrated") == len(small_fleet.tenants)


def test_edited_applied_file_blocks_the_tenant_until_repair(small_fleet: Fleet) -> None:
    assert small_fleet.run_cli().returncode == 0
    applied_file = small_fleet.folder / "0001_contacts.sql"
    applied_file.write_text(applied_file.read_text().replace("VARCHAR(32)", "VARCHAR(40)"))
    add_slow_step(small_fleet)  # a new step a blocked tenant must not receive

    blocked = small_fleet.run_cli("--json")

    assert blocked.returncode == int(ExitCode.FAILURE)
    outcomes = {item["tenant"]: item for item in json.loads(blocked.stdout)["tenants"]}
    assert all(item["status"] == "blocked" for item in outcomes.values())
    assert "0001_contacts.sql:add_contacts_phone was edited after it was applied" in outcomes["t01"]["error"]
    assert "repair" in outcomes["t01"]["error"]
    assert all(SLOW_STEP not in small_fleet.applied(tenant) for tenant in small_fleet.tenants)
    status = json.loads(small_fleet.run_cli("status", "--json").stdout)
    assert {item["state"] for item in status["tenants"]} == {"blocked"}

    before = small_fleet.fingerprint("t01")
    repaired = small_fleet.run_cli("repair", "--tenants", "t01")
    assert repaired.returncode == 0 and "accepted the new text" in repaired.stdout
    after = small_fleet.fingerprint("t01")
    assert {k: v for k, v in after.items() if k != "jobd_migrations"} == {
        k: v for k, v in before.items() if k != "jobd_migrations"
    }  # repair touches only the tracking rows

    rerun = small_fleet.run_cli("--json")
    outcomes = {item["tenant"]: item for item in json.loads(rerun.stdout)["tenants"]}
    assert outcomes["t01"]["status"] == "migrated" and outcomes["t01"]["applied"] == [SLOW_STEP]
    assert all(outcomes[tenant]["status"] == "blocked" for tenant in small_fleet.tenants[1:])


def test_dry_run_changes_nothing_and_prints_each_tenants_sql(fleet: Fleet) -> None:
    assert fleet.run_cli("--tenants", "t01,t02").returncode == 0  # some tenants ahead of others
    add_slow_step(fleet)
    databases_before = fleet.databases()
    before = {tenant: fleet.fingerprint(tenant) for tenant in fleet.tenants}
    runs_checksum = lambda: fleet.sql(fleet.database("t01"), "CHECKSUM TABLE jobd_migration_runs")  # noqa: E731
    runs_before = runs_checksum()

    preview = fleet.run_cli("--dry-run")
    preview_json = fleet.run_cli("--dry-run", "--json")

    assert preview.returncode == 0 and preview_json.returncode == 0, preview.stderr
    assert {tenant: fleet.fingerprint(tenant) for tenant in fleet.tenants} == before
    assert fleet.databases() == databases_before  # no snapshot taken
    assert runs_checksum() == runs_before
    assert "ALTER TABLE contacts ADD UNIQUE INDEX contacts_email (email)" in preview.stdout
    assert "nothing was changed" in preview.stdout
    plans = {item["tenant"]: item for item in json.loads(preview_json.stdout)["tenants"]}
    assert plans["t01"]["pending"] == [SLOW_STEP]
    assert len(plans["t03"]["pending"]) == 7 and plans["t03"]["snapshot_tables"] == ["contacts", "orders"]


def test_failed_tenants_give_a_non_zero_exit_and_a_summary_table(small_fleet: Fleet) -> None:
    small_fleet.seed_duplicates("t02")

    result = small_fleet.run_cli()

    assert result.returncode == int(ExitCode.FAILURE)
    assert "failed" in result.stdout and "t02" in result.stdout
    assert "add_contacts_email_unique" in result.stdout and "restored" in result.stdout
    listing = small_fleet.run_cli("snapshots", "--json")
    snapshots = json.loads(listing.stdout)
    assert {item["tenant"] for item in snapshots} == set(small_fleet.tenants)
    [failed] = [item for item in snapshots if item["tenant"] == "t02"]
    assert failed["run_state"] == "restored" and "1062" in failed["error"]


def test_manual_restore_puts_back_the_latest_run(small_fleet: Fleet) -> None:
    before = small_fleet.fingerprint("t01")
    assert small_fleet.run_cli("--tenants", "t01").returncode == 0

    refused = small_fleet.run_cli("restore", "t01")
    restored = small_fleet.run_cli("restore", "t01", "--yes")

    assert refused.returncode == int(ExitCode.BAD_INPUT) and "--yes" in refused.stderr
    assert restored.returncode == 0, restored.stderr
    after = small_fleet.fingerprint("t01")
    assert after.pop("jobd_migrations")[0] == 0
    assert after == before
    again = small_fleet.run_cli("restore", "t01", "--yes")
    assert again.returncode == int(ExitCode.FAILURE) and "no run changed it" in again.stderr
