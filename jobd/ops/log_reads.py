"""``jobd logs``: a job's own log lines, read through the database driver alone.

The lines are a SELECT or two; validating the config's models and importing
SQLAlchemy for them was most of the command's run, and ``--follow`` polls
them every half second. Here the store is reached once, with the driver
arguments the config's digest recorded (``jobd.config_digest``), on one
connection the command keeps while it follows, running the statements the
store's own methods run (``store.job_log_reads_sql``, ``store.job_reads_sql``).
Where the digest has no driver arguments to use (a SQLite file that does not
exist yet), the operator functions of ``jobd.ops.jobs`` answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..config_digest import config_digest
from ..job import Job
from ..store.driver_reads import driver_rows
from ..store.driver_sql import existing_target
from ..store.job_log_reads_sql import JobLogLine, JobLogReads
from ..store.job_reads_sql import JobReads
from ..store.row_decoding import decode_found

__all__ = ["JobLogLine", "JobLogs", "job_logs"]  # JobLogLine for the command line, which never imports jobd.store

ConfigPath = str | os.PathLike[str] | None


@dataclass(frozen=True)
class JobLogs:
    """A job's log lines and the job itself, however the store is reached."""

    #: Lines of a job (or of all jobs) above an id, oldest first: ``(job_id, after_id) -> lines``.
    lines_after: Callable[[int | None, int], list[JobLogLine]]
    #: The last N lines of all jobs, oldest first.
    recent: Callable[[int], list[JobLogLine]]
    #: One job; ``UnknownJob`` when there is none.
    job: Callable[[int], Job]

    def read(self, job_id: int | None, *, after_id: int | None = None, recent: int = 100) -> list[JobLogLine]:
        """Log lines, oldest first: a job's (``UnknownJob`` for an unknown id) or, without ``job_id``, the
        ``recent`` latest of all jobs; with ``after_id`` (following), only the lines written since that one.
        """
        if after_id is not None:
            return self.lines_after(job_id, after_id)
        if job_id is None:
            return self.recent(recent)
        self.job(job_id)  # an unknown id is an error (exit 2), not an empty log
        return self.lines_after(job_id, 0)


@contextmanager
def job_logs(config: ConfigPath) -> Iterator[JobLogs]:
    """The log reads for the config at ``config``, on one driver connection kept until the block ends."""
    digest = config_digest(config)
    target = existing_target(digest.driver)
    if target is None:
        from . import jobs

        yield jobs.job_logs(digest)
        return
    with driver_rows(target) as rows:
        logs, jobs_table = JobLogReads(rows, target.dialect), JobReads(rows, target.dialect)
        yield JobLogs(
            lines_after=lambda job_id, after_id: logs.lines(job_id, after_id=after_id),
            recent=logs.recent,
            job=lambda job_id: decode_found(jobs_table.get(job_id), job_id),
        )
