"""Migrate ONE tenant end to end: lock, check, snapshot, apply, record, restore on failure.

``migrate_tenant`` is the unit both the foreground runner (``fleet``) and a
``migrate`` daemon's job task call. It never raises for a tenant-level
problem: every outcome, good or bad, comes back as a ``TenantOutcome`` so
one tenant's failure never stops the others.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pymysql
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from jobd.errors import JobdError
from jobd.migrations.crashpoints import crash_point
from jobd.migrations.database import TenantConnection, open_tenant, server_engine
from jobd.migrations.errors import SnapshotError, TenantBlocked, TenantBusy
from jobd.migrations.outcome import OutcomeStatus, TenantOutcome
from jobd.migrations.plan import TenantPlan, plan_tenant
from jobd.migrations.retention import prune_snapshots
from jobd.migrations.runs import (
    RUNS_DDL,
    RUNS_TABLE,
    RunRecord,
    RunState,
    SnapshotState,
    finish_run,
    read_runs,
    set_in_flight,
    set_snapshot,
    start_run,
)
from jobd.migrations.settings import MigrationsSettings, SnapshotMode
from jobd.migrations.snapshot import (
    SnapshotPlan,
    check_no_foreign_keys,
    choose_tables,
    drop_snapshot,
    restore_snapshot,
    snapshot_database_name,
    snapshot_restored,
    take_snapshot,
)
from jobd.migrations.steps import Step, load_steps
from jobd.migrations.tenants import Tenant
from jobd.migrations.touched import touched_tables
from jobd.migrations.tracking import TRACKING_DDL, TRACKING_TABLE, read_applied, record_step

ProgressCallback = Callable[[int, int, str], None]
"""``(done_steps, total_steps, message)``: the shape a job task's progress takes."""

Clock = Callable[[], datetime]

LOCK_WAIT_TIMEOUT_ERROR = 1205


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def describe_database_error(error: BaseException, *, lock_wait_timeout: int | None = None) -> str:
    """A one-line description of a driver error, with a hint where one helps."""
    original = error.orig if isinstance(error, DBAPIError) else error
    args: tuple[object, ...] = tuple(getattr(original, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        code, message = args[0], args[1]
        text = f"MariaDB error {code}: {message}"
        if code == LOCK_WAIT_TIMEOUT_ERROR:
            text += (
                f" — the statement waited {lock_wait_timeout or '?'} s for a table lock held by another "
                "session (a long transaction?); end it or raise migrations.lock_wait_timeout"
            )
        return text
    return f"{type(original).__name__}: {original}"


def migrate_tenant(
    settings: MigrationsSettings,
    tenant: Tenant,
    *,
    snapshot_mode: SnapshotMode | None = None,
    progress: ProgressCallback | None = None,
    steps: Sequence[Step] | None = None,
    engine: Engine | None = None,
    lock_wait: float = 0.0,
    clock: Clock = utc_now,
) -> TenantOutcome:
    """Bring one tenant to the folder's last step, or leave it exactly as it was.

    ``lock_wait`` is how long to wait for another runner's lock on this
    tenant (0: refuse at once with BUSY). ``steps`` and ``engine`` let a
    caller that migrates many tenants parse the folder and connect once.
    """
    started = time.monotonic()
    mode = snapshot_mode or settings.snapshot
    outcome = TenantOutcome(tenant.name, tenant.database, OutcomeStatus.UP_TO_DATE)
    report = progress or (lambda done, total, message: None)
    own_engine = engine is None
    active_engine = engine if engine is not None else server_engine(settings.server_url())
    try:
        all_steps = list(steps) if steps is not None else load_steps(settings.folder)
        with open_tenant(active_engine, tenant, lock_wait_timeout=settings.lock_wait_timeout) as session:
            session.acquire_lock(lock_wait)
            _create_jobd_tables(session)
            crash_point(tenant.name, "locked")
            _recover_previous_runs(session, outcome, clock)
            plan = plan_tenant(all_steps, read_applied(session))
            outcome.pending = [step.label for step in plan.pending]
            outcome.current = plan.current
            if plan.blocked:
                problems = "; ".join(drift.describe() for drift in plan.drift)
                raise TenantBlocked(
                    f"tenant {tenant.name}: {problems}. Restore the file, or check the tenant and run "
                    f"`jobd migrate repair --tenants {tenant.name}` to accept the new text"
                )
            if not plan.pending:
                report(0, 0, "up to date")
                return outcome
            _apply(session, settings, plan, mode, outcome, report, clock)
            if outcome.status is OutcomeStatus.MIGRATED:
                prune_snapshots(session, keep=settings.snapshot_retention)
    except TenantBusy as error:
        outcome.status, outcome.error = OutcomeStatus.BUSY, str(error)
    except TenantBlocked as error:
        outcome.status, outcome.error = OutcomeStatus.BLOCKED, str(error)
    except JobdError as error:
        outcome.status, outcome.error = OutcomeStatus.FAILED, str(error)
    except (DBAPIError, pymysql.err.MySQLError) as error:
        outcome.status = OutcomeStatus.FAILED
        outcome.error = describe_database_error(error, lock_wait_timeout=settings.lock_wait_timeout)
    finally:
        outcome.seconds = time.monotonic() - started
        if own_engine:
            active_engine.dispose()
    return outcome


def _create_jobd_tables(session: TenantConnection) -> None:
    """Create the tracking and runs tables on a tenant's first run only.

    ``CREATE TABLE IF NOT EXISTS`` still takes a metadata lock and a round
    trip per table; on a fleet that is mostly up to date, looking first is
    cheaper.
    """
    existing = set(session.base_tables())
    if TRACKING_TABLE not in existing:
        session.execute(TRACKING_DDL)
    if RUNS_TABLE not in existing:
        session.execute(RUNS_DDL)
    session.commit()


def _apply(
    session: TenantConnection,
    settings: MigrationsSettings,
    plan: TenantPlan,
    mode: SnapshotMode,
    outcome: TenantOutcome,
    report: ProgressCallback,
    clock: Clock,
) -> None:
    total = len(plan.pending)
    touched = touched_tables(statement for step in plan.pending for statement in step.statements)
    snapshot_plan = choose_tables(mode, touched, session.base_tables())
    if mode is not SnapshotMode.NONE:
        check_no_foreign_keys(session, snapshot_plan.copy + snapshot_plan.absent)
    run_id = uuid.uuid4().hex
    outcome.run_id = run_id
    start_run(session, run_id=run_id, now=clock(), snapshot_mode=mode.value)
    name = session.tenant.name
    crash_point(name, "run_started")
    snapshot_database: str | None = None
    if mode is not SnapshotMode.NONE:
        snapshot_database = snapshot_database_name(session.tenant.database, run_id)
        report(0, total, f"snapshot of {len(snapshot_plan.copy)} table(s): {snapshot_plan.reason}")
        set_snapshot(session, run_id, database=snapshot_database, state=SnapshotState.TAKING, tables=snapshot_plan.as_json())
        crash_point(name, "snapshot_taking")
        try:
            take_snapshot(session, snapshot_database, snapshot_plan.copy)
        except (DBAPIError, pymysql.err.MySQLError) as error:
            session.rollback()
            drop_snapshot(session, snapshot_database)
            set_snapshot(session, run_id, database=snapshot_database, state=SnapshotState.PRUNED)
            message = f"snapshot failed, nothing was changed: {describe_database_error(error)}"
            finish_run(session, run_id, RunState.ABORTED, now=clock(), error=message)
            raise SnapshotError(f"tenant {session.tenant.name}: {message}") from None
        crash_point(name, "snapshot_copied")
        set_snapshot(session, run_id, database=snapshot_database, state=SnapshotState.READY)
        crash_point(name, "snapshot_ready")
        outcome.snapshot_database = snapshot_database
    for done, step in enumerate(plan.pending):
        report(done, total, f"applying {step.label}")
        set_in_flight(session, run_id, step.label)
        crash_point(name, "step_started", step.label)
        step_started = time.monotonic()
        for position, statement in enumerate(step.statements):
            try:
                session.run_raw(statement)
            except (DBAPIError, pymysql.err.MySQLError) as error:
                # MariaDB's DDL is atomic per statement: if the very first
                # statement of the run failed, nothing changed and nothing
                # needs restoring (a restore would contend for the same locks).
                untouched = done == 0 and position == 0
                _fail(session, settings, run_id, None if untouched else snapshot_database, snapshot_plan,
                      step, statement, error, outcome, clock, untouched=untouched)
                if outcome.restored or untouched:
                    outcome.current = plan.current
                report(done, total, f"failed at {step.label}")
                return
            crash_point(name, "statement_done", step.label, str(position))
        duration_ms = int((time.monotonic() - step_started) * 1000)
        # Recorded in one transaction with clearing the in-flight marker:
        # a crash leaves either both (step done) or neither (step in flight).
        record_step(session, step, run_id=run_id, applied_at=clock(), duration_ms=duration_ms)
        set_in_flight(session, run_id, None, commit=False)
        session.commit()
        crash_point(name, "step_recorded", step.label)
        outcome.applied.append(step.label)
        outcome.current = step.label
    finish_run(session, run_id, RunState.SUCCEEDED, now=clock())
    crash_point(name, "run_finished")
    outcome.status = OutcomeStatus.MIGRATED
    outcome.pending = []
    report(total, total, f"at {outcome.current}")


def _fail(
    session: TenantConnection,
    settings: MigrationsSettings,
    run_id: str,
    snapshot_database: str | None,
    snapshot_plan: SnapshotPlan,
    step: Step,
    statement: str,
    error: BaseException,
    outcome: TenantOutcome,
    clock: Clock,
    *,
    untouched: bool = False,
) -> None:
    """Record the failing step and put the tenant back as it was before the run."""
    session.rollback()
    message = describe_database_error(error, lock_wait_timeout=settings.lock_wait_timeout)
    outcome.status = OutcomeStatus.FAILED
    outcome.failed_step, outcome.failed_statement = step.label, statement
    if untouched:
        outcome.error = f"{message}; nothing was changed (it was the run's first statement)"
        finish_run(session, run_id, RunState.ABORTED, now=clock(), failed_step=step.label, failed_statement=statement, error=message)
        return
    if snapshot_database is None:
        outcome.current = None  # unknown: the step may be half-applied
        outcome.error = f"{message} (no snapshot: the tenant is blocked until `jobd migrate repair`)"
        finish_run(session, run_id, RunState.FAILED, now=clock(), failed_step=step.label, failed_statement=statement, error=message)
        return
    try:
        restore_snapshot(session, snapshot_database, snapshot_plan)
    except (DBAPIError, pymysql.err.MySQLError, SnapshotError) as restore_error:
        restore_message = describe_database_error(restore_error) if not isinstance(restore_error, SnapshotError) else str(restore_error)
        outcome.error = (
            f"{message}; restore FAILED too ({restore_message}): run `jobd migrate restore "
            f"{session.tenant.name}` once the cause is fixed"
        )
        finish_run(session, run_id, RunState.FAILED, now=clock(), failed_step=step.label, failed_statement=statement, error=outcome.error)
        return
    crash_point(session.tenant.name, "failure_restored")
    set_snapshot(session, run_id, database=snapshot_database, state=SnapshotState.RESTORED)
    crash_point(session.tenant.name, "failure_marked")
    finish_run(
        session, run_id, RunState.RESTORED, now=clock(), failed_step=step.label,
        failed_statement=statement, error=message, restored=True,
    )
    outcome.restored = True
    outcome.applied = []
    outcome.error = f"{message}; the tenant was restored to its state before this run"


def _recover_previous_runs(session: TenantConnection, outcome: TenantOutcome, clock: Clock) -> None:
    """Settle runs left behind by a runner that died, before planning.

    We hold the tenant's lock, so a RUNNING row belongs to a dead runner.
    Died between steps: every recorded step is whole, so the new run simply
    resumes. Died inside a step: the tenant may be half-migrated, so it is
    put back from that run's snapshot first. A FAILED run (nothing could be
    restored) blocks the tenant until an operator repairs it.
    """
    for run in reversed(read_runs(session, states=(RunState.RUNNING, RunState.FAILED))):
        if run.state is RunState.FAILED:
            raise TenantBlocked(
                f"tenant {session.tenant.name}: run {run.run_id[:12]} failed at {run.failed_step} and was not "
                f"restored ({run.error}). Check the tenant (or `jobd migrate restore {session.tenant.name}`), "
                f"then `jobd migrate repair --tenants {session.tenant.name}`"
            )
        _settle_dead_run(session, run, outcome, clock)


def _settle_dead_run(session: TenantConnection, run: RunRecord, outcome: TenantOutcome, clock: Clock) -> None:
    """Settle one RUNNING run whose runner died, wherever it died.

    Every write below can itself be cut short by a crash, so each branch
    accepts the state a previous settling left half-way: a partial snapshot
    already dropped, a snapshot already renamed back but not yet recorded
    (``snapshot_restored``), or recorded RESTORED but the run not finished.
    """
    name = session.tenant.name
    if run.snapshot_state is SnapshotState.TAKING and run.snapshot_database:
        drop_snapshot(session, run.snapshot_database)
        crash_point(name, "recovery_dropped_partial")
        set_snapshot(session, run.run_id, database=run.snapshot_database, state=SnapshotState.PRUNED)
    if run.step_in_flight is None:
        finish_run(session, run, RunState.INTERRUPTED, now=clock(), error="runner stopped between steps; resumed")
        outcome.notes.append(f"resumed after run {run.run_id[:12]} stopped between steps")
        return
    if run.snapshot_state is SnapshotState.READY and run.snapshot_database:
        plan = SnapshotPlan.from_json(run.snapshot_tables)
        if not snapshot_restored(session, run.snapshot_database, plan):
            restore_snapshot(session, run.snapshot_database, plan)
        crash_point(name, "recovery_restored")
        set_snapshot(session, run.run_id, database=run.snapshot_database, state=SnapshotState.RESTORED)
        crash_point(name, "recovery_marked")
    if run.snapshot_state in (SnapshotState.READY, SnapshotState.RESTORED) and run.snapshot_database:
        finish_run(
            session, run, RunState.RESTORED, now=clock(), failed_step=run.failed_step or run.step_in_flight,
            error=run.error or "runner died during this step; restored from the snapshot", restored=True,
        )
        outcome.notes.append(f"restored after run {run.run_id[:12]} died during {run.step_in_flight}")
        return
    message = f"runner died during {run.step_in_flight} and there is no snapshot to restore"
    finish_run(session, run, RunState.FAILED, now=clock(), failed_step=run.step_in_flight, error=message)
    raise TenantBlocked(
        f"tenant {session.tenant.name}: {message}; check it by hand, then "
        f"`jobd migrate repair --tenants {session.tenant.name}`"
    )
