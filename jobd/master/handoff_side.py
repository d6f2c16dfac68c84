"""The master's glue to its hand-off desk (``jobd.handoff.desk``): what only the master can decide.

The desk holds the hand-off itself: the wake socket, the busy workers'
sockets it reads, the offer file, the hand-offs waiting to be confirmed
against the store, and the pace of its checks. This side answers what the
desk cannot know: which daemons have room (the offer), which jobs the
master already holds, and what to do with the jobs the desk gives it — run
them on a free worker, or put them back in the queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..handoff.desk import HandoffDesk
from ..handoff.sockets import Woken, merge_woken
from ..job import Job
from ..workers import protocol
from ..workers.pool import Pool, Worker, WorkerExit
from .dispatch import above_backlog

if TYPE_CHECKING:
    from .core import Master


class HandoffSide:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.desk = HandoffDesk(master.config.socket, master.id, enabled=master.config.handoff, clock=master.clock)
        self.woken: Woken = {}  # daemons a submit announced a job for, with its priority (see claim_woken)

    def catch_up(self) -> None:
        """Read the wake-ups that came during this turn (one read that does not wait): their jobs are claimed in it."""
        merge_woken(self.woken, self.desk.read_wake())

    def claim_if_urgent(self) -> None:
        """Between the turn's longer steps: claim at once for a wake-up about a job more urgent than its pool holds."""
        self.catch_up()
        if self.urgent():
            self.claim_woken()

    def urgent(self) -> bool:
        """Whether a wake-up announced a job more urgent than all its pool holds (claim it before anything else)."""
        pools = self.master.pools
        return any(daemon in pools and above_backlog(pools[daemon], priority) is not None for daemon, priority in self.woken.items())

    def claim_woken(self) -> None:
        """Start the jobs submits handed us, then claim for the daemons submits woke us for."""
        master = self.master
        if self.desk.pending:
            master.store_link.guarded(self.take_handed)
        if self.woken and not master.draining and master.store_health.available:
            woken, self.woken = self.woken, {}
            master.store_link.guarded(lambda: master.dispatcher.dispatch(woken))
            master.wal_checkpoints.nudge()  # now, rather than while the next submit commits

    def take_handed(self) -> None:
        """Give workers the jobs submits claimed for this master (those the store confirms as ours to start)."""
        self.adopt(self.desk.take_handed(self.master.store.jobs, self.jobs_in_hand))

    def took_handoff(self, pool: Pool, worker: Worker, took: protocol.HandedJob) -> None:
        """A worker started a job a submit handed it directly: it is that worker's running job."""
        master = self.master
        job = self.desk.took(pool.daemon, took)
        pool.took_handoff(worker, job, master.limits(pool.daemon, job).timeout)
        master.activity.job_started(pool.daemon, job.id, job.task, job.attempts, worker.pid)
        master.wal_checkpoints.nudge()  # a submit just committed and its job runs: the next one is least likely now

    def close_channels(self, exits: list[WorkerExit]) -> None:
        """Keep what submits sent to exited workers' sockets (taken like any hand-off), then close them."""
        for exit in exits:
            channel = exit.worker.detach_channel()
            if channel is not None:
                self.desk.channel_closed(channel)

    def adopt(self, jobs: list[Job]) -> None:
        """Run these jobs, which this master owns and no worker has; those it cannot run go back to the queue."""
        master = self.master
        refused: list[int] = []
        fed: dict[str, Pool] = {}
        for job in jobs:
            pool = master.pools.get(job.daemon)
            if pool is None or master.draining or master.lease_lost or not master.daemons.accepts_jobs(job.daemon):
                refused.append(job.id)
                continue
            pool.hold([job])
            fed[pool.daemon] = pool
        for pool in fed.values():
            master.dispatcher.feed(pool)
        if refused:
            master.store.jobs.requeue(refused, master.id, refund_attempt=True)
            master.dispatcher.claim_soon()

    def adopt_lost_handoffs(self) -> None:
        """Adopt running jobs of ours we never heard of: a submit claimed them for us and died before saying so."""
        self.adopt(self.desk.lost(self.master.store.jobs, self.jobs_in_hand))

    def jobs_in_hand(self) -> set[int]:
        """Every job this master holds in memory: prefetched, with a worker, or with an outcome to write."""
        held = {job_id for pool in self.master.pools.values() for job_id in pool.held_job_ids()}
        held.update(self.master.endings.job_ids())
        return held

    def offer_handoffs(self) -> None:
        """Publish which daemons have an idle worker now, so submits hand their jobs straight to us (or withdraw it).

        The offer names every serving worker's socket: a submit's datagram to
        one that is busy after all is read by the desk (``Loop.wait``) and fed like a
        hand-off to the master, so the offer need not change as each job starts.
        """
        master = self.master
        stopping = master.draining or master.lease_lost
        pools = [pool for pool in master.pools.values() if not stopping and self.takes_handoffs(pool)]
        self.desk.publish({pool.daemon: tuple(filter(None, (w.offered_socket() for w in pool.workers))) for pool in pools})

    def takes_handoffs(self, pool: Pool) -> bool:
        settings = pool.settings
        if pool.waiting or settings.concurrency or settings.task_concurrency or settings.rate_limits().active or not self.master.daemons.accepts_jobs(pool.daemon):
            return False  # waiting jobs go first; caps and rate limits are counted under the claim's lock
        # An idle worker, not merely room behind short jobs: a job handed to a busy worker waits for the
        # desk to read it and the store to confirm it, slower than a claim (and a more urgent job's claim).
        return any(not worker.assignments and pool.free_slots(worker, 1) for worker in pool.workers)

    def withdraw_offer(self) -> None:
        self.desk.withdraw()
