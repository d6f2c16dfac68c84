"""Migrate the fleet through a running master: one ``jobd.migrate_tenant`` job per tenant.

When a master answers and runs the ``migrate`` daemon, ``jobd migrate``
hands the tenants to it instead of migrating them in its own process: each
tenant's progress shows in ``jobd top``, and a run cut short by a killed
worker or master resumes like any job. This module submits the jobs (the
largest tenant first; canaries first, alone), watches them in the store, and
turns them back into the same ``FleetSummary`` the foreground runner returns,
so the summary and the exit code do not depend on where the work ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jobd.api import submit
from jobd.config import JobdConfig
from jobd.control import client
from jobd.errors import ConfigError
from jobd.job import Job
from jobd.migrations.database import database_sizes, server_engine
from jobd.migrations.fleet import FleetSummary, order_largest_first, split_canaries
from jobd.migrations.outcome import OutcomeStatus, TenantOutcome
from jobd.migrations.settings import MigrationsSettings, SnapshotMode
from jobd.migrations.task import MIGRATE_TASK
from jobd.migrations.tenants import Tenant, load_tenants, select_tenants
from jobd.states import FINAL, JobState
from jobd.store import Store, open_store

JobUpdate = Callable[[Tenant, Job], None]
"""Called with each tenant's job every time it is looked at (for a live display)."""

DEFAULT_POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class JobMode:
    """Where tenant jobs go: the config, and the daemon that serves them."""

    config: JobdConfig
    settings: MigrationsSettings
    daemon: str


def job_mode(config: JobdConfig, *, note: Callable[[str], None] | None = None) -> JobMode | None:
    """How to run as jobs, or None to migrate in the foreground (no master, or no migrate daemon)."""
    settings = config.migrations
    if settings is None:
        raise ConfigError(str(config.source), "migrations", "missing [migrations] table")
    if not client.is_running(config.socket):
        return None
    if settings.daemon not in config.daemons:
        if note is not None:
            note(
                f"a master is running, but no daemon {settings.daemon!r} is configured "
                f"(add [daemons.{settings.daemon}] to run tenants as jobs): migrating in the foreground"
            )
        return None
    return JobMode(config, settings, settings.daemon)


def outcome_of(tenant: Tenant, job: Job) -> TenantOutcome:
    """What a finished job says happened to its tenant."""
    if job.state is JobState.SUCCEEDED:
        recorded = job.result
    else:  # a failed attempt has no result; the task saved its outcome as the checkpoint
        recorded = job.checkpoint.get("outcome") if isinstance(job.checkpoint, dict) else None
    if isinstance(recorded, dict) and recorded.get("tenant") == tenant.name:
        outcome = TenantOutcome.from_json(recorded)
        if job.state is JobState.DEAD and outcome.ok:  # it got there, then its worker died before reporting
            outcome.notes.append(f"job {job.id} ended dead: {job.error}")
        return outcome
    status = OutcomeStatus.SKIPPED if job.state is JobState.CANCELLED else OutcomeStatus.FAILED
    return TenantOutcome(
        tenant.name, tenant.database, status,
        error=f"job {job.id} ended {job.state}: {job.error or 'no error recorded'}; `jobd migrate` again resumes it",
    )


def run_as_jobs(
    mode: JobMode,
    *,
    tenant_names: Sequence[str] | None = None,
    canary: int = 0,
    snapshot_mode: SnapshotMode | None = None,
    lock_wait: float = 0.0,
    on_update: JobUpdate | None = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
) -> FleetSummary:
    """Submit one job per tenant, wait for every one, and summarise them like the foreground run.

    Waits as long as the jobs take, also across a restart of the master:
    they are durable. Interrupting the wait leaves them running.
    """
    started = time.monotonic()
    settings = mode.settings
    tenant_list = select_tenants(load_tenants(settings), tenant_names)
    outcomes = [
        TenantOutcome(refused.name, refused.database, OutcomeStatus.REFUSED, error=refused.reason)
        for refused in tenant_list.refused
    ]
    engine = server_engine(settings.server_url())
    try:
        unsized = [tenant.database for tenant in tenant_list.tenants if tenant.size_bytes is None]
        ordered = order_largest_first(tenant_list.tenants, database_sizes(engine, unsized))
    finally:
        engine.dispose()
    canaries, rest = split_canaries(ordered, canary)
    args = {"snapshot_mode": (snapshot_mode or settings.snapshot).value, "lock_wait": lock_wait}
    store = open_store(mode.config.store)
    try:
        def run_wave(tenants: list[Tenant]) -> list[TenantOutcome]:
            submitted = {
                submit(mode.daemon, MIGRATE_TASK, {"tenant": tenant.name, **args}, config=mode.config,
                       unique_key=f"{MIGRATE_TASK}:{tenant.database}"): tenant
                for tenant in tenants
            }
            finished = _wait(store, submitted, on_update, poll_interval)
            return [outcome_of(submitted[job.id], job) for job in finished]

        stopped = False
        if canaries:
            canary_outcomes = run_wave(canaries)
            outcomes += canary_outcomes
            stopped = not all(outcome.ok for outcome in canary_outcomes)
        if stopped:
            outcomes += [
                TenantOutcome(tenant.name, tenant.database, OutcomeStatus.SKIPPED, error="not attempted: a canary tenant failed")
                for tenant in rest
            ]
        else:
            outcomes += run_wave(rest)
    finally:
        store.dispose()
    return FleetSummary(outcomes, time.monotonic() - started, [tenant.name for tenant in canaries], stopped)


def _wait(store: Store, submitted: dict[int, Tenant], on_update: JobUpdate | None, poll_interval: float) -> list[Job]:
    """Every submitted job once final, in the order they finished."""
    pending = dict(submitted)
    finished: list[Job] = []
    while pending:
        for job_id, tenant in list(pending.items()):
            job = store.jobs.get(job_id)
            if on_update is not None:
                on_update(tenant, job)
            if job.state in FINAL:
                finished.append(job)
                del pending[job_id]
        if pending:
            time.sleep(poll_interval)
    return finished
