"""Writing and forgetting jobs' own log lines in SQL with the driver's placeholders, written once (``sql_statements``).

The master appends the lines its workers sent in batches, one statement per
batch, and deletes the lines of the jobs it prunes; the store's
``JobLogTable`` runs these in a transaction of its engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from .job_log_reads_sql import JOB_LOGS, JobLogLine
from .sql_statements import Statements

COLUMNS = ("job_id", "attempt", "created_at", "level", "logger", "worker_pid", "message")
#: Job ids per DELETE: far under SQLite's limit of bound values in one statement.
IDS_PER_DELETE = 500


class JobLogWrites:
    def __init__(self, sql: Statements) -> None:
        self.sql = sql

    def append(self, lines: Sequence[JobLogLine]) -> None:
        """Store ``lines`` (their ids are the store's to give)."""
        rows = [tuple(getattr(line, column) for column in COLUMNS) for line in lines]
        self.sql.run_many(f"INSERT INTO {JOB_LOGS} ({', '.join(COLUMNS)}) VALUES ({self.sql.marks(len(COLUMNS))})", rows)

    def delete_for(self, job_ids: Sequence[int]) -> int:
        """Forget the lines of ``job_ids``; how many."""
        deleted = 0
        ids = list(job_ids)
        for start in range(0, len(ids), IDS_PER_DELETE):
            chunk = ids[start : start + IDS_PER_DELETE]
            deleted += self.sql.run(f"DELETE FROM {JOB_LOGS} WHERE job_id IN ({self.sql.marks(len(chunk))})", tuple(chunk))
        return deleted
