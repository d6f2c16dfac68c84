"""The loop's periodic work: the ticker's due schedules, heartbeats, claims, offers, progress.

Each chore runs at its own pace (a ``Throttle`` each); a submitter waiting
for its job to start comes first, then a due schedule tick: its jobs are
created claimed by this master (as many as its workers have room for, plus
the prefetch) and reach free workers before any other chore runs.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .. import defaults
from ..concurrency_caps import ConcurrencyCaps
from ..job import Job
from ..store.schedules import TickClaim
from ..throttle import Throttle

if TYPE_CHECKING:
    from .core import Master

log = logging.getLogger("jobd.master")

PROGRESS_FLUSH_SECONDS = 2.0


class PeriodicWork:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.poll = Throttle(master.config.poll_interval, master.clock)
        self.progress_flush = Throttle(PROGRESS_FLUSH_SECONDS, master.clock)

    def tick(self) -> None:
        master = self.master
        master.handoff.catch_up()  # wake-ups sent while this turn read its workers: claimed now, not next turn
        master.handoff.claim_woken()  # a submitter is waiting for its job to start: before the periodic chores below
        if not master.draining and master.ticker.run_due(self._tick_claim, self._hand_over):
            master.dispatcher.claim_soon()  # the jobs this master did not take wait in the queue
        master.observers.tick(master)
        master.lease_keeper.beat_if_due()
        if master.activity.due():
            self._publish_activity()
        if master.draining:
            master.drain.proceed()
            return
        master.daemons.tick()
        for pool in master.pools.values():
            pool.maintain()
        if self.poll.ready():
            master.dispatcher.claim_soon()
            master.operations.apply_cancel_requests()
            master.ticker.refresh_pauses()
        master.dispatcher.claim_if_tokens_due(time.time())
        master.dispatcher.dispatch_if_requested()
        if master.handoff.desk.adopt_due():
            master.handoff.adopt_lost_handoffs()
        if master.handoff.desk.offer_due():
            master.handoff.offer_handoffs()
        if self.progress_flush.ready():
            self._flush_progress()

    def _tick_claim(self) -> TickClaim | None:
        """What this master takes of a tick's jobs as they are created: what a claim now would take.

        Nothing for a daemon under caps or rate limits (those are counted
        under their own lock by a claim), a stopped one, or while this master
        may not start jobs (its lease).
        """
        master = self.master
        if master.lease_lost or not master.lease.may_start(master.clock()) or not master.lease_keeper.valid():
            return None
        limits: dict[str, int] = {}
        for name, pool in master.pools.items():
            settings = pool.settings
            if ConcurrencyCaps(settings.concurrency, settings.task_concurrency).active or settings.rate_limits().active:
                continue
            if master.daemons.accepts_jobs(name):
                limits[name] = master.dispatcher.wanted(pool, limited=False)
        return TickClaim(master.id, limits) if any(limits.values()) else None

    def _hand_over(self, jobs: list[Job]) -> None:
        """The jobs a tick created claimed by this master: into their pools, to workers with room at once."""
        master = self.master
        for name, pool in master.pools.items():
            held = [job for job in jobs if job.daemon == name]
            if held:
                pool.hold(held)
                master.dispatcher.feed(pool)

    def _flush_progress(self) -> None:
        """Persist running jobs' latest progress (display data: a failure is logged, never raised)."""
        master = self.master
        progress = {job_id: report for pool in master.pools.values() for job_id, report in pool.progress_by_job().items()}
        try:
            master.store.jobs.save_progress(progress)
        except Exception:
            log.warning("could not persist progress", exc_info=True)
            master.observers.store_error("progress")

    def _publish_activity(self) -> None:
        master = self.master
        try:
            snapshot = master.status(counts_max_age=defaults.SNAPSHOT_COUNTS_MAX_AGE_SECONDS)
        except Exception:
            log.debug("no status snapshot for live activity this time", exc_info=True)
            snapshot = None
        if snapshot is not None:
            master.activity.publish(snapshot)
