"""Snapshot retention: how many snapshots each tenant keeps.

``snapshot_retention`` is a count per tenant (default 3): the newest N
snapshots that can still matter are kept, older ones are dropped. A count,
not an age, because a tenant migrated rarely should still have its last
snapshot months later. Snapshots of runs that need an operator (FAILED) or
are in progress are never pruned.
"""

from __future__ import annotations

from jobd.migrations.crashpoints import crash_point
from jobd.migrations.database import TenantConnection
from jobd.migrations.runs import RunState, SnapshotState, read_runs, set_snapshot
from jobd.migrations.snapshot import drop_snapshot

_PROTECTED = frozenset({RunState.RUNNING, RunState.FAILED})


def prune_snapshots(session: TenantConnection, *, keep: int) -> list[str]:
    """Drop the tenant's snapshot databases beyond the newest ``keep``; return their names."""
    kept = 0
    dropped: list[str] = []
    for run in read_runs(session):  # newest first
        if run.snapshot_state not in (SnapshotState.READY, SnapshotState.RESTORED) or not run.snapshot_database:
            continue
        if run.state in _PROTECTED or kept < keep:
            kept += run.state not in _PROTECTED
            continue
        drop_snapshot(session, run.snapshot_database)
        crash_point(session.tenant.name, "pruned")
        set_snapshot(session, run.run_id, database=run.snapshot_database, state=SnapshotState.PRUNED)
        dropped.append(run.snapshot_database)
    return dropped
