"""Writing what running attempts did: their outcomes (``jobd.outcome_writer``), checkpoints and progress."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ...job import encode_json
from ...states import JobState, transition
from ..batch_counter_sql import BatchCounterSql, BatchEndings
from ..job_writes_sql import JobWrites
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
        groups: dict[tuple[JobState, Any, int | None], list[Outcome]] = {}
        for outcome in outcomes:
            transition(JobState.RUNNING, outcome.state)
            groups.setdefault((outcome.state, group_key(outcome.values), outcome.batch_id), []).append(outcome)
        written = 0
        endings = BatchEndings()  # a group is one batch's: its rowcount is what that batch counts
        with self.runner.write() as sql:
            writes = JobWrites(sql)
            for (target, _, batch_id), members in groups.items():
                attempts = [(outcome.job_id, outcome.attempt) for outcome in members]
                count = writes.apply_outcome(owner, attempts, target, members[0].values, now)
                written += count
                endings.add(batch_id, target, count)
            if endings:
                BatchCounterSql(sql).record(endings, now)
        return written

    def save_checkpoint(self, job_id: int, attempt: int, checkpoint: Any) -> bool:
        """Persist a running job's checkpoint; False if that attempt no longer runs."""
        with self.runner.write() as sql:
            return JobWrites(sql).save_checkpoint(job_id, attempt, encode_json(checkpoint), time.time())

    def save_progress(self, progress_by_job: dict[int, dict[str, Any]]) -> None:
        """Persist the latest progress of running jobs (display data; best effort)."""
        if not progress_by_job:
            return
        with self.runner.write() as sql:
            JobWrites(sql).save_progress(
                {job_id: encode_json(progress) for job_id, progress in progress_by_job.items()},
            )
