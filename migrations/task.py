"""``jobd.migrate_tenant``: one tenant's migration as a job of the ``migrate`` daemon.

Built in, like shell tasks: ``jobd.inventory`` registers it for the daemon
named by ``[migrations] daemon``, and a job only ever names a tenant, never
SQL or code. The tenant's outcome maps onto the job's fate, so the daemon's
supervision does the rest:

* migrated / up to date: the job succeeds, its result is the outcome;
* busy (another runner holds the tenant's lock): an ordinary failure, retried
  with the daemon's backoff;
* failed / blocked: ``PermanentFailure``, dead at once with the outcome's
  error, because every retry would fail the same way until a person acts.

The outcome is also saved as the job's checkpoint, so a dead job still tells
``jobd migrate`` what happened to its tenant. A job cut short by a killed
worker or master is simply run again: the engine's own recovery (runs
table, snapshots) settles and resumes the tenant.
"""

from __future__ import annotations

from typing import Any

from jobd.config import JobdConfig
from jobd.errors import ConfigError, JobdError, PermanentFailure
from jobd.migrations.outcome import OutcomeStatus, TenantOutcome
from jobd.migrations.settings import SnapshotMode
from jobd.tasks import TaskDefinition, TaskOptions

MIGRATE_TASK = "jobd.migrate_tenant"

_RETRIED = frozenset({OutcomeStatus.BUSY})


class TenantStillBusy(JobdError):
    """Another runner holds the tenant's lock; the job is retried with backoff."""


def migrate_task_definition(config: JobdConfig) -> TaskDefinition:
    """The built-in task a migrate daemon serves: ``{tenant, snapshot_mode, lock_wait}`` → outcome."""
    settings = config.migrations
    if settings is None:
        raise ConfigError(str(config.source), "migrations", "a migrate daemon needs a [migrations] table")

    def migrate_tenant_job(ctx: Any, tenant: str, snapshot_mode: str | None = None, lock_wait: float = 0.0) -> dict[str, Any]:
        # Imported on the first job, not with the inventory: every worker of
        # every daemon builds its inventory through this module, and only a
        # migrate worker needs the engine (and sqlglot, ~0.1 s to import).
        from jobd.migrations.runner import migrate_tenant
        from jobd.migrations.tenants import find_tenant, load_tenants

        mode = SnapshotMode(snapshot_mode) if snapshot_mode else None
        outcome = migrate_tenant(
            settings, find_tenant(load_tenants(settings), tenant), snapshot_mode=mode, lock_wait=lock_wait,
            progress=lambda done, total, message: ctx.progress(done, total, message),
        )
        return settle(ctx, outcome)

    return TaskDefinition(MIGRATE_TASK, migrate_tenant_job, TaskOptions())


def settle(ctx: Any, outcome: TenantOutcome) -> dict[str, Any]:
    """Turn a tenant's outcome into the job's result, retry, or permanent failure."""
    recorded = outcome.to_json()
    ctx.checkpoint({"outcome": recorded})
    if outcome.ok:
        return recorded
    message = outcome.error or outcome.status.value
    if outcome.status in _RETRIED:
        raise TenantStillBusy(message)
    raise PermanentFailure(f"tenant {outcome.tenant} {outcome.status.value}: {message}")
