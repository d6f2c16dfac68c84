"""When a master may still start jobs: what it knows of its own lease.

Another master declares this one dead once its heartbeat in the store is
older than ``heartbeat_lease``, and then runs its jobs. A master cut off
from the store cannot learn that it happened, but it knows when it last
renewed: the heartbeat it sent at ``renewed_at`` (taken before the
statement went out, so never later than the time the store recorded) keeps
it alive until ``renewed_at + lease`` at the earliest. So it starts nothing
(``may_start``) and kills every worker (``must_fence``) a safety margin
before that moment, whether or not the store answers: a job never runs on
two masters at once. A later successful heartbeat (nobody declared it dead)
lifts the fence; a refused one means the lease is lost (the master exits).

Pure logic: the caller passes the monotonic ``now``.
"""

from __future__ import annotations

from . import defaults

FENCED_REASON = "lease about to run out (the store could not be reached to renew it)"


def safety_margin(lease: float) -> float:
    """How long before the lease can run out the master stops its workers."""
    margin = max(defaults.LEASE_SAFETY_MARGIN_MIN_SECONDS, lease * defaults.LEASE_SAFETY_MARGIN_FRACTION)
    return min(margin, lease / 2)


class LeaseGuard:
    def __init__(self, lease: float, now: float) -> None:
        self.lease = lease
        self.renewed_at = now  # registration counts as the first heartbeat
        self.fenced = False
        self.fenced_at: float | None = None

    @property
    def deadline(self) -> float:
        """Past this (monotonic) moment no job of this master may run."""
        return self.renewed_at + self.lease - safety_margin(self.lease)

    def renewed(self, sent_at: float) -> bool:
        """A heartbeat sent at ``sent_at`` was recorded; True if this lifts a fence."""
        self.renewed_at = max(self.renewed_at, sent_at)
        lifted = self.fenced
        self.fenced = False
        self.fenced_at = None
        return lifted

    def may_start(self, now: float) -> bool:
        """Whether a job may be handed to a worker now."""
        return not self.fenced and now < self.deadline

    def must_fence(self, now: float) -> bool:
        """True once, when the workers must be stopped now (the lease could not be renewed in time)."""
        if self.fenced or now < self.deadline:
            return False
        self.fenced = True
        self.fenced_at = now
        return True

    def fence(self, now: float) -> None:
        """Fence now, whatever the deadline (the lease is known to be lost)."""
        self.fenced = True
        self.fenced_at = self.fenced_at or now

    def to_dict(self, now: float) -> dict[str, float | bool]:
        return {"lease": self.lease, "renewed_ago": round(now - self.renewed_at, 1), "fenced": self.fenced,
                "fence_in": round(max(0.0, self.deadline - now), 1)}
