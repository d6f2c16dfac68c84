"""Putting running jobs back in the queue (a dead master's, a refunded hand-off) and pruning old finished ones."""

from __future__ import annotations

import time
from collections.abc import Iterable

from ...states import JobState, transition
from ..job_writes_sql import JobWrites
from .base import JobsTable


class Recovering(JobsTable):
    """Re-queueing and pruning (the statements are ``job_writes_sql.JobWrites``')."""

    def requeue(self, job_ids: Iterable[int], owner: str | None, *, refund_attempt: bool, now: float | None = None) -> int:
        """Put running jobs back in the queue (drain, or recovery of a dead master's jobs).

        ``refund_attempt`` gives back the attempt a drain interrupted, so a
        graceful stop never uses up a job's retries; recovery after a crash
        keeps it counted. The checkpoint is kept either way.
        """
        ids = list(job_ids)
        if not ids:
            return 0
        transition(JobState.RUNNING, JobState.QUEUED)
        with self.runner.write() as sql:
            return JobWrites(sql).requeue(
                ids, owner=owner, orphans_only=False, refund_attempt=refund_attempt, now=time.time() if now is None else now,
            )

    def requeue_orphans(self, *, now: float | None = None) -> list[int]:
        """Re-queue running jobs whose owner is not a live master (attempt stays counted); their ids.

        One query covers a master another master just declared dead, one whose
        recovery was interrupted, and a row whose master was pruned. Finding
        and re-queueing in two transactions let two masters recovering one
        dead master's jobs at once both act: the second re-queued a job the
        first had already claimed again, and both ran it. Here the rows stay
        locked (MySQL ``FOR UPDATE``; SQLite's write transaction) from the
        look-up to the UPDATE, and the UPDATE checks the owner once more.
        """
        transition(JobState.RUNNING, JobState.QUEUED)
        with self.runner.write() as sql:
            writes = JobWrites(sql)
            ids = writes.orphans()
            if ids:
                writes.requeue(ids, owner=None, orphans_only=True, refund_attempt=False, now=time.time() if now is None else now)
        return ids

    def prune_finished(self, *, older_than: float, batch: int = 1000) -> list[int]:
        """Delete one batch of finished jobs that ended before ``older_than``; return their ids."""
        with self.runner.write() as sql:
            writes = JobWrites(sql)
            ids = writes.finished_before(older_than, batch)
            writes.delete(ids)
        return ids
