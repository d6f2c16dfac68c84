"""The master's status snapshot, as `jobd status`, the live activity and the dashboard read it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..status.snapshot import build_master_status
from ..store.errors import StoreFault
from .job_counts import BackgroundCounts

if TYPE_CHECKING:
    from .core import Master


class StatusReport:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.counts = BackgroundCounts(master.store.jobs.counts, master.clock)
        self.schedule_rows: list[dict[str, Any]] = []  # the last read, shown while the store is down

    def status(self, *, counts_max_age: float = 0.0) -> dict[str, Any]:
        """This master's status; job counts may be up to ``counts_max_age`` seconds old.

        Counting jobs scans the jobs table, so the live snapshot published
        every second reuses a count for a few seconds, read by a thread
        (``job_counts``); `jobd status` asks fresh.
        """
        master = self.master
        now = master.clock()
        counts: dict[str, dict[str, int]] | None = None
        if counts_max_age > 0 and self.counts.latest is not None:  # the first snapshot waits for real counts
            counts = self.counts.get(counts_max_age) if master.store_health.available else self.counts.get(float("inf"))
        elif master.store_health.available:
            try:
                counts = master.store.jobs.counts()
                self.counts.store(counts)
            except StoreFault as error:  # answer from memory: the counts last read
                master.store_link.failed(error)
        if counts is None:
            counts = self.counts.latest[1] if self.counts.latest is not None else {}
        if master.store_health.available:
            try:
                self.schedule_rows = master.ticker.describe()
            except StoreFault as error:
                master.store_link.failed(error)
        return build_master_status(
            master_id=master.id, started_at=master.started_at, draining=master.draining, config_source=master.config.source,
            jobs_finished=master.jobs_finished, handoffs=master.handoff.desk.counted(), store=master.store_health.to_dict(),
            lease=master.lease.to_dict(now), pools=master.pools, controls=master.daemons, counts=counts,
            schedules=self.schedule_rows,
        ).to_wire()
