"""How the jobs the master holds end, all through one ``EndingWriter`` (``jobd.outcome_writer``).

Finished attempts, workers that exited, jobs that can never run, cancels of
waiting jobs and jobs handed back to the queue: each becomes an ``Ending``,
is planned and written by the writer, and ``MasterListener`` tells the
observers and the live activity.

Finished attempts wait a few milliseconds to be written together: their
workers already run the next job, and one commit serves the burst. Exited
workers' jobs are settled once the store answers (kept pending through an
outage).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import defaults
from ..lease_guard import FENCED_REASON
from ..job import Job
from ..outcome_writer import EndingWriter
from ..outcomes import Ending, EndingKind
from ..states import JobState
from ..store.errors import StoreFault
from ..store.jobs import Outcome
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
        self.writer = EndingWriter(master.store.jobs, master.id, [MasterListener(master)])

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
        self.add(ended)
        if self.pending and (
            self.master.draining
            or len(self.pending) >= defaults.OUTCOME_BATCH_MAX
            or clock() - self.pending_since >= defaults.OUTCOME_BATCH_SECONDS
        ):
            self.flush()

    def add(self, ended: list[Finished]) -> None:
        """Add finished attempts to the burst without writing anything (the turn's store-guarded steps write it)."""
        if ended:
            if not self.pending:
                self.pending_since = self.master.clock()
            self.pending.extend(ended)

    def flush(self) -> None:
        """Write the finished attempts gathered so far (a group commit: one transaction, or a few on SQLite).

        Before each transaction of the burst, an urgent job's claim goes
        first (see ``Dispatcher.jobs_per_write``).
        """
        size = self.master.dispatcher.jobs_per_write() or len(self.pending)
        while self.pending:
            self.master.handoff.claim_if_urgent()
            ended, self.pending = self.pending[:size], self.pending[size:]
            try:
                self._record_finished(ended)
            except StoreFault:
                self.pending = ended + self.pending  # written on the next try
                raise
            self.master.wal_checkpoints.nudge()  # the log grew: copy it back before a submitter's commit has to

    def _record_finished(self, ended: list[Finished]) -> None:
        """Write a burst of finished attempts in one transaction (the listeners hear of each)."""
        master = self.master
        self.writer.write([
            (assignment.job, Ending.reported(finished, cancel_requested=assignment.cancel_sent_at is not None),
             master.limits(pool.daemon, assignment.job))
            for pool, assignment, finished in ended
        ])

    def end(self, daemon: str, endings: list[tuple[Job, Ending]]) -> None:
        """Write how these jobs of ``daemon`` ended, in one transaction (an outage raises: nothing was written)."""
        self.writer.write([(job, ending, self.master.limits(daemon, job)) for job, ending in endings])

    # -- exited workers ---------------------------------------------------

    def exited(self, pool: Pool, exits: list[WorkerExit]) -> None:
        """Workers that exited: their jobs are settled with ``settle_exits`` (kept through an outage).

        A job a worker reported ended just before it exited is recorded like any
        other (it was read at the reap, not in the turn's read of its pipe).
        """
        self.add([(pool, assignment, finished) for exit in exits for assignment, finished in exit.reported])
        self.lost_exits.extend((pool, exit) for exit in exits)

    def settle_exits(self) -> None:
        """Record what exited workers were running (kept pending while the store is down)."""
        while self.lost_exits:
            pool, exit = self.lost_exits[0]
            self.handle_exits(pool, [exit])
            self.lost_exits.pop(0)

    def handle_exits(self, pool: Pool, exits: list[WorkerExit]) -> None:
        """Write how the jobs of exited workers ended: those never begun go back to the queue."""
        master = self.master
        for exit in exits:
            endings = [(held.job, Ending(EndingKind.RETURNED)) for held in exit.unstarted]
            if exit.unstarted:
                master.dispatcher.claim_soon()
            if exit.assignment is not None:
                endings.append((exit.assignment.job, self._exit_ending(pool, exit, exit.assignment)))
            self.end(pool.daemon, endings)
        master.observers.workers_exited(master, pool, exits)

    def _exit_ending(self, pool: Pool, exit: WorkerExit, assignment: Assignment) -> Ending:
        """How the job a worker was running when it exited ended."""
        master = self.master
        drained = master.draining or master.daemons.stopping(pool.daemon)
        if (drained and exit.reason in ("drain timeout", "master stopping")) or exit.reason == FENCED_REASON:
            log.info("job %s returned to the queue (drain)", assignment.job.id)
            return Ending(EndingKind.RETURNED)
        duration = master.clock() - assignment.started_at
        if assignment.cancel_sent_at is not None:
            return Ending(EndingKind.CANCELLED, error=exit.reason, duration=duration)
        kind = EndingKind.TIMED_OUT if exit.worker.timed_out else EndingKind.CRASHED
        return Ending(kind, error=exit.reason, duration=duration)


class MasterListener:
    """What the master's observers (metrics, alerts) and live activity hear of every ending."""

    def __init__(self, master: Master) -> None:
        self.master = master

    def job_ended(self, job: Job, ending: Ending, outcome: Outcome) -> None:
        if ending.kind is EndingKind.RETURNED:
            return  # not an ending for the outside world: the job runs again
        master = self.master
        state = str(outcome.state)
        error, traceback = outcome.values.get("error"), outcome.values.get("traceback")  # as capped and written
        master.observers.job_ended(master, job, state, ending.duration, error, traceback)
        if ending.kind is EndingKind.UNRUNNABLE:
            return  # it never started: live activity never showed it
        master.activity.job_ended(job.daemon, job.id, job.task, job.attempts, state, error)
        if outcome.state is JobState.SUCCEEDED:
            info = master.inventory.get(job.daemon, {}).get(job.task)
            master.activity.remember_result(job, ending.result, info.options.cache_ttl if info else None)
        master.jobs_finished += 1
