"""Reading a job's own log lines in SQL with the driver's placeholders, written once.

``jobd logs`` reads them on a bare driver connection (``driver_reads``),
without importing SQLAlchemy; the store's ``JobLogTable`` runs the same
statements through ``exec_driver_sql``. Values are parameters, never pasted in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .. import defaults
from .job_reads_sql import Rows, placeholder

JOB_LOGS = f"{defaults.TABLE_PREFIX}job_logs"


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


class JobLogReads:
    """The log-line reads for one dialect, run through ``rows``."""

    def __init__(self, rows: Rows, dialect: str) -> None:
        self.rows = rows
        self.mark = placeholder(dialect)

    def lines(self, job_id: int | None = None, *, after_id: int = 0, limit: int = 10_000) -> list[JobLogLine]:
        """Lines of ``job_id`` (or of every job) with an id above ``after_id``, oldest first."""
        mark = self.mark
        of_job = f" AND job_id = {mark}" if job_id is not None else ""
        parameters = (after_id, *((job_id,) if job_id is not None else ()), limit)
        found = self.rows(f"SELECT * FROM {JOB_LOGS} WHERE id > {mark}{of_job} ORDER BY id LIMIT {mark}", parameters)
        return [row_to_line(row) for row in found]

    def recent(self, limit: int) -> list[JobLogLine]:
        """The last ``limit`` lines of all jobs, oldest first."""
        found = self.rows(f"SELECT * FROM {JOB_LOGS} ORDER BY id DESC LIMIT {self.mark}", (limit,))
        return [row_to_line(row) for row in reversed(found)]


def row_to_line(row: Mapping[str, Any]) -> JobLogLine:
    return JobLogLine(
        job_id=int(row["job_id"]), attempt=row["attempt"], created_at=float(row["created_at"]), level=row["level"],
        logger=row["logger"], worker_pid=row["worker_pid"], message=row["message"], id=int(row["id"]),
    )
