"""When a master may still run jobs: what it knows of its own lease.

Another master declares this one dead once its heartbeat in the store is
older than ``heartbeat_lease``, and then runs its jobs. A master cut off
from the store cannot learn that it happened, but it knows when it last
renewed: the heartbeat it sent at ``renewed_at`` (taken before the
statement went out, so never later than the time the store recorded) keeps
it alive until ``renewed_at + lease`` at the earliest. So, a safety margin
before that moment, it starts nothing more (``may_start``) and its workers
are killed — by a thread of its own (``LeaseGuard.start``), because the
master's loop may itself be blocked in a store call that has not timed out
yet. A job then never runs on two masters at once. A later successful
heartbeat (nobody declared it dead) lifts the fence; a refused one means the
lease is lost (the master exits).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from . import defaults

log = logging.getLogger("jobd.master")

FENCED_REASON = "lease about to run out (the store could not be reached to renew it)"


def safety_margin(lease: float) -> float:
    """How long before the lease can run out the master stops its workers."""
    margin = max(defaults.LEASE_SAFETY_MARGIN_MIN_SECONDS, lease * defaults.LEASE_SAFETY_MARGIN_FRACTION)
    return min(margin, lease / 2)


class LeaseGuard:
    """The lease's deadline, and the fence: thread-safe (the loop renews it, a thread enforces it)."""

    def __init__(self, lease: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease = lease
        self.clock = clock
        self.renewed_at = clock()  # registration counts as the first heartbeat
        self.fenced = False
        self.fenced_at: float | None = None
        self._noticed = False  # the loop has done its part of the fence (see must_fence)
        self._changed = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._kill: Callable[[], None] | None = None

    @property
    def deadline(self) -> float:
        """Past this (monotonic) moment no job of this master may run."""
        return self.renewed_at + self.lease - safety_margin(self.lease)

    def renewed(self, sent_at: float) -> bool:
        """A heartbeat sent at ``sent_at`` was recorded; True if this lifts a fence."""
        with self._changed:
            self.renewed_at = max(self.renewed_at, sent_at)
            lifted = self.fenced
            self.fenced, self.fenced_at, self._noticed = False, None, False
            self._changed.notify_all()
        return lifted

    def may_start(self, now: float) -> bool:
        """Whether a job may be handed to a worker now."""
        return not self.fenced and now < self.deadline

    def must_fence(self, now: float) -> bool:
        """True once per fence, for the loop to do its part (withdraw offers, drop the backlog)."""
        with self._changed:
            if not self.fenced and now >= self.deadline:
                self.fenced, self.fenced_at = True, now
            if not self.fenced or self._noticed:
                return False
            self._noticed = True
            return True

    def fence(self, now: float) -> None:
        """Fence now, whatever the deadline (the lease is known to be lost)."""
        with self._changed:
            if not self.fenced:
                self.fenced, self.fenced_at = True, now
            self._noticed = True

    def to_dict(self, now: float) -> dict[str, float | bool]:
        return {"lease": self.lease, "renewed_ago": round(now - self.renewed_at, 1), "fenced": self.fenced,
                "fence_in": round(max(0.0, self.deadline - now), 1)}

    # -- the thread that enforces it -------------------------------------------

    def start(self, kill: Callable[[], None]) -> None:
        """Call ``kill`` (stop every worker now) from a thread of its own when the deadline passes unrenewed."""
        self._kill = kill
        self._stopping = False
        self._thread = threading.Thread(target=self._watch, name="jobd-lease-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def _watch(self) -> None:
        assert self._kill is not None
        while True:
            with self._changed:
                while not self._stopping and (self.fenced or self.clock() < self.deadline):
                    self._changed.wait(timeout=max(0.01, self.deadline - self.clock()) if not self.fenced else None)
                if self._stopping:
                    return
                self.fenced, self.fenced_at = True, self.clock()
                renewed_ago = self.clock() - self.renewed_at
            log.critical(
                "could not renew the lease for %.1fs (lease %.1fs): killing every worker now, so that no job this "
                "master holds can run while another master takes it over", renewed_ago, self.lease,
            )
            try:
                self._kill()
            except Exception:  # noqa: BLE001 - the loop kills them too (must_fence)
                log.exception("could not kill the workers from the lease guard")
