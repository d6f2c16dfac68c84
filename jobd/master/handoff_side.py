"""The master's side of the submit→worker hand-off (``jobd/handoff.py``): moved here as it was.

A submit may claim its job for this master and say so in a datagram
(``wakeup.WakeSocket``), or hand it straight to an idle worker's socket;
this object takes those jobs, adopts the ones it was never told of, and
publishes the offer that tells submits which daemons have room.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .. import defaults
from ..handoff import Offer, handed_job, offer_path, publish, runnable_handed
from ..job import Job
from ..throttle import Throttle
from ..wakeup import Handed, HandedJob, WakeSocket
from ..workers import protocol
from ..workers.pool import Pool, Worker, WorkerExit

if TYPE_CHECKING:
    from .core import Master

log = logging.getLogger("jobd.master")


class HandoffSide:
    def __init__(self, master: Master) -> None:
        self.master = master
        clock = master.clock
        self.wakeups = WakeSocket(master.config.socket)
        self.woken: set[str] = set()  # daemons a submit announced a job for (see claim_woken)
        self.handoff_offer = offer_path(master.config.socket)
        self.offered: Offer | None = None  # daemons whose jobs submits may hand straight to us, and to which workers
        self.offer_check = Throttle(defaults.HANDOFF_OFFER_INTERVAL_SECONDS, clock)
        self.adopt_check = Throttle(defaults.HANDOFF_ADOPT_AFTER_SECONDS, clock)
        # How submits' jobs reached a worker: straight ("to_workers"), or through this
        # master ("through_master"), of which workers passed on "passed_by_workers".
        self.handoffs = {"to_workers": 0, "through_master": 0, "passed_by_workers": 0}

    def claim_woken(self) -> None:
        """Start the jobs submits handed us, then claim for the daemons submits woke us for."""
        master = self.master
        if self.wakeups.handed:
            master.store_link.guarded(self.take_handed)
        if self.woken and not master.draining and master.store_health.available:
            woken, self.woken = self.woken, set()
            master.store_link.guarded(lambda: master.dispatcher.dispatch(woken))
            master.wal_checkpoints.nudge()  # now, rather than while the next submit commits

    def take_handed(self) -> None:
        """Give workers the jobs submits claimed for this master.

        A datagram only names a job, whoever sent it: the store says which are
        ours to start (running, ours, first attempt), so a forged or stale one
        runs nothing, and one we already hold is not started twice.
        """
        handed = self.wakeups.take_handed()
        self.handoffs["through_master"] += len(handed)
        confirmed = self.master.store.jobs.handed(sorted({h.job_id for h in handed}), self.master.id) if handed else []
        self.adopt(runnable_handed(confirmed, self.jobs_in_hand()) if confirmed else [])

    def took_handoff(self, pool: Pool, worker: Worker, took: protocol.TookHandoff) -> None:
        """A worker started a job a submit handed it directly: it is that worker's running job."""
        master = self.master
        handed = HandedJob(pool.daemon, took.job_id, took.priority, took.max_attempts, took.task, took.args)
        job = handed_job(handed, master.id, time.time())
        pool.took_handoff(worker, job, master.limits(pool.daemon, job).timeout)
        master.activity.job_started(pool.daemon, job.id, job.task, job.attempts, worker.pid)
        self.handoffs["to_workers"] += 1
        master.wal_checkpoints.nudge()  # a submit just committed and its job runs: the next one is least likely now

    def passed_on(self, handed: list[Handed]) -> None:
        """Hand-offs sent to a worker that did not run them: the master takes them like its own."""
        self.wakeups.handed.extend(handed)
        self.handoffs["passed_by_workers"] += len(handed)

    def close_channels(self, exits: list[WorkerExit]) -> None:
        """Keep what submits sent to exited workers' sockets (taken like any hand-off), then close them."""
        for exit in exits:
            self.passed_on(exit.worker.close_channel())

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
        master = self.master
        started_before = time.time() - defaults.HANDOFF_ADOPT_AFTER_SECONDS
        lost = set(master.store.jobs.owned_running(master.id, started_before=started_before)) - self.jobs_in_hand()
        if lost:
            log.warning("adopting %s job(s) handed to this master without a word: %s", len(lost), sorted(lost)[:20])
            self.adopt(master.store.jobs.handed(sorted(lost), master.id))

    def jobs_in_hand(self) -> set[int]:
        """Every job this master holds in memory: prefetched, with a worker, or with an outcome to write."""
        held = {job_id for pool in self.master.pools.values() for job_id in pool.held_job_ids()}
        held.update(self.master.endings.job_ids())
        return held

    def offer_handoffs(self) -> None:
        """Publish which daemons have room now, so submits hand their jobs straight to us (or withdraw it).

        The offer names every serving worker's socket: a submit's datagram to
        one that is busy after all is read by the loop (``Loop.wait``) and fed like a
        hand-off to the master, so the offer need not change as each job starts.
        """
        master = self.master
        stopping = master.draining or master.lease_lost
        pools = [pool for pool in master.pools.values() if not stopping and self.takes_handoffs(pool)]
        workers = {pool.daemon: tuple(filter(None, (w.offered_socket() for w in pool.workers))) for pool in pools}
        offered = Offer(master.id, frozenset(workers), {daemon: found for daemon, found in workers.items() if found}) if pools else None
        if offered != self.offered:
            publish(self.handoff_offer, offered)
            self.offered = offered

    def takes_handoffs(self, pool: Pool) -> bool:
        settings = pool.settings
        if pool.waiting or settings.concurrency or settings.task_concurrency or settings.rate_limits().active or not self.master.daemons.accepts_jobs(pool.daemon):
            return False  # waiting jobs go first; caps and rate limits are counted under the claim's lock
        return pool.room() > 0

    def withdraw_offer(self) -> None:
        if self.offered:
            self.offered = None
            try:
                publish(self.handoff_offer, None)
            except OSError:
                log.warning("could not remove the hand-off offer %s", self.handoff_offer, exc_info=True)
