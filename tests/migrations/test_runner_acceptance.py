"""The migration runner across a fleet of real tenant databases (acceptance 1–3, 7)."""

from __future__ import annotations

import pytest

from jobd.migrations.fleet import run_migrations
from jobd.migrations.outcome import OutcomeStatus
from jobd.migrations.runner import migrate_tenant
from jobd.migrations.steps import load_steps
from jobd.migrations.tenants import Tenant

from .conftest import Fleet

pytestmark = pytest.mark.mysql

FAILING = ("t03", "t11", "t19")


def test_six_steps_apply_to_every_tenant_in_parallel_and_tracking_tables_agree(fleet: Fleet) -> None:
    summary = run_migrations(fleet.settings, parallel=4)

    assert summary.ok, [outcome.error for outcome in summary.outcomes if not outcome.ok]
    assert {outcome.tenant for outcome in summary.outcomes} == set(fleet.tenants)
    assert all(outcome.status is OutcomeStatus.MIGRATED for outcome in summary.outcomes)
    expected = [step.label for step in load_steps(fleet.folder)]
    assert len(expected) == 6
    for tenant in fleet.tenants:
        assert fleet.applied(tenant) == expected
    structures = {tenant: {table: create for table, (_, create) in fleet.fingerprint(tenant).items() if table != "jobd_migrations"} for tenant in fleet.tenants}
    reference = structures[fleet.tenants[0]]
    assert all(_without_counters(structure) == _without_counters(reference) for structure in structures.values())


def test_failing_step_restores_those_tenants_exactly_and_the_others_finish(fleet: Fleet) -> None:
    for tenant in FAILING:
        fleet.seed_duplicates(tenant)
    before = {tenant: fleet.fingerprint(tenant) for tenant in FAILING}

    summary = run_migrations(fleet.settings, parallel=4)

    assert not summary.ok
    by_tenant = {outcome.tenant: outcome for outcome in summary.outcomes}
    for tenant in FAILING:
        outcome = by_tenant[tenant]
        assert outcome.status is OutcomeStatus.FAILED and outcome.restored
        assert outcome.failed_step == "0003_constraints.sql:add_contacts_email_unique"
        assert "1062" in (outcome.error or "") and "Duplicate" in (outcome.error or "")
        assert "UNIQUE INDEX contacts_email" in (outcome.failed_statement or "")
        after = fleet.fingerprint(tenant)
        # jobd's tracking table is created before the snapshot; restored, it is empty again.
        assert after.pop("jobd_migrations")[0] == 0
        assert after == before[tenant]
        failure = fleet.sql(fleet.database(tenant), "SELECT state, failed_step, error FROM jobd_migration_runs")
        assert failure == [("restored", outcome.failed_step, failure[0][2])] and "1062" in failure[0][2]
    for tenant in set(fleet.tenants) - set(FAILING):
        assert by_tenant[tenant].status is OutcomeStatus.MIGRATED

    # Acceptance 3: fix the data, re-run: only the three are migrated; the others are not even snapshotted.
    # (That is what makes the re-run quick; a wall-clock comparison here failed on a busy machine.)
    for tenant in FAILING:
        fleet.fix_duplicates(tenant)
    runs_before = {tenant: fleet.sql(fleet.database(tenant), "SELECT COUNT(*) FROM jobd_migration_runs") for tenant in fleet.tenants}
    rerun = run_migrations(fleet.settings, parallel=4)

    assert rerun.ok
    migrated = {outcome.tenant for outcome in rerun.outcomes if outcome.status is OutcomeStatus.MIGRATED}
    assert migrated == set(FAILING)
    assert rerun.count(OutcomeStatus.UP_TO_DATE) == len(fleet.tenants) - len(FAILING)
    up_to_date = [outcome for outcome in rerun.outcomes if outcome.status is OutcomeStatus.UP_TO_DATE]
    assert all(outcome.snapshot_database is None and not outcome.applied for outcome in up_to_date)
    runs_after = {tenant: fleet.sql(fleet.database(tenant), "SELECT COUNT(*) FROM jobd_migration_runs") for tenant in fleet.tenants}
    assert {tenant for tenant in fleet.tenants if runs_after[tenant] != runs_before[tenant]} == set(FAILING)


def test_registry_row_with_an_injection_is_refused_and_nothing_runs_for_it(fleet: Fleet) -> None:
    victim = fleet.database("t01")
    fleet.add_registry_row("x; DROP DATABASE y", victim)
    fleet.add_registry_row("evil", f"{victim}`; DROP DATABASE `{victim}")

    summary = run_migrations(fleet.settings, parallel=4)

    refused = {outcome.tenant: outcome for outcome in summary.outcomes if outcome.status is OutcomeStatus.REFUSED}
    assert set(refused) == {"x; DROP DATABASE y", "evil"}
    assert all("refused" in (outcome.error or "") for outcome in refused.values())
    assert not summary.ok
    migrated = [outcome for outcome in summary.outcomes if outcome.status is OutcomeStatus.MIGRATED]
    assert len(migrated) == len(fleet.tenants)  # the valid ones all ran, t01 exactly once
    assert fleet.applied("t01") == [step.label for step in load_steps(fleet.folder)]


def test_migrate_tenant_reports_progress_for_a_job_task(small_fleet: Fleet) -> None:
    reports: list[tuple[int, int, str]] = []
    tenant = Tenant("t01", small_fleet.database("t01"))

    outcome = migrate_tenant(small_fleet.settings, tenant, progress=lambda *report: reports.append(report))

    assert outcome.status is OutcomeStatus.MIGRATED and len(outcome.applied) == 6
    assert reports[0][:2] == (0, 6) and reports[-1][:2] == (6, 6)
    assert [done for done, _, message in reports if message.startswith("applying")] == list(range(6))
    again = migrate_tenant(small_fleet.settings, tenant)
    assert again.status is OutcomeStatus.UP_TO_DATE and again.applied == []


def _without_counters(structure: dict[str, str]) -> dict[str, str]:
    import re

    return {table: re.sub(r" AUTO_INCREMENT=\d+", "", create) for table, create in structure.items()}
