"""Dispatch: claim due jobs for the pools, keep a prefetch, feed workers with room.

Prefetched jobs wait in the pool's backlog, already claimed (running, owned
by this master): a worker that finishes gets the next one at once, without
waiting for a store round trip. They go back to the queue on a drain, a
daemon stop or a cancel; after a crash they are recovered like any running
job of a dead master.

A full backlog is not refilled until it is half empty, so a job submitted
with a higher priority than everything in it would wait for that half: a
submit's wake-up names its job's priority, and a master whose backlog and
workers' pipes hold only lower ones claims past them at once
(``claim(min_priority=...)``), between the longer steps of its turn. The
backlog hands out the highest priority first, and a worker full of short
jobs takes one more that is above them all and runs it next.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .. import defaults
from ..concurrency_caps import ConcurrencyCaps
from ..job import Job
from ..outcomes import Ending, EndingKind
from ..store.errors import StoreFault
from ..token_waits import TokenWaits
from ..workers.pool import Pool

if TYPE_CHECKING:
    from .core import Master

log = logging.getLogger("jobd.master")


def default_prefetch(workers: int, depth: int = 1) -> int:
    """Jobs claimed ahead of free workers: enough that a claim serves a burst (two rounds of
    every worker's pipeline for short jobs), few enough that other masters are not starved."""
    return max(8, 4 * workers, 2 * depth * workers) if workers else 0


def above_backlog(pool: Pool, announced: int | None) -> int | None:
    """The lowest priority worth claiming past ``pool``'s waiting jobs (backlog and pipes) for a job of ``announced`` priority; None: none."""
    lowest = pool.lowest_waiting_priority()
    if announced is None or lowest is None or announced <= lowest:
        return None
    return lowest + 1


class Dispatcher:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.claim_requested = True  # look for due jobs on the next turn
        self.token_waits = TokenWaits()  # rate-limited daemons: when their next token is due
        self.urgent_claimed_at = float("-inf")

    def jobs_per_write(self) -> int | None:
        """At most how many jobs one of the master's write transactions touches now; None: all it has.

        Short transactions (``Store.jobs_per_write``: SQLite's) let an urgent
        job's claim and the submits in between them, but cost throughput:
        every commit rewrites the same hot pages of the table and its
        indexes (-14% no-op jobs/s at 64 jobs a write). They only buy
        latency for jobs that jump the queue, so the master keeps its
        writes short only for a while after it claimed one.
        """
        if self.master.clock() - self.urgent_claimed_at > defaults.SHORT_WRITES_AFTER_URGENT_SECONDS:
            return None
        return self.master.store.jobs_per_write

    def claim_soon(self) -> None:
        """Look for due jobs on the next turn: a worker freed up, a job came due, or more may be waiting."""
        self.claim_requested = True

    def seconds_until_token(self, now: float) -> float | None:
        """How long until a rate-limited daemon's next token is due (None: no daemon waits for one)."""
        return self.token_waits.seconds_until_next(now)

    def claim_if_tokens_due(self, now: float) -> None:
        """Look for jobs once a rate-limited daemon's next token is due, not only at the next poll."""
        if self.token_waits.take_due(now):
            self.claim_soon()

    def dispatch_if_requested(self) -> None:
        if self.claim_requested:
            self.claim_requested = False
            self.dispatch()

    def dispatch(self, daemons: Mapping[str, int] | None = None) -> None:
        """Claim due jobs for every pool (or the pools of ``daemons``): its idle workers plus a prefetch.

        ``daemons`` maps each daemon a submit woke the master for to the
        highest priority announced: one above the backlog is claimed past it.
        """
        master = self.master
        for pool in master.pools.values():
            if daemons is not None and pool.daemon not in daemons:
                continue
            if not master.daemons.accepts_jobs(pool.daemon):
                self.return_backlog(pool)
                continue
            self.feed(pool)
            settings = pool.settings
            caps = ConcurrencyCaps(settings.concurrency, settings.task_concurrency)
            rates = settings.rate_limits()
            limited = caps.active or rates.active
            wanted = self.wanted(pool, limited=limited)
            announced = daemons.get(pool.daemon) if daemons is not None and not limited else None
            min_priority, refill = above_backlog(pool, announced), False
            if min_priority is not None:  # only what is more urgent than the backlog: a small, quick claim
                wanted, refill = max(1, pool.size), wanted > 0  # enough for every worker's next job
                self.urgent_claimed_at = master.clock()
            elif wanted <= 0:
                continue
            if not master.lease_keeper.valid():
                return
            claimed = 0
            size = self.jobs_per_write() or wanted
            while claimed < wanted:  # on SQLite a few short transactions: an urgent claim may come between them
                if claimed:
                    master.handoff.claim_if_urgent()
                jobs = master.store.jobs.claim(pool.daemon, min(size, wanted - claimed), master.id, caps=caps,
                                               promote=daemons is None and not claimed, rates=rates, min_priority=min_priority)
                claimed += len(jobs)
                pool.hold(jobs)
                self.feed(pool)
                if len(jobs) < size:
                    break
            self.token_waits.note(pool.daemon, master.store.jobs.next_token_at(pool.daemon) if rates.active else None)
            if claimed == wanted or refill:
                self.claim_soon()  # there may be more waiting (or the refill this urgent claim put off)

    def wanted(self, pool: Pool, *, limited: bool) -> int:
        """How many jobs to claim for ``pool`` now: its workers' room plus a prefetch, less what waits.

        None while enough wait already (the backlog is refilled in batches,
        not one claim per finished job); no prefetch for a ``limited`` pool
        (caps or rate limits count what it holds).
        """
        settings = pool.settings
        prefetch = 0 if limited else (
            settings.prefetch if settings.prefetch is not None else default_prefetch(pool.size, pool.depth()))
        room = pool.room()
        if pool.size == 0 or (room == 0 and pool.waiting > prefetch // 2):
            return 0
        return max(0, room + prefetch - pool.waiting)

    def feed(self, pool: Pool) -> None:
        """Give workers with room the pool's prefetched jobs (``Pool.feed``)."""
        master = self.master
        if not pool.waiting or master.lease_lost or not master.lease.may_start(master.clock()):
            return  # a master that may have lost its lease starts nothing it holds
        for worker, job in pool.feed(lambda job: self._admit(pool, job)):
            master.activity.job_started(pool.daemon, job.id, job.task, job.attempts, worker.pid)

    def return_backlog(self, pool: Pool) -> None:
        """Hand prefetched, unstarted jobs back to the queue (their attempt refunded)."""
        master = self.master
        jobs = pool.give_back()
        if not jobs:
            return
        if not master.store_health.available:
            log.warning("the store is unavailable: %s prefetched job(s) are recovered as orphans", len(jobs))
            return
        try:
            master.endings.end(pool.daemon, [(job, Ending(EndingKind.RETURNED)) for job in jobs])
        except StoreFault as error:
            master.store_link.failed(error)
            log.warning("could not return %s prefetched job(s); they are recovered as orphans", len(jobs))
        except Exception:
            log.exception("could not return %s prefetched job(s); they are recovered as orphans", len(jobs))

    def _admit(self, pool: Pool, job: Job) -> float | None:
        """A claimed job's timeout if it can run at all; if not, it is dead now, with the reason."""
        master = self.master
        tasks = master.inventory.get(pool.daemon, {})
        problem = job.unrunnable  # a row jobd cannot use as stored (store/row_decoding.py)
        if problem is None and job.task not in tasks:
            known = ", ".join(sorted(tasks)) or "none"
            problem = f"daemon {pool.daemon!r} has no task {job.task!r} (its tasks: {known})"
        charged = True
        if problem is None:
            limits = master.limits(pool.daemon, job)
            if job.attempts <= limits.max_attempts:
                return limits.timeout
            # Recovered after its master died during its last allowed attempt: that
            # attempt counts (as after a worker's crash); this claim's charge does not.
            allowed = limits.max_attempts
            problem = f"its last attempt ({allowed} of {allowed}) was interrupted: its master died (or lost its lease) while it ran"
            charged = False
        master.endings.end(pool.daemon, [(job, Ending(EndingKind.UNRUNNABLE, error=problem, charged=charged))])
        return None
