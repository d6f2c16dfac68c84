"""The master's schedule ticker: fires due entries through the store, exactly once per tick.

It keeps each entry's next due time in memory so the store is only asked
when something is due; the store transaction decides (and so two masters,
or a restarted one, never fire a tick twice).

A tick is on the clock's critical path: the jobs it creates (claimed by
this master where it asks, ``TickClaim``) are handed over first, and only
then does the ticker log and plan each entry's next due time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from .job import Job
from .schedules import Schedule, ScheduleEntry, next_fire_time, next_fire_times
from .store.store_core import StoreCore
from .store.schedules import TickClaim

HandOver = Callable[[list[Job]], None]

log = logging.getLogger("jobd.schedules")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Ticker:
    def __init__(self, store: StoreCore, schedule: Schedule, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.store = store
        self.clock = clock
        self.schedule = schedule
        self.next_due: dict[str, dt.datetime | None] = {}
        self.paused: set[str] = set()
        self.fired = 0
        self._earliest: dt.datetime | None = None  # the earliest next due time, kept while ``_planned``
        self._planned = False  # False: an entry changed since ``_earliest`` was worked out

    def set_schedule(self, schedule: Schedule) -> None:
        """Apply a reloaded schedule: removed entries stop at once, changed ones are re-planned."""
        for name in list(self.next_due):
            if name not in schedule or schedule[name] != self.schedule.get(name):
                del self.next_due[name]
        self.schedule = schedule
        self._planned = False

    def refresh_pauses(self) -> None:
        self.paused = self.store.schedules.paused_targets()

    def is_paused(self, entry: ScheduleEntry) -> bool:
        return f"entry:{entry.name}" in self.paused or f"daemon:{entry.daemon}" in self.paused

    def seconds_until_due(self) -> float | None:
        earliest = self.earliest_due()
        if earliest is None:
            return None
        return max(0.0, (earliest - self.clock()).total_seconds())

    def earliest_due(self) -> dt.datetime | None:
        """When the next entry is due (the distant past if one was never ticked), None if none ever is again.

        Worked out again only after a tick or a reload: the loop asks on every turn.
        """
        if not self._planned:
            pending = [due for due in self.next_due.values() if due is not None]
            if len(self.next_due) < len(self.schedule):
                self._earliest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
            else:
                self._earliest = min(pending) if pending else None
            self._planned = True
        return self._earliest

    def run_due(self, claim: Callable[[], TickClaim | None] | None = None, hand_over: HandOver | None = None) -> list[int]:
        """Tick every entry that is due (or never ticked), in one transaction; return the job ids fired.

        When something is due, ``claim`` says who takes the new jobs (asked
        then, with the pools as they are); the jobs created claimed go to
        ``hand_over`` (in id order) as soon as the transaction commits,
        before any bookkeeping.
        """
        now = self.clock()
        earliest = self.earliest_due()
        if earliest is None or earliest > now:
            return []
        due = [
            (entry, self.is_paused(entry))
            for name, entry in self.schedule.items()
            if name not in self.next_due or (self.next_due[name] is not None and self.next_due[name] <= now)  # type: ignore[operator]
        ]
        if not due:
            return []
        try:
            results = self.store.schedules.tick_many(due, now, claim=claim() if claim is not None else None)
        except Exception:
            log.exception("%s schedule entr(ies) could not tick; will retry", len(due))
            return []
        claimed = sorted((job for result in results.values() for job in result.claimed), key=lambda job: job.id)
        if claimed and hand_over is not None:
            hand_over(claimed)
        fired: list[int] = []
        for entry, _paused in due:
            result = results[entry.name]
            if result.fired:
                log.info("schedule %s fired job(s) %s", entry.name, result.fired)
            if result.skipped:
                log.warning("schedule %s skipped %s tick(s): its previous job is still active (overlap=forbid)", entry.name, result.skipped)
            fired.extend(result.fired)
            self.next_due[entry.name] = next_fire_time(entry, result.cursor)
        self._planned = False
        self.fired += len(fired)
        return fired

    def describe(self) -> list[dict[str, Any]]:
        """Plain data for status and `jobd top`: each entry with its next ticks.

        ``next`` holds epochs; ``next_local`` the same ticks as ISO text on the
        entry's own wall clock (with its UTC offset), the way screens show them.
        """
        now = self.clock()
        states = self.store.schedules.states()
        rows = []
        for name, entry in sorted(self.schedule.items()):
            state = states.get(name)
            upcoming = next_fire_times(entry, now, 3) if entry.enabled else []
            rows.append({
                "name": name,
                "daemon": entry.daemon,
                "task": entry.task,
                "trigger": entry.rule.describe(),
                "timezone": entry.zone.key,
                "paused": self.is_paused(entry),
                "enabled": entry.enabled,
                "next": [tick.timestamp() for tick in upcoming],
                "next_local": [tick.astimezone(entry.zone).isoformat() for tick in upcoming],
                "next_run": upcoming[0].timestamp() if upcoming and not self.is_paused(entry) else None,
                "last_fire": state.last_fire if state else None,
                "last_job_id": state.last_job_id if state else None,
                "fired": state.fired if state else 0,
                "skipped": state.skipped if state else 0,
            })
        return rows
