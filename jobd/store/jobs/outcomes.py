"""Writing what running attempts did: their outcomes (``jobd.outcome_writer``), checkpoints and progress."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ...job import encode_json
from ...states import FINAL, JobState, transition
from ..batches import BatchEndings
from .base import JobsTable
from .records import Outcome, group_key


class Finishing(JobsTable):
    """Recording running attempts."""

    def apply_outcomes(self, owner: str, outcomes: Sequence[Outcome], *, now: float | None = None) -> int:
        """Write many attempts' outcomes in one transaction; return how many were written.

        Outcomes with the same state and values (a burst of successes returning
        nothing, say) share one UPDATE. Each row is guarded: only an attempt
        this owner still holds (running, same attempt) is changed. Every ending
        the master writes comes through here (``jobd.outcome_writer``).
        """
        now = time.time() if now is None else now
        jobs = self.table
        groups: dict[tuple[JobState, Any, int | None], list[Outcome]] = {}
        for outcome in outcomes:
            transition(JobState.RUNNING, outcome.state)
            groups.setdefault((outcome.state, group_key(outcome.values), outcome.batch_id), []).append(outcome)
        written = 0
        endings = BatchEndings()  # a group is one batch's: its rowcount is what that batch counts
        with self.engine.begin() as connection:
            for (target, _, batch_id), members in groups.items():
                values = {**members[0].values, "state": str(target), "updated_at": now, "worker_pid": None}
                if target in FINAL:
                    values.update(finished_at=now, unique_key=None)
                if target is JobState.RETRYING:
                    values.update(owner=None)
                count = int(connection.execute(
                    jobs.update()
                    .where(
                        # The id list first: SQLite then looks rows up by rowid instead of
                        # scanning every job this owner runs for the (id, attempt) pairs.
                        jobs.c.id.in_([o.job_id for o in members]),
                        sa.tuple_(jobs.c.id, jobs.c.attempts).in_([(o.job_id, o.attempt) for o in members]),
                        jobs.c.state == str(JobState.RUNNING),
                        jobs.c.owner == owner,
                    )
                    .values(**values)
                ).rowcount)
                written += count
                endings.add(batch_id, target, count)
            if endings and self.batch_counters is not None:
                self.batch_counters.record(connection, endings, now)
        return written

    def save_checkpoint(self, job_id: int, attempt: int, checkpoint: Any) -> bool:
        """Persist a running job's checkpoint; False if that attempt no longer runs."""
        jobs = self.table
        with self.engine.begin() as connection:
            updated = connection.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.attempts == attempt, jobs.c.state == str(JobState.RUNNING))
                .values(checkpoint=encode_json(checkpoint), updated_at=time.time())
            ).rowcount
        return bool(updated)

    def save_progress(self, progress_by_job: dict[int, dict[str, Any]]) -> None:
        """Persist the latest progress of running jobs (display data; best effort)."""
        if not progress_by_job:
            return
        jobs = self.table
        with self.engine.begin() as connection:
            for job_id, progress in progress_by_job.items():
                connection.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.state == str(JobState.RUNNING))
                    .values(progress=encode_json(progress))
                )
