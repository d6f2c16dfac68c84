"""A graceful stop: no new jobs, running ones finish up to the drain timeout, the rest go back to the queue."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..store.errors import StoreFault, describe

if TYPE_CHECKING:
    from .core import Master

log = logging.getLogger("jobd.master")


class Drain:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.started_at: float | None = None

    def begin(self, reason: str) -> None:
        """Stop claiming; let running jobs finish up to the drain timeout."""
        master = self.master
        if master.draining:
            return
        log.info("draining (%s): no new jobs; waiting for running ones", reason)
        master.observers.draining(reason)
        master.draining = True
        master.handoff.withdraw_offer()
        for pool in master.pools.values():
            pool.refuse_submits()  # a submit's job that reaches a worker now goes back to the queue
        self.started_at = master.clock()
        if master.store_health.available:  # a stop never waits for a store known to be down
            try:  # say so at once: `jobd status` and other masters see "draining"
                master.store.masters.heartbeat(master.id, state="draining")
            except StoreFault as error:
                master.store_link.failed(error)
                log.warning("could not record the drain in the store (%s)", describe(error))
        for pool in master.pools.values():
            master.dispatcher.return_backlog(pool)
            pool.retire_idle()

    def proceed(self) -> None:
        """Kill the jobs that outlived their daemon's drain timeout; finish once no worker is left."""
        master = self.master
        assert self.started_at is not None
        elapsed = master.clock() - self.started_at
        busy = False
        for pool in master.pools.values():
            config = master.config
            timeout = config.drain_timeout_for(pool.daemon) if pool.daemon in config.daemons else config.drain_timeout
            busy = busy or bool(pool.live_workers())
            pool.wind_down(kill_running=elapsed > timeout)
        if not busy:
            master.finished = True

    def end_now(self) -> None:
        """A second stop signal: stop every worker now; unfinished jobs go back to the queue."""
        for pool in self.master.pools.values():
            pool.wind_down(kill_running=True)
