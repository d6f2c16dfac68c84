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


from .sql_runner import SqlRunner
from .job_log_reads_sql import JobLogLine, JobLogReads
from .job_log_writes_sql import JobLogWrites

__all__ = ["JobLogLine", "JobLogTable"]  # JobLogLine lives in ``job_log_reads_sql``: `jobd logs` reads without SQLAlchemy


class JobLogTable:
    def __init__(self, runner: SqlRunner) -> None:
        self.runner = runner

    def append(self, lines: Sequence[JobLogLine]) -> None:
        """Store lines in one transaction (one round trip per flush, not per record)."""
        if not lines:
            return
        with self.runner.write() as sql:
            JobLogWrites(sql).append(lines)

    def delete_for(self, job_ids: Sequence[int]) -> int:
        """Forget the log lines of jobs that were pruned."""
        if not job_ids:
            return 0
        with self.runner.write() as sql:
            return JobLogWrites(sql).delete_for(job_ids)

    def lines(self, job_id: int | None = None, *, after_id: int = 0, limit: int = 10_000) -> list[JobLogLine]:
        """Lines of ``job_id`` (or of every job) with an id above ``after_id``, oldest first (``JobLogReads.lines``)."""
        with self.runner.read() as sql:
            return JobLogReads(sql.rows, self.runner.dialect).lines(job_id, after_id=after_id, limit=limit)

    def recent(self, limit: int) -> list[JobLogLine]:
        """The last ``limit`` lines of all jobs, oldest first (``JobLogReads.recent``)."""
        with self.runner.read() as sql:
            return JobLogReads(sql.rows, self.runner.dialect).recent(limit)
