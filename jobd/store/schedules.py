"""Schedule state in the store: fire each tick exactly once, across restarts and masters.

A tick becomes a job in the same transaction that moves the entry's cursor
(its last decided fire time), with the entry's row locked (``FOR UPDATE`` on
MySQL, ``BEGIN IMMEDIATE`` on SQLite). A second master, a restart or a
retried transaction therefore finds the tick already decided; the unique
fire key on the jobs table is the last line of defence.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..job import encode_json
from ..schedules import ScheduleEntry, apply_jitter, fire_key, overlap_decision, plan_ticks
from ..states import ACTIVE, JobState
from .engine import READ_ONLY


@dataclass(frozen=True)
class TickResult:
    fired: list[int]  # ids of the jobs created
    skipped: int  # ticks skipped because the previous job was still active (overlap forbid)
    cursor: dt.datetime


@dataclass(frozen=True)
class EntryState:
    entry: str
    last_fire: float | None
    last_job_id: int | None
    fired: int
    skipped: int
    last_skipped_at: float | None


def _utc(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


class ScheduleBook:
    def __init__(self, engine: sa.Engine, table: sa.Table, pauses: sa.Table, jobs: sa.Table) -> None:
        self.engine = engine
        self.table = table
        self.pauses = pauses
        self.jobs = jobs
        self.is_mysql = engine.dialect.name == "mysql"

    def tick(self, entry: ScheduleEntry, now: dt.datetime, *, paused: bool = False, rng: random.Random | None = None) -> TickResult:
        """Decide and fire the entry's due ticks at ``now``; create their jobs."""
        return self.tick_many([(entry, paused)], now, rng=rng)[entry.name]

    def tick_many(
        self, entries: list[tuple[ScheduleEntry, bool]], now: dt.datetime, *, rng: random.Random | None = None
    ) -> dict[str, TickResult]:
        """Tick several due entries (each with its paused flag) in one transaction.

        Rows are locked in name order, so masters ticking overlapping sets of
        entries never deadlock; one commit serves every entry due at ``now``.
        """
        rng = rng or random.Random()
        results: dict[str, TickResult] = {}
        with self.engine.begin() as connection:
            for entry, paused in sorted(entries, key=lambda item: item[0].name):
                results[entry.name] = self._tick_on(connection, entry, now, paused, rng)
        return results

    def _tick_on(self, connection: sa.Connection, entry: ScheduleEntry, now: dt.datetime, paused: bool, rng: random.Random) -> TickResult:
        row = self._locked_row(connection, entry.name)
        last_fire = _utc(row["last_fire"])
        plan = plan_ticks(entry, last_fire, now)
        fire = () if paused else plan.fire
        fired: list[int] = []
        skipped = 0
        last_job_id = row["last_job_id"]
        if fire:
            decision = overlap_decision(entry, self._is_active(connection, last_job_id))
            if decision == "skip":
                skipped = len(fire)
            else:
                if decision == "replace":
                    self._cancel(connection, last_job_id, now.timestamp())
                for tick in fire:
                    job_id = self._insert_job(connection, entry, tick, apply_jitter(tick, entry.jitter.total_seconds(), rng))
                    if job_id is not None:
                        fired.append(job_id)
        values: dict[str, Any] = {
            "last_fire": plan.cursor.timestamp(),
            "fired": self.table.c.fired + len(fired),
            "updated_at": time.time(),
        }
        if fired:
            values["last_job_id"] = fired[-1]
        if skipped:
            values["skipped"] = self.table.c.skipped + skipped
            values["last_skipped_at"] = now.timestamp()
        connection.execute(self.table.update().where(self.table.c.entry == entry.name).values(**values))
        return TickResult(fired=fired, skipped=skipped, cursor=plan.cursor)

    def _locked_row(self, connection: sa.Connection, name: str) -> Any:
        query = sa.select(self.table).where(self.table.c.entry == name)
        if self.is_mysql:
            query = query.with_for_update()
        row = connection.execute(query).mappings().first()
        if row is None:
            try:
                with connection.begin_nested():
                    connection.execute(self.table.insert().values(entry=name, updated_at=time.time()))
            except sa.exc.IntegrityError:
                pass  # another master created it first
            row = connection.execute(query).mappings().first()
        return row

    def _is_active(self, connection: sa.Connection, job_id: int | None) -> bool:
        if job_id is None:
            return False
        state = connection.execute(sa.select(self.jobs.c.state).where(self.jobs.c.id == job_id)).scalar()
        return state is not None and JobState(state) in ACTIVE

    def _cancel(self, connection: sa.Connection, job_id: int | None, now: float) -> None:
        if job_id is None:
            return
        jobs = self.jobs
        connection.execute(
            jobs.update().where(jobs.c.id == job_id, jobs.c.state == str(JobState.RUNNING)).values(cancel_requested=True, updated_at=now)
        )
        connection.execute(
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.state.in_([str(JobState.QUEUED), str(JobState.SCHEDULED), str(JobState.RETRYING)]))
            .values(state=str(JobState.CANCELLED), finished_at=now, updated_at=now, error="replaced by a newer tick")
        )

    def _insert_job(self, connection: sa.Connection, entry: ScheduleEntry, tick: dt.datetime, run_at: dt.datetime) -> int | None:
        now = time.time()
        try:
            with connection.begin_nested():
                result = connection.execute(
                    self.jobs.insert().values(
                        daemon=entry.daemon, task=entry.task, args=encode_json(dict(entry.args)),
                        state=str(JobState.SCHEDULED if run_at.timestamp() > now else JobState.QUEUED),
                        priority=0, attempts=0, max_attempts=entry.max_attempts,
                        run_at=run_at.timestamp(), fire_key=fire_key(entry.name, tick),
                        origin="schedule", created_at=now, updated_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            return None  # this tick already has its job
        primary_key = result.inserted_primary_key
        return int(primary_key[0]) if primary_key else None

    # -- reading and pausing ------------------------------------------------

    def states(self) -> dict[str, EntryState]:
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            rows = connection.execute(sa.select(self.table)).mappings().all()
        return {
            row["entry"]: EntryState(row["entry"], row["last_fire"], row["last_job_id"], int(row["fired"]), int(row["skipped"]), row["last_skipped_at"])
            for row in rows
        }

    def paused_targets(self) -> set[str]:
        with self.engine.connect().execution_options(**READ_ONLY) as connection:
            return set(connection.execute(sa.select(self.pauses.c.target)).scalars())

    def pause(self, target: str) -> bool:
        """Pause a target ("daemon:NAME" or "entry:NAME"); False if it already was."""
        try:
            with self.engine.begin() as connection:
                connection.execute(self.pauses.insert().values(target=target, paused_at=time.time()))
        except sa.exc.IntegrityError:
            return False
        return True

    def resume(self, target: str) -> bool:
        with self.engine.begin() as connection:
            return bool(connection.execute(self.pauses.delete().where(self.pauses.c.target == target)).rowcount)
