"""Runner behaviours around locks, canaries and retention, on real MariaDB."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jobd.migrations.fleet import run_migrations
from jobd.migrations.outcome import OutcomeStatus
from jobd.migrations.runner import migrate_tenant
from jobd.migrations.tenants import Tenant

from .conftest import Fleet, connect

pytestmark = pytest.mark.mysql


def test_a_ddl_blocked_by_a_long_transaction_fails_clearly_instead_of_hanging(small_fleet: Fleet) -> None:
    settings = replace(small_fleet.settings, lock_wait_timeout=1)
    database = small_fleet.database("t01")
    before = small_fleet.fingerprint("t01")
    holder = connect(database)
    try:
        holder.begin()
        with holder.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM contacts")  # holds a metadata lock until commit
        outcome = migrate_tenant(settings, Tenant("t01", database))
    finally:
        holder.rollback()
        holder.close()

    assert outcome.status is OutcomeStatus.FAILED
    assert "1205" in (outcome.error or "") and "lock_wait_timeout" in (outcome.error or "")
    assert "nothing was changed" in (outcome.error or "")
    after = small_fleet.fingerprint("t01")
    assert after.pop("jobd_migrations")[0] == 0 and after == before


def test_a_failing_canary_stops_the_run_before_the_other_tenants(small_fleet: Fleet) -> None:
    for tenant in small_fleet.tenants:
        small_fleet.seed_duplicates(tenant)

    summary = run_migrations(small_fleet.settings, canary=1)

    assert summary.stopped_by_canary and len(summary.canaries) == 1
    skipped = [outcome.tenant for outcome in summary.outcomes if outcome.status is OutcomeStatus.SKIPPED]
    assert sorted(skipped + summary.canaries) == small_fleet.tenants
    for tenant in skipped:
        tables = small_fleet.sql(small_fleet.database(tenant), "SHOW TABLES")
        assert ("jobd_migrations",) not in tables  # never touched


def test_old_snapshots_are_pruned_beyond_the_retention_count(small_fleet: Fleet) -> None:
    settings = replace(small_fleet.settings, snapshot_retention=1)
    tenant = Tenant("t01", small_fleet.database("t01"))
    for number in range(3):
        (small_fleet.folder / f"{5 + number:04d}_extra.sql").write_text(f"ALTER TABLE orders ADD COLUMN extra{number} INT NULL;")
        assert migrate_tenant(settings, tenant).status is OutcomeStatus.MIGRATED

    snapshots = [name for name in small_fleet.databases() if name.startswith(tenant.database + "__snap_")]
    assert len(snapshots) == 1
    states = small_fleet.sql(tenant.database, "SELECT snapshot_state FROM jobd_migration_runs ORDER BY started_at")
    assert [state for (state,) in states] == ["pruned", "pruned", "ready"]


def test_a_whole_schema_restore_also_removes_tables_no_understood_statement_named(small_fleet: Fleet) -> None:
    # sqlglot cannot read EXECUTE IMMEDIATE, so the snapshot is the whole
    # schema; the table it creates is named nowhere the plan could see.
    (small_fleet.folder / "0000_sneaky.sql").write_text("EXECUTE IMMEDIATE 'CREATE TABLE sneaky (id INT PRIMARY KEY)';\n")
    small_fleet.seed_duplicates("t01")
    before = small_fleet.fingerprint("t01")

    outcome = migrate_tenant(small_fleet.settings, Tenant("t01", small_fleet.database("t01")))

    assert outcome.status is OutcomeStatus.FAILED and outcome.restored, outcome.error
    after = small_fleet.fingerprint("t01")
    assert after.pop("jobd_migrations")[0] == 0
    assert after == before  # neither sneaky nor audit_log is left behind
    aside = small_fleet.sql(outcome.snapshot_database, "SHOW TABLES LIKE 'failed\\_%'")
    assert any(name.endswith("_sneaky") for (name,) in aside)
