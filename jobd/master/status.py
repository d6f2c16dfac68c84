"""The master's status snapshot, as `jobd status`, the live activity and the dashboard read it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..status.snapshot import build_master_status

if TYPE_CHECKING:
    from .core import Master


class StatusReport:
    def __init__(self, master: Master) -> None:
        self.master = master
        self.counts: tuple[float, dict[str, dict[str, int]]] | None = None  # when read, and the counts
        self.schedule_rows: list[dict[str, Any]] = []  # the last read, shown while the store is down

    def status(self, *, counts_max_age: float = 0.0) -> dict[str, Any]:
        """This master's status; job counts may be up to ``counts_max_age`` seconds old.

        Counting jobs scans the jobs table, so the live snapshot published
        every second reuses a count for a few seconds; `jobd status` asks fresh.
        """
        master = self.master
        now = master.clock()
        if (self.counts is None or now - self.counts[0] > counts_max_age) and master.store_health.available:
            try:
                self.counts = (now, master.store.jobs.counts())
            except sa.exc.DBAPIError as error:  # answer from memory: the counts last read
                master.store_link.failed(error)
        counts = self.counts[1] if self.counts is not None else {}
        if master.store_health.available:
            try:
                self.schedule_rows = master.ticker.describe()
            except sa.exc.DBAPIError as error:
                master.store_link.failed(error)
        return build_master_status(
            master_id=master.id, started_at=master.started_at, draining=master.draining, config_source=master.config.source,
            jobs_finished=master.jobs_finished, handoffs=master.handoff.desk.counted(), store=master.store_health.to_dict(),
            lease=master.lease.to_dict(now), pools=master.pools, controls=master.daemons, counts=counts,
            schedules=self.schedule_rows,
        ).to_wire()
