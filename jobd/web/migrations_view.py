"""The tenant migrations page: where each tenant stands and its recent runs (read-only).

The same reading as ``jobd migrate status`` (``inspect_tenant``: no lock
taken, no DDL, not even the tracking table's CREATE) plus each tenant's
last few rows of the runs table. Without a ``[migrations]`` table in the
config there is nothing to show, and the answer says so.
"""

from __future__ import annotations

from typing import Any

from ..config import JobdConfig
from ..errors import JobdError
from ..migrations.database import open_tenant, server_engine
from ..migrations.runs import RunRecord, read_runs
from ..migrations.status import inspect_tenant
from ..migrations.steps import load_steps
from ..migrations.tenants import load_tenants

RUNS_PER_TENANT = 5


def run_row(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id, "state": run.state.value, "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None, "host": run.host, "pid": run.pid,
        "snapshot_mode": run.snapshot_mode, "snapshot_state": run.snapshot_state.value, "step_in_flight": run.step_in_flight,
        "failed_step": run.failed_step, "error": run.error,
    }


def migrations_report(config: JobdConfig, *, runs_per_tenant: int = RUNS_PER_TENANT) -> dict[str, Any]:
    """``{"configured": False, "message"}``, or the latest step and each tenant's status and last runs."""
    settings = config.migrations
    if settings is None:
        return {"configured": False, "message": "no [migrations] table is configured: there are no tenant migrations to show",
                "latest": None, "tenants": []}
    steps = load_steps(settings.folder)
    tenant_list = load_tenants(settings)
    tenants: list[dict[str, Any]] = [
        {"tenant": refused.name, "database": refused.database, "state": "refused", "problems": [refused.reason], "runs": []}
        for refused in tenant_list.refused
    ]
    engine = server_engine(settings.server_url())
    try:
        for tenant in tenant_list.tenants:
            status = inspect_tenant(engine, tenant, steps).to_json()
            runs: list[dict[str, Any]] = []
            if status["state"] != "unreachable":
                try:
                    with open_tenant(engine, tenant) as session:
                        runs = [run_row(run) for run in read_runs(session)[:runs_per_tenant]]
                except JobdError as error:
                    status["problems"] = [*status["problems"], f"runs unreadable: {error}"]
            status.pop("sql", None)
            tenants.append({**status, "runs": runs})
    finally:
        engine.dispose()
    return {"configured": True, "latest": steps[-1].label if steps else None, "tenants": tenants}
