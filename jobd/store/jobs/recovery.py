"""Putting running jobs back in the queue (a dead master's, a refunded hand-off) and pruning old finished ones."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ...states import FINAL, JobState, transition
from ..state_lookup import in_states
from .base import JobsTable


class Recovering(JobsTable):
    """Re-queueing and pruning."""

    def requeue(self, job_ids: Iterable[int], owner: str | None, *, refund_attempt: bool, now: float | None = None) -> int:
        """Put running jobs back in the queue (drain, or recovery of a dead master's jobs).

        ``refund_attempt`` gives back the attempt a drain interrupted, so a
        graceful stop never uses up a job's retries; recovery after a crash
        keeps it counted. The checkpoint is kept either way.
        """
        ids = list(job_ids)
        if not ids:
            return 0
        jobs = self.table
        guard = [jobs.c.owner == owner] if owner is not None else []
        with self.engine.begin() as connection:
            return self._requeue_on(connection, ids, guard, refund_attempt=refund_attempt, now=now)

    def _requeue_on(
        self, connection: sa.Connection, ids: list[int], guard: list[Any], *, refund_attempt: bool, now: float | None,
    ) -> int:
        """The re-queue UPDATE of ``requeue``, inside the caller's transaction, with its extra ``guard`` conditions."""
        now = time.time() if now is None else now
        transition(JobState.RUNNING, JobState.QUEUED)
        jobs = self.table
        values: dict[str, Any] = {
            "state": str(JobState.QUEUED),
            "owner": None,
            "worker_pid": None,
            "updated_at": now,
        }
        if refund_attempt:
            values["attempts"] = sa.case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0)
        update = jobs.update().where(jobs.c.id.in_(ids), jobs.c.state == str(JobState.RUNNING), *guard).values(**values)
        return int(connection.execute(update).rowcount)

    def requeue_orphans(self, live_masters: sa.Select[tuple[str]], *, now: float | None = None) -> list[int]:
        """Re-queue running jobs whose owner is not a live master (attempt stays counted).

        One query covers a master another master just declared dead, one whose
        recovery was interrupted, and a row whose master was pruned.
        """
        jobs = self.table
        return self._requeue_where(sa.or_(jobs.c.owner.is_(None), jobs.c.owner.not_in(live_masters)), now=now)

    def _requeue_where(self, orphaned: Any, *, now: float | None) -> list[int]:
        """Find the running jobs ``orphaned`` names and re-queue them in the same transaction.

        Finding and re-queueing in two transactions let two masters recovering
        one dead master's jobs at once both act: the second re-queued a job the
        first had already claimed again, and both ran it. Here the rows stay
        locked (MySQL ``FOR UPDATE``; SQLite's write transaction) from the
        look-up to the UPDATE, and the UPDATE checks ``orphaned`` once more.
        """
        jobs = self.table
        query = sa.select(jobs.c.id).where(*in_states(jobs, [JobState.RUNNING], self.engine.dialect.name), orphaned)
        with self.engine.begin() as connection:
            if self.is_mysql:
                query = query.with_for_update(skip_locked=True)
            ids = list(connection.execute(query).scalars())
            if ids:
                self._requeue_on(connection, ids, [orphaned], refund_attempt=False, now=now)
        return ids

    def prune_finished(self, *, older_than: float, batch: int = 1000) -> list[int]:
        """Delete one batch of finished jobs that ended before ``older_than``; return their ids."""
        jobs = self.table
        with self.engine.begin() as connection:
            ids = list(connection.execute(
                sa.select(jobs.c.id)
                .where(jobs.c.state.in_([str(state) for state in FINAL]), jobs.c.finished_at < older_than)
                .order_by(jobs.c.id)
                .limit(batch)
            ).scalars())
            if ids:
                connection.execute(jobs.delete().where(jobs.c.id.in_(ids)))
        return ids
