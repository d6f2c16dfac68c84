"""Reading jobs: one, a filtered page, counts per state, what is due."""

from __future__ import annotations

import time
from collections.abc import Sequence


from ...job import Job
from ...states import JobState
from ..job_reads_sql import JobFilter
from ..status_reads_sql import StatusReads
from .base import JobsTable
from .records import row_to_job


class Queries(JobsTable):
    """Read-only questions about jobs."""

    def get(self, job_id: int) -> Job:
        with self.runner.read() as sql:
            return self._get_on(sql, job_id)

    def cancel_requests(self, owner: str) -> list[int]:
        """Running jobs of ``owner`` that an operator asked to cancel (``JobReads.cancel_requests``)."""
        with self.runner.read() as sql:
            return self._reads(sql).cancel_requests(owner)

    def list(
        self,
        *,
        states: Sequence[JobState | str] = (),  # any stored value (``jobd jobs --state``)
        daemon: str | None = None,
        task: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> list[Job]:
        """Most recent jobs first, filtered; ``before_id`` pages on by key (no offset, no count).

        The statements are ``job_reads_sql``'s, which ``jobd jobs`` also runs with no master (and no SQLAlchemy).
        """
        wanted = JobFilter(
            tuple(str(state) for state in states), daemon, task, limit, before_id, created_after, created_before,
        )
        with self.runner.read() as sql:
            return [row_to_job(row) for row in self._reads(sql).page(wanted)]

    def states_of(self, job_ids: Sequence[int]) -> dict[int, str]:
        """The stored state of each of ``job_ids`` that still exists (``JobReads.states_of``)."""
        with self.runner.read() as sql:
            return self._reads(sql).states_of(job_ids)

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of jobs per daemon and state: ``{daemon: {state: n}}`` (``StatusReads.job_counts``)."""
        with self.runner.read() as sql:
            return StatusReads(sql.rows, self.runner.dialect).job_counts()

    def due_stats(self, *, now: float | None = None) -> dict[str, tuple[int, float | None]]:
        """Per daemon: how many jobs are due and waiting, and since when the oldest is due (metrics)."""
        now = time.time() if now is None else now
        with self.runner.read() as sql:
            return self._reads(sql).due_stats(now)

    def queue_depth(self, daemon: str) -> tuple[int, float | None]:
        """How many of ``daemon``'s jobs are queued (due, waiting for a worker), and since when the oldest."""
        with self.runner.read() as sql:
            return self._reads(sql).queue_depth(daemon)
