"""Jobs by creation time without an index on ``created_at``: a primary-key range found by bisection.

Ids grow with insertion time, so "created after T" is, up to clock skew
between the hosts that insert, "id at least the first id created at T". The
first such id is found by bisecting the primary key (each probe one index
seek: about 20 for a million rows), widened by a slack so a row inserted a
little out of order is kept, and the exact ``created_at`` condition is still
applied inside that range. A listing then walks the primary key from the
range's top and stops at its bottom, never scanning the rest of the table.
"""

from __future__ import annotations

import sqlalchemy as sa

from .. import defaults

MAX_PROBES = 64  # a 63-bit key needs at most 63 halvings


def _first_id_created_at_or_after(connection: sa.Connection, jobs: sa.Table, moment: float, low: int, high: int) -> int:
    """The smallest id in [low, high + 1] whose row (or the next row up) was created at or after ``moment``.

    Rows without ``created_at`` (written by another application) take the
    nearest dated row's place: the probe reads the first dated row at or
    above the midpoint.
    """
    for _ in range(MAX_PROBES):
        if low > high:
            break
        middle = (low + high) // 2
        row = connection.execute(
            sa.select(jobs.c.id, jobs.c.created_at)
            .where(jobs.c.id >= middle, jobs.c.id <= high, jobs.c.created_at.is_not(None))
            .order_by(jobs.c.id)
            .limit(1)
        ).first()
        if row is None or float(row.created_at) >= moment:
            high = middle - 1
        else:
            low = int(row.id) + 1
    return low


def id_range_for_created(
    connection: sa.Connection,
    jobs: sa.Table,
    created_after: float | None,
    created_before: float | None,
    *,
    slack: float = defaults.JOB_TIME_FILTER_SLACK_SECONDS,
) -> tuple[int, int] | None:
    """Inclusive (low, high) ids that hold every job created in [after, before), or None if no job can be."""
    # Two statements: SQLite answers a lone min() or max() from the key's ends, but both together by a scan.
    lowest = connection.execute(sa.select(sa.func.min(jobs.c.id))).scalar()
    highest = connection.execute(sa.select(sa.func.max(jobs.c.id))).scalar()
    if lowest is None or highest is None:
        return None
    low, high = int(lowest), int(highest)
    first, last = low, high
    if created_after is not None:
        low = _first_id_created_at_or_after(connection, jobs, created_after - slack, first, last)
    if created_before is not None:
        high = _first_id_created_at_or_after(connection, jobs, created_before + slack, first, last) - 1
    return (low, high) if low <= high else None


def created_conditions(jobs: sa.Table, created_after: float | None, created_before: float | None) -> list[sa.ColumnElement[bool]]:
    """The exact time conditions, applied inside the id range."""
    conditions: list[sa.ColumnElement[bool]] = []
    if created_after is not None:
        conditions.append(jobs.c.created_at >= created_after)
    if created_before is not None:
        conditions.append(jobs.c.created_at < created_before)
    return conditions
