"""Operator actions on tenants outside a run: list snapshots, restore by hand, repair.

``repair`` touches only jobd's own rows (tracking checksums, forgotten
steps, failed runs): it is how an operator says "I checked this tenant, its
history is what the folder now says".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobd.migrations.database import open_tenant, server_engine
from jobd.migrations.errors import SnapshotError
from jobd.migrations.plan import plan_tenant
from jobd.migrations.runner import Clock, utc_now
from jobd.migrations.runs import RunState, SnapshotState, finish_run, read_runs, set_snapshot
from jobd.migrations.settings import MigrationsSettings
from jobd.migrations.snapshot import SnapshotPlan, restore_snapshot
from jobd.migrations.retention import prune_snapshots
from jobd.migrations.steps import load_steps
from jobd.migrations.tenants import find_tenant, load_tenants, select_tenants
from jobd.migrations.tracking import forget_step, read_applied, realign_checksum

# Runs whose net effect on the tenant is nil: an earlier snapshot is still valid across them.
_NO_NET_CHANGE = frozenset({RunState.ABORTED, RunState.RESTORED})


@dataclass(frozen=True)
class SnapshotInfo:
    tenant: str
    run_id: str
    started_at: datetime
    run_state: str
    snapshot_state: str
    snapshot_database: str | None
    tables: list[str]
    failed_step: str | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["started_at"] = self.started_at.isoformat()
        return data


@dataclass
class RepairResult:
    tenant: str
    actions: list[str] = field(default_factory=list)


def list_snapshots(settings: MigrationsSettings, *, tenant_names: Sequence[str] | None = None, include_pruned: bool = False) -> list[SnapshotInfo]:
    """Every run that took a snapshot, newest first per tenant, with its failure if any."""
    tenant_list = select_tenants(load_tenants(settings), tenant_names)
    engine = server_engine(settings.server_url())
    found: list[SnapshotInfo] = []
    try:
        for tenant in tenant_list.tenants:
            with open_tenant(engine, tenant) as session:
                for run in read_runs(session):
                    if run.snapshot_state is SnapshotState.NONE:
                        continue
                    if run.snapshot_state is SnapshotState.PRUNED and not include_pruned:
                        continue
                    found.append(SnapshotInfo(
                        tenant.name, run.run_id, run.started_at, run.state.value, run.snapshot_state.value,
                        run.snapshot_database, run.snapshot_tables.get("copy", []), run.failed_step, run.error,
                    ))
    finally:
        engine.dispose()
    return found


def restore_tenant(settings: MigrationsSettings, tenant_name: str, *, run_id: str | None = None, lock_wait: float = 0.0, clock: Clock = utc_now) -> SnapshotInfo:
    """Put back the snapshot of the tenant's latest run that changed it.

    Only that snapshot is safe: an older one would restore some tables to a
    point before later runs while leaving others after them. Rows written
    by the application since the snapshot are lost; the CLI asks first.
    """
    tenant = find_tenant(load_tenants(settings), tenant_name)
    engine = server_engine(settings.server_url())
    try:
        with open_tenant(engine, tenant) as session:
            session.acquire_lock(lock_wait)
            runs = [run for run in read_runs(session) if run.state not in _NO_NET_CHANGE]
            if not runs:
                raise SnapshotError(f"tenant {tenant.name}: no run changed it, nothing to restore")
            latest = runs[0]
            if run_id is not None and not latest.run_id.startswith(run_id):
                raise SnapshotError(
                    f"tenant {tenant.name}: only the snapshot of its latest run ({latest.run_id[:12]}) can be restored"
                )
            if latest.state is RunState.RUNNING:
                raise SnapshotError(f"tenant {tenant.name}: its latest run was interrupted; `jobd migrate` settles it")
            if latest.snapshot_state is not SnapshotState.READY or latest.snapshot_database is None:
                raise SnapshotError(
                    f"tenant {tenant.name}: its latest run {latest.run_id[:12]} has no restorable snapshot "
                    f"(snapshot {latest.snapshot_state.value})"
                )
            plan = SnapshotPlan.from_json(latest.snapshot_tables)
            restore_snapshot(session, latest.snapshot_database, plan)
            set_snapshot(session, latest.run_id, database=latest.snapshot_database, state=SnapshotState.RESTORED)
            finish_run(session, latest, RunState.RESTORED, now=clock(), error="restored by hand (jobd migrate restore)", restored=True)
            return SnapshotInfo(
                tenant.name, latest.run_id, latest.started_at, RunState.RESTORED.value, SnapshotState.RESTORED.value,
                latest.snapshot_database, list(plan.copy), latest.failed_step, latest.error,
            )
    finally:
        engine.dispose()


def repair_tenants(settings: MigrationsSettings, *, tenant_names: Sequence[str] | None = None, lock_wait: float = 0.0, clock: Clock = utc_now) -> list[RepairResult]:
    """Accept the folder as the truth for each tenant's history; touches only jobd's rows."""
    steps = load_steps(settings.folder)
    tenant_list = select_tenants(load_tenants(settings), tenant_names)
    engine = server_engine(settings.server_url())
    results: list[RepairResult] = []
    try:
        for tenant in tenant_list.tenants:
            result = RepairResult(tenant.name)
            with open_tenant(engine, tenant) as session:
                session.acquire_lock(lock_wait)
                plan = plan_tenant(steps, read_applied(session))
                by_key = {step.key: step for step in steps}
                for drift in plan.drift:
                    if drift.problem == "changed":
                        realign_checksum(session, drift.file, drift.tag, by_key[(drift.file, drift.tag)].checksum)
                        result.actions.append(f"accepted the new text of {drift.file}:{drift.tag}")
                    else:
                        forget_step(session, drift.file, drift.tag)
                        result.actions.append(f"forgot {drift.file}:{drift.tag} (no longer in the folder)")
                session.commit()
                for run in read_runs(session, states=(RunState.FAILED,)):
                    finish_run(session, run, RunState.REPAIRED, now=clock(), error=f"{run.error} [repaired by hand]")
                    result.actions.append(f"marked failed run {run.run_id[:12]} as repaired")
            results.append(result)
    finally:
        engine.dispose()
    return results


def prune_all(settings: MigrationsSettings, *, tenant_names: Sequence[str] | None = None, keep: int | None = None) -> list[str]:
    """Apply the retention setting to every tenant now; returns the dropped snapshot databases."""
    tenant_list = select_tenants(load_tenants(settings), tenant_names)
    engine = server_engine(settings.server_url())
    dropped: list[str] = []
    try:
        for tenant in tenant_list.tenants:
            with open_tenant(engine, tenant) as session:
                dropped += prune_snapshots(session, keep=keep if keep is not None else settings.snapshot_retention)
    finally:
        engine.dispose()
    return dropped
