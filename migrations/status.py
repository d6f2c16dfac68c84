"""Read-only views of the fleet: ``status`` and the ``--dry-run`` preview.

Nothing here takes a lock or runs DDL, not even the CREATE of the tracking
table: looking must never change a tenant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from jobd.errors import JobdError
from jobd.migrations.database import lock_name, open_tenant, server_engine
from jobd.migrations.plan import TenantPlan, plan_tenant
from jobd.migrations.runs import RunState, read_runs
from jobd.migrations.settings import MigrationsSettings, SnapshotMode
from jobd.migrations.snapshot import choose_tables
from jobd.migrations.steps import Step, load_steps
from jobd.migrations.tenants import Tenant, load_tenants, select_tenants
from jobd.migrations.touched import touched_tables
from jobd.migrations.tracking import read_applied


@dataclass
class TenantStatus:
    """Where one tenant stands."""

    tenant: str
    database: str
    state: str  # up_to_date | behind | blocked | migrating | refused | unreachable
    current: str | None = None
    pending: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sql: dict[str, list[str]] = field(default_factory=dict)  # dry-run: step label → statements
    snapshot_tables: list[str] = field(default_factory=list)
    snapshot_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class FleetStatus:
    latest: str | None
    tenants: list[TenantStatus]

    def at_each_step(self) -> dict[str, int]:
        """How many tenants are at each step (``(none)`` for fresh tenants)."""
        return dict(Counter(status.current or "(none)" for status in self.tenants if status.state not in ("refused", "unreachable")))

    def to_json(self) -> dict[str, Any]:
        return {
            "latest": self.latest,
            "at_each_step": self.at_each_step(),
            "tenants": [status.to_json() for status in self.tenants],
        }


def inspect_tenant(
    engine: Engine, tenant: Tenant, steps: Sequence[Step], *, snapshot_mode: SnapshotMode | None = None
) -> TenantStatus:
    """The tenant's plan; with ``snapshot_mode``, also the SQL and snapshot a run would use."""
    status = TenantStatus(tenant.name, tenant.database, "up_to_date")
    try:
        with open_tenant(engine, tenant) as session:
            plan: TenantPlan = plan_tenant(steps, read_applied(session))
            status.current = plan.current
            status.pending = [step.label for step in plan.pending]
            status.problems = [drift.describe() for drift in plan.drift]
            unresolved = read_runs(session, states=(RunState.RUNNING, RunState.FAILED))
            holder = session.execute("SELECT IS_USED_LOCK(:name)", name=lock_name(tenant.database)).scalar()
            for run in unresolved:
                if run.state is RunState.FAILED:
                    status.problems.append(f"run {run.run_id[:12]} failed at {run.failed_step} and was not restored")
                elif holder is None:
                    status.problems.append(
                        f"run {run.run_id[:12]} was interrupted"
                        + (f" during {run.step_in_flight} (restored on the next run)" if run.step_in_flight else "")
                    )
            if holder is not None:
                status.state = "migrating"
            elif plan.blocked or any(run.state is RunState.FAILED for run in unresolved):
                status.state = "blocked"
            elif plan.pending:
                status.state = "behind"
            if snapshot_mode is not None and plan.pending:
                status.sql = {step.label: list(step.statements) for step in plan.pending}
                touched = touched_tables(statement for step in plan.pending for statement in step.statements)
                chosen = choose_tables(snapshot_mode, touched, session.base_tables())
                status.snapshot_tables = list(chosen.copy)
                status.snapshot_reason = chosen.reason
    except JobdError as error:
        status.state, status.problems = "unreachable", [str(error)]
    return status


def fleet_status(
    settings: MigrationsSettings,
    *,
    tenant_names: Sequence[str] | None = None,
    snapshot_mode: SnapshotMode | None = None,
) -> FleetStatus:
    """Status of every selected tenant; with ``snapshot_mode`` it is the dry-run preview."""
    steps = load_steps(settings.folder)
    tenant_list = select_tenants(load_tenants(settings), tenant_names)
    statuses = [
        TenantStatus(refused.name, refused.database, "refused", problems=[refused.reason])
        for refused in tenant_list.refused
    ]
    engine = server_engine(settings.server_url())
    try:
        statuses += [
            inspect_tenant(engine, tenant, steps, snapshot_mode=snapshot_mode) for tenant in tenant_list.tenants
        ]
    finally:
        engine.dispose()
    return FleetStatus(steps[-1].label if steps else None, statuses)
