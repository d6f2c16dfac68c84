"""The master's steps that talk to a store that may be down.

Workers keep running their jobs through an outage; what could not be
written stays pending (finished attempts, exited workers) and is written
once the store answers again. While the store is down the loop does not call
it at all (``StoreHealth`` probes it in a thread); once a probe answers, a
heartbeat is the first write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..store.errors import StoreFault, describe

if TYPE_CHECKING:
    from .core import Master

log = logging.getLogger("jobd.master")

WARN_EVERY_SECONDS = 30.0  # an outage that comes and goes is not logged on every turn


class StoreLink:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.health = master.store_health
        self.reconnected = False  # the store was down, a probe reached it and a heartbeat went through
        self.warned_at = float("-inf")

    def guarded(self, step: Callable[[], None]) -> None:
        """Run a step that talks to the store; if the store is down, skip it and go on."""
        if not self.health.available and not self._reconnect():
            return
        try:
            step()
        except StoreFault as error:
            self.failed(error)
            return
        if not self.health.available:
            ended = self.health.succeeded()  # the heartbeat and this step both went through: it is back
            if ended is not None:
                self.reconnected = False
                log.warning("the store is back after %.1fs (%s failed attempt(s); last error: %s)",
                            self.health.last_outage_seconds or 0.0, ended.failures, ended.error)

    def failed(self, error: StoreFault) -> None:
        """A store call failed for an outage: count it, reclaim the log's space, warn now and then."""
        master = self.master
        master.observers.store_error("loop")
        master.wal_checkpoints.reclaim()  # SQLite on a full disk: the log's own space must come back first
        self.reconnected = False
        started = self.health.failed(error)
        now = master.clock()
        if now - self.warned_at > WARN_EVERY_SECONDS:
            self.warned_at = now
            if started:
                log.error("the store is unavailable (%s); retrying every %.1fs, workers keep running",
                          describe(error), self.health.retry_interval)
            else:
                log.error("the store is still unavailable (%s)", describe(error))

    def _reconnect(self) -> bool:
        """The store was down and a probe reached it: renew the lease first, then carry on. True if it answered."""
        if not self.health.may_try():
            return False
        if self.reconnected:
            return not self.master.lease_lost  # this turn's heartbeat went through already
        self.master.store.dispose()  # connections that lived through the outage may be dead: fresh ones
        try:
            alive = self.master.lease_keeper.beat()
        except StoreFault as error:
            self.failed(error)
            return False
        self.reconnected = True
        self.master.dispatcher.claim_soon()
        return alive
