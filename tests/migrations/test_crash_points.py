"""A runner killed at EVERY point of a tenant's run: the next run converges (invariant 7).

The timed SIGKILL test samples the promise; these visit each window between
two writes on purpose. ``JOBD_MIGRATE_CRASH_AT`` makes the real ``jobd
migrate`` process ``os._exit`` at a named crash point, which the server sees
exactly like a SIGKILL: the connection drops, the open transaction is rolled
back, the tenant's lock is released.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobd.migrations.crashpoints import CRASH_ENV, CRASH_EXIT_CODE
from jobd.migrations.steps import load_steps

from .conftest import Fleet, build_fleet

pytestmark = pytest.mark.mysql

TWO_STATEMENT_STEP = "0004_score.sql:score"
TWO_STATEMENT_FILE = """-- jobd:step score
ALTER TABLE contacts ADD COLUMN score INT NULL;
ALTER TABLE contacts ADD INDEX contacts_score (score);
"""

# Every place a run writes something, in the order a run reaches them.
FORWARD_POINTS = [
    "locked",
    "run_started",
    "snapshot_taking",
    "snapshot_copied",
    "snapshot_ready",
    "step_started/0001_contacts.sql:add_contacts_phone",
    "statement_done/0002_orders.sql:rename_new_status/0",  # DML, not yet committed
    "statement_done/0003_constraints.sql:create_audit_log/0",  # the CI failure's table
    "step_recorded/0003_constraints.sql:create_audit_log",
    f"statement_done/{TWO_STATEMENT_STEP}/0",  # half-way through a step
    f"statement_done/{TWO_STATEMENT_STEP}/1",  # whole step applied, not recorded
    f"step_recorded/{TWO_STATEMENT_STEP}",
    "run_finished",
]
FINAL_TABLES = {"audit_log", "contacts", "orders", "jobd_migrations", "jobd_migration_runs"}


@pytest.fixture
def crash_fleet(db_prefix: str, tmp_path: Path) -> Fleet:
    """One tenant per forward crash point, plus one that is never crashed (the reference)."""
    fleet = build_fleet(db_prefix, len(FORWARD_POINTS) + 1, tmp_path, extra_config="snapshot_retention = 1\n")
    (fleet.folder / "0004_score.sql").write_text(TWO_STATEMENT_FILE)
    return fleet


def run(fleet: Fleet, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != CRASH_ENV}
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "jobd.cli.migrate", *args, "--json", "--config", str(fleet.config_path)],
        capture_output=True, text=True, timeout=90, env=env,
    )


def crash(fleet: Fleet, tenant: str, point: str) -> None:
    result = run(fleet, "--tenants", tenant, crash_at=f"{tenant}/{point}")
    assert result.returncode == CRASH_EXIT_CODE, f"{point} was never reached: {result.stdout}{result.stderr}"


def outcomes_of(result: subprocess.CompletedProcess[str]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {item["tenant"]: item for item in json.loads(result.stdout)["tenants"]}


def assert_converged(fleet: Fleet, tenant: str, reference: str, why: str) -> None:
    """Every step recorded once, the schema exactly the reference's, the data migrated, nothing left over."""
    expected = [step.label for step in load_steps(fleet.folder)]
    assert fleet.applied(tenant) == expected, why
    tables = {row[0] for row in fleet.sql(fleet.database(tenant), "SHOW TABLES")}
    assert tables == FINAL_TABLES, why
    structure = {name: create for name, (_, create) in fleet.fingerprint(tenant).items() if name != "jobd_migrations"}
    reference_structure = {
        name: create for name, (_, create) in fleet.fingerprint(reference).items() if name != "jobd_migrations"
    }
    strip = lambda text: " ".join(part for part in text.split() if not part.startswith("AUTO_INCREMENT="))  # noqa: E731
    assert {k: strip(v) for k, v in structure.items()} == {k: strip(v) for k, v in reference_structure.items()}, why
    assert fleet.sql(fleet.database(tenant), "SELECT COUNT(*) FROM orders WHERE status = 'new'") == [(0,)], why
    unfinished = fleet.sql(fleet.database(tenant), "SELECT state FROM jobd_migration_runs WHERE state IN ('running', 'failed')")
    assert unfinished == [], why
    leftovers = [name for name in fleet.databases() if name.startswith(fleet.database(tenant) + "__snap_")]
    for snapshot in leftovers:  # whatever a snapshot database holds is complete (never a half copy)
        assert fleet.sql(snapshot, "SHOW TABLES"), (why, snapshot)


def test_a_crash_at_any_point_of_a_run_is_settled_by_the_next_run(crash_fleet: Fleet) -> None:
    fleet = crash_fleet
    crashed = dict(zip(fleet.tenants, FORWARD_POINTS))
    for tenant, point in crashed.items():
        crash(fleet, tenant, point)

    rerun = run(fleet, "--parallel", "4")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    outcomes = outcomes_of(rerun)
    reference = fleet.tenants[-1]
    for tenant, point in crashed.items():
        assert_converged(fleet, tenant, reference, f"{tenant} crashed at {point}")
    # Died inside a step: restored from the snapshot, then migrated afresh.
    assert any("restored after run" in note for note in outcomes["t10"]["notes"])
    assert any("restored after run" in note for note in outcomes["t07"]["notes"])
    # Died between steps: resumed, nothing restored.
    assert any("resumed after run" in note for note in outcomes["t09"]["notes"])
    assert outcomes["t09"]["applied"] == ["0003_constraints.sql:add_contacts_email_unique", TWO_STATEMENT_STEP]


@pytest.mark.parametrize("point", ["recovery_restored", "recovery_marked"])
def test_a_crash_while_settling_a_dead_run_is_settled_by_the_run_after(small_fleet: Fleet, point: str) -> None:
    (small_fleet.folder / "0004_score.sql").write_text(TWO_STATEMENT_FILE)
    crash(small_fleet, "t01", f"statement_done/{TWO_STATEMENT_STEP}/0")
    crash(small_fleet, "t01", point)  # the restore's RENAME is done; its record is not (or only half)

    rerun = run(small_fleet)

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_converged(small_fleet, "t01", "t02", point)
    states = small_fleet.sql(small_fleet.database("t01"), "SELECT state FROM jobd_migration_runs ORDER BY started_at")
    assert [state for (state,) in states] == ["restored", "succeeded"]


def test_a_crash_after_dropping_a_partial_snapshot_is_settled_by_the_run_after(small_fleet: Fleet) -> None:
    crash(small_fleet, "t01", "snapshot_taking")
    crash(small_fleet, "t01", "recovery_dropped_partial")

    rerun = run(small_fleet)

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    states = small_fleet.sql(small_fleet.database("t01"), "SELECT state, snapshot_state FROM jobd_migration_runs ORDER BY started_at")
    assert states == [("interrupted", "pruned"), ("succeeded", "ready")]


@pytest.mark.parametrize("point", ["failure_restored", "failure_marked"])
def test_a_crash_while_restoring_a_failed_step_leaves_the_tenant_as_before(small_fleet: Fleet, point: str) -> None:
    small_fleet.seed_duplicates("t01")
    before = small_fleet.fingerprint("t01")
    crash(small_fleet, "t01", point)

    rerun = run(small_fleet, "--tenants", "t01")

    outcome = outcomes_of(rerun)["t01"]
    assert outcome["status"] == "failed" and outcome["restored"], outcome
    assert "1062" in outcome["error"]
    after = small_fleet.fingerprint("t01")
    assert after.pop("jobd_migrations")[0] == 0 and after == before
    small_fleet.fix_duplicates("t01")
    assert run(small_fleet, "--tenants", "t01").returncode == 0
    assert small_fleet.applied("t01") == [step.label for step in load_steps(small_fleet.folder)]


def test_a_crash_while_pruning_old_snapshots_leaves_the_tenant_migrated(crash_fleet: Fleet) -> None:
    fleet = crash_fleet
    (fleet.folder / "0004_score.sql").rename(fleet.folder / "0004_score.later")
    assert run(fleet, "--tenants", "t01").returncode == 0
    (fleet.folder / "0004_score.later").rename(fleet.folder / "0004_score.sql")
    crash(fleet, "t01", "pruned")  # retention 1: the first run's snapshot is being dropped

    rerun = run(fleet, "--tenants", "t01,t02")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert outcomes_of(rerun)["t01"]["status"] == "up_to_date"
    assert_converged(fleet, "t01", "t02", "pruned")
