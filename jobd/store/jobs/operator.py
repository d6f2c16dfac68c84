"""What operators do to jobs: cancel, retry, delete, bulk actions on dead jobs, and the cancels masters must apply."""

from __future__ import annotations

import time

import sqlalchemy as sa

from ... import defaults
from ...errors import InvalidArgs, InvalidTransition
from ...job import Job
from ...states import FINAL, JobState, phrase, sources_of, transition
from ..engine import READ_ONLY, statements_on
from .engine_table import EngineJobsTable


class OperatorActions(EngineJobsTable):
    """Operator actions on jobs."""

    def cancel(self, job_id: int, *, now: float | None = None) -> Job:
        """Cancel a waiting job at once, or flag a running one for its master to stop."""
        now = time.time() if now is None else now
        jobs = self.table
        with self.engine.begin() as connection:
            job = self._get_on(statements_on(connection), job_id, lock=True)
            if job.state is JobState.RUNNING:
                connection.execute(jobs.update().where(jobs.c.id == job_id).values(cancel_requested=True, updated_at=now))
            else:
                target = transition(job.state, JobState.CANCELLED)
                if connection.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state == str(job.state))
                    .values(state=str(target), finished_at=now, updated_at=now, unique_key=None)
                ).rowcount:
                    self._count_in_batches(statements_on(connection), [job_id], target, now)
            return self._get_on(statements_on(connection), job_id)

    def retry(self, job_id: int, *, now: float | None = None) -> Job:
        """Queue a dead or cancelled job again, with a fresh set of attempts."""
        now = time.time() if now is None else now
        jobs = self.table
        with self.engine.begin() as connection:
            job = self._get_on(statements_on(connection), job_id, lock=True)
            if job.state not in sources_of(JobState.QUEUED) - {JobState.RUNNING, JobState.RETRYING, JobState.SCHEDULED}:
                raise InvalidTransition(f"job {job_id} {phrase(job.state)}; only dead or cancelled jobs can be retried")
            if connection.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state == str(job.state))
                .values(
                    state=str(JobState.QUEUED), attempts=0, run_at=None, finished_at=None,
                    cancel_requested=False, updated_at=now,
                )
            ).rowcount:
                self._count_in_batches(statements_on(connection), [job_id], job.state, now, sign=-1)  # it is no longer dead or cancelled
            return self._get_on(statements_on(connection), job_id)

    def delete(self, job_id: int) -> Job:
        """Delete one finished job (its log lines are the caller's: ``job_logs.delete_for``)."""
        jobs = self.table
        with self.engine.begin() as connection:
            job = self._get_on(statements_on(connection), job_id, lock=True)
            if job.state not in FINAL:
                raise InvalidTransition(f"job {job_id} {phrase(job.state)}; only finished jobs can be deleted (cancel it first)")
            connection.execute(jobs.delete().where(jobs.c.id == job_id, jobs.c.state == str(job.state)))
            return job

    def dead_matching(
        self, action: str, *, daemon: str | None = None, task: str | None = None, created_after: float | None = None,
        created_before: float | None = None, batch: int = defaults.BULK_ACTION_BATCH, most: int = defaults.BULK_ACTION_MAX,
        now: float | None = None,
    ) -> tuple[list[int], bool]:
        """Retry (``"retry"``) or delete (``"delete"``) the dead jobs matching a filter, a batch per transaction.

        Walks the key upward from where the last batch ended, so a retried job
        that dies again meanwhile is not taken twice; every UPDATE/DELETE is
        guarded by ``state = 'dead'``. Returns the ids changed and whether
        matching jobs were left (``most`` reached).
        """
        if action not in ("retry", "delete"):
            raise InvalidArgs(f"unknown bulk action {action!r}")
        now = time.time() if now is None else now
        jobs = self.table
        dead = str(JobState.DEAD)
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            window = self._reads(statements_on(connection)).id_range_for_created(created_after, created_before) if (
                created_after is not None or created_before is not None) else (0, 2**63 - 1)
        changed: list[int] = []
        if window is None:
            return changed, False
        cursor, top = window[0] - 1, window[1]
        filters = [jobs.c.state == dead, jobs.c.id <= top, *created_conditions(jobs, created_after, created_before)]
        if daemon:
            filters.append(jobs.c.daemon == daemon)
        if task:
            filters.append(jobs.c.task == task)
        while len(changed) < most:
            with self.engine.begin() as connection:
                query = sa.select(jobs.c.id).where(jobs.c.id > cursor, *filters).order_by(jobs.c.id).limit(min(batch, most - len(changed)))
                if self.is_mysql:
                    query = query.with_for_update()  # the ids returned are the rows changed
                ids = list(connection.execute(query).scalars())
                if not ids:
                    return changed, False
                cursor = ids[-1]
                guarded = [jobs.c.id.in_(ids), jobs.c.state == dead]
                if action == "retry":
                    connection.execute(jobs.update().where(*guarded).values(
                        state=str(transition(JobState.DEAD, JobState.QUEUED)), attempts=0, run_at=None, finished_at=None,
                        cancel_requested=False, updated_at=now))
                    self._count_in_batches(statements_on(connection), ids, JobState.DEAD, now, sign=-1)
                else:
                    connection.execute(jobs.delete().where(*guarded))
            changed += ids
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            left = connection.execute(sa.select(jobs.c.id).where(jobs.c.id > cursor, *filters).limit(1)).first() is not None
        return changed, left


def created_conditions(jobs: sa.Table, created_after: float | None, created_before: float | None) -> list[sa.ColumnElement[bool]]:
    """The exact creation-time conditions, applied inside the id range (``JobReads.id_range_for_created``)."""
    conditions: list[sa.ColumnElement[bool]] = []
    if created_after is not None:
        conditions.append(jobs.c.created_at >= created_after)
    if created_before is not None:
        conditions.append(jobs.c.created_at < created_before)
    return conditions
