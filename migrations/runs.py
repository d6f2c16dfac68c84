"""Run records inside each tenant: what a runner did, its snapshot, and its fate.

The runs table is the engine's memory across crashes. A run is RUNNING
while a runner holds the tenant's lock; a RUNNING row seen by a runner that
now holds the lock therefore belongs to a runner that died. Its
``step_in_flight`` says whether it died between steps (safe to resume) or
inside one (the tenant may be half-migrated and is restored first).

The runs table is deliberately NOT part of snapshots: restoring a tenant
must not erase the record of why it was restored.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from jobd import __version__
from jobd.errors import InvalidTransition
from jobd.migrations.database import TenantConnection

RUNS_TABLE = "jobd_migration_runs"

RUNS_DDL = f"""
CREATE TABLE IF NOT EXISTS `{RUNS_TABLE}` (
    run_id CHAR(32) NOT NULL PRIMARY KEY,
    started_at DATETIME(6) NOT NULL,
    finished_at DATETIME(6) NULL,
    state VARCHAR(16) NOT NULL,
    host VARCHAR(255) NOT NULL,
    pid INT NOT NULL,
    jobd_version VARCHAR(32) NOT NULL,
    snapshot_mode VARCHAR(16) NOT NULL,
    snapshot_database VARCHAR(64) NULL,
    snapshot_state VARCHAR(16) NOT NULL,
    snapshot_tables TEXT NULL,
    step_in_flight VARCHAR(330) NULL,
    failed_step VARCHAR(330) NULL,
    failed_statement MEDIUMTEXT NULL,
    error TEXT NULL,
    restored_at DATETIME(6) NULL,
    KEY started (started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='jobd migration runs, format 1'
"""


class RunState(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    RESTORED = "restored"  # a step failed (or the run died mid-step); the snapshot was put back
    FAILED = "failed"  # a step failed and nothing could be restored: blocks the tenant
    ABORTED = "aborted"  # failed before any step ran: the tenant is unchanged
    INTERRUPTED = "interrupted"  # the runner died between steps; a later run resumed
    REPAIRED = "repaired"  # an operator resolved a FAILED run with `jobd migrate repair`


class SnapshotState(str, Enum):
    NONE = "none"
    TAKING = "taking"  # incomplete: never restored from, dropped when found
    READY = "ready"
    RESTORED = "restored"  # its tables were moved back into the tenant
    PRUNED = "pruned"


_RUN_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.RUNNING: frozenset(
        {RunState.SUCCEEDED, RunState.RESTORED, RunState.FAILED, RunState.ABORTED, RunState.INTERRUPTED}
    ),
    RunState.SUCCEEDED: frozenset({RunState.RESTORED}),  # restored by hand
    RunState.INTERRUPTED: frozenset({RunState.RESTORED}),
    RunState.FAILED: frozenset({RunState.REPAIRED, RunState.RESTORED}),
    RunState.RESTORED: frozenset(),
    RunState.ABORTED: frozenset(),
    RunState.REPAIRED: frozenset(),
}


def check_transition(current: RunState, target: RunState) -> None:
    """The one place run states are allowed to change."""
    if target not in _RUN_TRANSITIONS[current]:
        raise InvalidTransition(f"migration run cannot go from {current.value} to {target.value}")


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    started_at: datetime
    finished_at: datetime | None
    state: RunState
    host: str
    pid: int
    snapshot_mode: str
    snapshot_database: str | None
    snapshot_state: SnapshotState
    snapshot_tables: dict[str, Any]
    step_in_flight: str | None
    failed_step: str | None
    failed_statement: str | None
    error: str | None


_COLUMNS = (
    "run_id, started_at, finished_at, state, host, pid, snapshot_mode, snapshot_database, "
    "snapshot_state, snapshot_tables, step_in_flight, failed_step, failed_statement, error"
)


def _record(row: tuple) -> RunRecord:
    values = list(row)
    values[3] = RunState(values[3])
    values[8] = SnapshotState(values[8])
    values[9] = json.loads(values[9]) if values[9] else {}
    return RunRecord(*values)


def ensure_runs_table(session: TenantConnection) -> None:
    session.execute(RUNS_DDL)


def read_runs(session: TenantConnection, *, states: tuple[RunState, ...] | None = None) -> list[RunRecord]:
    """Runs of the tenant, newest first (empty if the table does not exist yet)."""
    if RUNS_TABLE not in session.base_tables():
        return []
    rows = session.execute(f"SELECT {_COLUMNS} FROM `{RUNS_TABLE}` ORDER BY started_at DESC, run_id")
    records = [_record(tuple(row)) for row in rows]
    return [record for record in records if states is None or record.state in states]


def start_run(session: TenantConnection, *, run_id: str, now: datetime, snapshot_mode: str) -> None:
    session.execute(
        f"INSERT INTO `{RUNS_TABLE}` (run_id, started_at, state, host, pid, jobd_version, snapshot_mode, snapshot_state) "
        "VALUES (:run_id, :now, :state, :host, :pid, :version, :mode, :snapshot_state)",
        run_id=run_id,
        now=now,
        state=RunState.RUNNING.value,
        host=socket.gethostname()[:255],
        pid=os.getpid(),
        version=__version__,
        mode=snapshot_mode,
        snapshot_state=SnapshotState.NONE.value,
    )
    session.commit()


def set_snapshot(
    session: TenantConnection, run_id: str, *, database: str | None, state: SnapshotState, tables: dict[str, Any] | None = None
) -> None:
    session.execute(
        f"UPDATE `{RUNS_TABLE}` SET snapshot_database = :database, snapshot_state = :state, "
        "snapshot_tables = COALESCE(:tables, snapshot_tables) WHERE run_id = :run_id",
        database=database,
        state=state.value,
        tables=json.dumps(tables) if tables is not None else None,
        run_id=run_id,
    )
    session.commit()


def set_in_flight(session: TenantConnection, run_id: str, step_label: str | None, *, commit: bool = True) -> None:
    session.execute(
        f"UPDATE `{RUNS_TABLE}` SET step_in_flight = :label WHERE run_id = :run_id", label=step_label, run_id=run_id
    )
    if commit:
        session.commit()


def finish_run(
    session: TenantConnection,
    record_or_id: RunRecord | str,
    target: RunState,
    *,
    now: datetime,
    failed_step: str | None = None,
    failed_statement: str | None = None,
    error: str | None = None,
    restored: bool = False,
) -> None:
    """Move a run to a final state, keeping the failure's step, statement and error."""
    current = record_or_id.state if isinstance(record_or_id, RunRecord) else RunState.RUNNING
    run_id = record_or_id.run_id if isinstance(record_or_id, RunRecord) else record_or_id
    check_transition(current, target)
    session.execute(
        f"UPDATE `{RUNS_TABLE}` SET state = :state, finished_at = COALESCE(finished_at, :now), "
        "failed_step = COALESCE(:failed_step, failed_step), "
        "failed_statement = COALESCE(:failed_statement, failed_statement), "
        "error = COALESCE(:error, error), restored_at = IF(:restored, :now, restored_at), "
        "step_in_flight = NULL WHERE run_id = :run_id AND state = :current",
        state=target.value,
        now=now,
        failed_step=failed_step,
        failed_statement=failed_statement,
        error=error,
        restored=restored,
        run_id=run_id,
        current=current.value,
    )
    session.commit()
