"""How the jobs the master's workers ran end: finished attempts, and workers that exited.

Finished attempts wait a few milliseconds to be written together: their
workers already run the next job, and one commit serves the burst. Exited
workers' jobs are settled once the store answers (kept pending through an
outage).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .. import defaults
from ..lease_guard import FENCED_REASON
from ..outcome_writer import write_outcomes
from ..outcomes import log_outcome, plan_outcome, record_failure
from ..workers import protocol
from ..workers.pool import Assignment, Pool, WorkerExit

if TYPE_CHECKING:
    from .core import Master

log = logging.getLogger("jobd.master")

Finished = tuple[Pool, Assignment, protocol.JobFinished]


class Endings:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.pending: list[Finished] = []  # finished attempts not yet written
        self.pending_since = 0.0
        self.lost_exits: list[tuple[Pool, WorkerExit]] = []  # exited workers whose job is not yet recorded

    def job_ids(self) -> set[int]:
        """The jobs whose end is known here and not yet written."""
        held = {assignment.job.id for _pool, assignment, _finished in self.pending}
        for _pool, exit in self.lost_exits:
            held.update(a.job.id for a in (exit.assignment, *exit.unstarted) if a is not None)
        return held

    def seconds_to_flush(self) -> float | None:
        """How long the gathered outcomes may still wait; None if none wait."""
        if not self.pending:
            return None
        return max(0.0, defaults.OUTCOME_BATCH_SECONDS - (self.master.clock() - self.pending_since))

    # -- finished attempts ------------------------------------------------

    def gather(self, ended: list[Finished]) -> None:
        """Add finished attempts to the burst; write it once it is full, old enough, or the master drains."""
        clock = self.master.clock
        if ended:
            if not self.pending:
                self.pending_since = clock()
            self.pending.extend(ended)
        if self.pending and (
            self.master.draining
            or len(self.pending) >= defaults.OUTCOME_BATCH_MAX
            or clock() - self.pending_since >= defaults.OUTCOME_BATCH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Write the finished attempts gathered so far (a group commit: one transaction)."""
        if self.pending:
            ended, self.pending = self.pending, []
            try:
                self._record_finished(ended)
            except sa.exc.DBAPIError:
                self.pending = ended + self.pending  # written on the next try
                raise

    def _record_finished(self, ended: list[Finished]) -> None:
        """Write a burst of finished attempts in one transaction, then tell the observers."""
        master = self.master
        now = time.time()
        planned = []
        for pool, assignment, finished in ended:
            job = assignment.job
            if assignment.cancel_sent_at is not None and finished.outcome != "succeeded":
                finished = protocol.JobFinished(job.id, job.attempts, "cancelled", error="cancelled by an operator")
            planned.append((pool, job, finished, plan_outcome(job, finished, master.limits(pool.daemon, job), now)))
        # Raises only for an outage (nothing below ran); an outcome the store refused comes back dead.
        written = write_outcomes(master.store.jobs, master.id, [outcome for *_, outcome in planned], now)
        for (pool, job, finished, _planned), outcome in zip(planned, written):
            state = str(outcome.state)
            log_outcome(job, outcome, now)
            error, traceback = outcome.values.get("error"), outcome.values.get("traceback")  # as capped and written
            master.observers.job_ended(master, job, state, finished.duration, error, traceback)
            master.activity.job_ended(pool.daemon, job.id, job.task, job.attempts, state, error)
            if state == "succeeded":
                info = master.inventory.get(pool.daemon, {}).get(job.task)
                master.activity.remember_result(job, finished.result, info.options.cache_ttl if info else None)
            master.jobs_finished += 1

    # -- exited workers ---------------------------------------------------

    def exited(self, pool: Pool, exits: list[WorkerExit]) -> None:
        """Workers that exited: their jobs are settled with ``settle_exits`` (kept through an outage)."""
        self.lost_exits.extend((pool, exit) for exit in exits)

    def settle_exits(self) -> None:
        """Record what exited workers were running (kept pending while the store is down)."""
        while self.lost_exits:
            pool, exit = self.lost_exits[0]
            self.handle_exits(pool, [exit])
            self.lost_exits.pop(0)

    def handle_exits(self, pool: Pool, exits: list[WorkerExit]) -> None:
        master = self.master
        for exit in exits:
            if exit.unstarted:  # handed to the worker, never begun: back to the queue as they were
                master.store.jobs.requeue([held.job.id for held in exit.unstarted], master.id, refund_attempt=True)
                master.dispatcher.claim_soon()
            assignment = exit.assignment
            if assignment is None:
                continue
            job = assignment.job
            drained = master.draining or master.daemons.stopping(pool.daemon)
            if (drained and exit.reason in ("drain timeout", "master stopping")) or exit.reason == FENCED_REASON:
                master.store.jobs.requeue([job.id], master.id, refund_attempt=True)
                log.info("job %s returned to the queue (drain)", job.id)
            elif assignment.cancel_sent_at is not None:
                master.store.jobs.cancelled(job.id, job.attempts, master.id, error=exit.reason)
                master.observers.job_ended(master, job, "cancelled", master.clock() - assignment.started_at)
                master.activity.job_ended(pool.daemon, job.id, job.task, job.attempts, "cancelled", exit.reason)
            else:
                state = record_failure(master.store.jobs, master.id, job, exit.reason, None, master.limits(pool.daemon, job), time.time())
                master.observers.job_ended(master, job, state, master.clock() - assignment.started_at, exit.reason)
                master.activity.job_ended(pool.daemon, job.id, job.task, job.attempts, state, exit.reason)
        master.observers.workers_exited(master, pool, exits)
