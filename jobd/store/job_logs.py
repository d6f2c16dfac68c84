"""The job_logs table: each job's own log lines, kept with the job.

Lines are written by the master in batches (``jobd.observability.job_logs`` captures them
as they arrive from workers) and read by ``jobd logs ID``. They live in the
store rather than only in a log file because the store is what every host
and every operator can reach: with several masters on one MySQL store, the
line that explains a failure may have been logged on any host, and a log
file may be journald, rotated away, or on a box nobody has a shell on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from .engine import READ_ONLY


@dataclass(frozen=True)
class JobLogLine:
    """One log record of one job attempt."""

    job_id: int
    attempt: int | None
    created_at: float
    level: str
    logger: str
    worker_pid: int | None
    message: str  # with the traceback, if the record had one
    id: int | None = None  # set once stored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobLogTable:
    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine = engine
        self.table = table

    def append(self, lines: Sequence[JobLogLine]) -> None:
        """Store lines in one transaction (one round trip per flush, not per record)."""
        if not lines:
            return
        rows = [{key: value for key, value in line.to_dict().items() if key != "id"} for line in lines]
        with self.engine.begin() as connection:
            connection.execute(self.table.insert(), rows)

    def delete_for(self, job_ids: Sequence[int]) -> int:
        """Forget the log lines of jobs that were pruned."""
        if not job_ids:
            return 0
        with self.engine.begin() as connection:
            return int(connection.execute(self.table.delete().where(self.table.c.job_id.in_(list(job_ids)))).rowcount)

    def lines(self, job_id: int | None = None, *, after_id: int = 0, limit: int = 10_000) -> list[JobLogLine]:
        """Lines of ``job_id`` (or of every job) with an id above ``after_id``, oldest first."""
        table = self.table
        query = sa.select(table).where(table.c.id > after_id).order_by(table.c.id).limit(limit)
        if job_id is not None:
            query = query.where(table.c.job_id == job_id)
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return [_row_to_line(row) for row in connection.execute(query).mappings()]

    def recent(self, limit: int) -> list[JobLogLine]:
        """The last ``limit`` lines of all jobs, oldest first."""
        table = self.table
        query = sa.select(table).order_by(table.c.id.desc()).limit(limit)
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            rows = list(connection.execute(query).mappings())
        return [_row_to_line(row) for row in reversed(rows)]


def _row_to_line(row: Any) -> JobLogLine:
    return JobLogLine(
        job_id=int(row["job_id"]), attempt=row["attempt"], created_at=float(row["created_at"]), level=row["level"],
        logger=row["logger"], worker_pid=row["worker_pid"], message=row["message"], id=int(row["id"]),
    )
