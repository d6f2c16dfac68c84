"""Schedule state in the store: fire each tick exactly once, across restarts and masters.

A tick becomes a job in the same transaction that moves the entry's cursor
(its last decided fire time), with the entry's row locked (``FOR UPDATE`` on
MySQL, ``BEGIN IMMEDIATE`` on SQLite). A second master, a restart or a
retried transaction therefore finds the tick already decided; the unique
fire key on the jobs table is the last line of defence.

Every entry due at one instant is decided in one transaction of a few
statements, whatever their number: one read locks all their rows, one
read finds which previous jobs still run, one multi-row INSERT creates the
jobs and one batched UPDATE moves the cursors. A master can take the new
jobs as it creates them (``TickClaim``): they are written already claimed —
``running``, owned by it, their attempt counted, as a claim writes them —
so a tick reaches a free worker without a claim's round trip.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


from ..job import Job, encode_json
from ..schedules import OverlapPolicy, ScheduleEntry, TickPlan, apply_jitter, fire_key, overlap_decision, plan_ticks
from ..states import JobState
from .sql_runner import SqlRunner
from .schedule_sql import ScheduleSql


@dataclass(frozen=True)
class TickResult:
    fired: list[int]  # ids of the jobs created
    skipped: int  # ticks skipped because the previous job was still active (overlap forbid)
    cursor: dt.datetime
    claimed: list[Job] = field(default_factory=list)  # the fired jobs created claimed (``TickClaim``), in id order


@dataclass(frozen=True)
class TickClaim:
    """A master taking the jobs a tick creates: at most ``limits[daemon]`` of each daemon's.

    Only jobs due at once are taken, and none of a daemon that has a due
    queued job of the same or a higher priority: a claim would have taken
    that one first, so the new jobs wait their turn in the queue.
    """

    owner: str
    limits: Mapping[str, int]


@dataclass(frozen=True)
class EntryState:
    entry: str
    last_fire: float | None
    last_job_id: int | None
    fired: int
    skipped: int
    last_skipped_at: float | None


@dataclass
class _Decided:
    """One entry's tick, decided under its row lock."""

    entry: ScheduleEntry
    plan: TickPlan
    fire: tuple[dt.datetime, ...]
    last_job_id: int | None
    skipped: int = 0
    fired: list[int] = field(default_factory=list)
    claimed: list[Job] = field(default_factory=list)


@dataclass(frozen=True)
class _NewJob:
    decided: _Decided
    values: dict[str, Any]
    claimed: bool  # created claimed by the ticking master (``TickClaim``)


def _utc(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


class ScheduleBook:
    def __init__(self, runner: SqlRunner) -> None:
        self.runner = runner

    def tick(self, entry: ScheduleEntry, now: dt.datetime, *, paused: bool = False, rng: random.Random | None = None) -> TickResult:
        """Decide and fire the entry's due ticks at ``now``; create their jobs."""
        return self.tick_many([(entry, paused)], now, rng=rng)[entry.name]

    def tick_many(
        self, entries: list[tuple[ScheduleEntry, bool]], now: dt.datetime, *, rng: random.Random | None = None,
        claim: TickClaim | None = None,
    ) -> dict[str, TickResult]:
        """Tick several due entries (each with its paused flag) in one transaction.

        Rows are locked in name order, so masters ticking overlapping sets of
        entries never deadlock; one commit serves every entry due at ``now``.
        With ``claim``, the new jobs its limits allow are created claimed by it.
        """
        rng = rng or random.Random()
        ordered = sorted(entries, key=lambda item: item[0].name)
        returning = self.runner.returns_ids()
        with self.runner.write() as statements:
            sql = ScheduleSql(statements, returning=returning)
            rows = sql.locked_rows([entry.name for entry, _paused in ordered], time.time())
            decided = []
            for entry, paused in ordered:
                row = rows[entry.name]
                plan = plan_ticks(entry, _utc(row["last_fire"]), now)
                decided.append(_Decided(entry, plan, () if paused else plan.fire, row["last_job_id"]))
            self._apply_overlap(sql, [item for item in decided if item.fire], now)
            self._insert_jobs(sql, self._new_jobs(sql, decided, now, rng, claim))
            self._move_cursors(sql, decided, now)
        return {
            item.entry.name: TickResult(fired=item.fired, skipped=item.skipped, cursor=item.plan.cursor, claimed=item.claimed)
            for item in decided
        }

    def _apply_overlap(self, sql: ScheduleSql, firing: list[_Decided], now: dt.datetime) -> None:
        """Skip or replace the ticks whose entry's previous job is still active (its overlap policy)."""
        previous = [  # an entry that allows overlap fires whatever its previous job does: no need to look
            item.last_job_id for item in firing if item.last_job_id is not None and item.entry.overlap is not OverlapPolicy.ALLOW
        ]
        active = sql.active_among(previous)
        for item in firing:
            decision = overlap_decision(item.entry, item.last_job_id in active)
            if decision == "skip":
                item.skipped, item.fire = len(item.fire), ()
            elif decision == "replace" and item.last_job_id is not None:
                sql.replace(item.last_job_id, now.timestamp())

    def _new_jobs(
        self, sql: ScheduleSql, decided: list[_Decided], now: dt.datetime, rng: random.Random, claim: TickClaim | None,
    ) -> list[_NewJob]:
        """The rows of the jobs to create, oldest tick first per entry; those ``claim`` may take are claimed."""
        created = time.time()
        budget = self._claim_budget(sql, decided, created, claim)
        new_jobs = []
        for item in decided:
            entry = item.entry
            for tick in item.fire:
                run_at = apply_jitter(tick, entry.jitter.total_seconds(), rng).timestamp()
                values: dict[str, Any] = {
                    "daemon": entry.daemon, "task": entry.task, "args": encode_json(dict(entry.args)),
                    "state": str(JobState.SCHEDULED if run_at > created else JobState.QUEUED),
                    "priority": 0, "attempts": 0, "max_attempts": entry.max_attempts, "run_at": run_at,
                    "fire_key": fire_key(entry.name, tick), "origin": "schedule", "created_at": created, "updated_at": created,
                    "owner": None, "started_at": None,
                }
                claimed = False
                if claim is not None and run_at <= created and budget.get(entry.daemon, 0) > 0:
                    budget[entry.daemon] -= 1
                    values.update(state=str(JobState.RUNNING), attempts=1, owner=claim.owner, started_at=created)
                    claimed = True
                new_jobs.append(_NewJob(item, values, claimed))
        return new_jobs

    def _claim_budget(self, sql: ScheduleSql, decided: list[_Decided], now: float, claim: TickClaim | None) -> dict[str, int]:
        """How many new jobs of each daemon ``claim`` takes: its limit, or none behind a due queued job."""
        if claim is None:
            return {}
        daemons = {item.entry.daemon for item in decided if item.fire and claim.limits.get(item.entry.daemon, 0) > 0}
        return {daemon: claim.limits[daemon] for daemon in sorted(daemons) if not sql.queued_ahead(daemon, now)}

    def _insert_jobs(self, sql: ScheduleSql, new_jobs: list[_NewJob]) -> None:
        """Create the jobs (``ScheduleSql.insert_jobs``); a tick whose fire key another job holds already has its job.

        The unique fire key is the last line of defence: such a tick is left out.
        """
        for new, job_id in zip(new_jobs, sql.insert_jobs([new.values for new in new_jobs])):
            if job_id is not None:
                self._created(new, job_id)

    @staticmethod
    def _created(new: _NewJob, job_id: int) -> None:
        new.decided.fired.append(job_id)
        if new.claimed:
            values, entry = new.values, new.decided.entry
            new.decided.claimed.append(Job(
                id=job_id, daemon=entry.daemon, task=entry.task, args=dict(entry.args), state=JobState.RUNNING,
                attempts=1, max_attempts=entry.max_attempts, run_at=values["run_at"], fire_key=values["fire_key"],
                origin="schedule", owner=values["owner"], created_at=values["created_at"], started_at=values["started_at"],
                updated_at=values["updated_at"],
            ))

    def _move_cursors(self, sql: ScheduleSql, decided: list[_Decided], now: dt.datetime) -> None:
        """Persist every entry's cursor and counters in one batched UPDATE."""
        updated = time.time()
        sql.move_cursors([
            (item.entry.name, item.plan.cursor.timestamp(), len(item.fired), updated, item.fired[-1] if item.fired else None,
             item.skipped, now.timestamp() if item.skipped else None)
            for item in decided
        ])

    # -- reading and pausing ------------------------------------------------

    def states(self) -> dict[str, EntryState]:
        with self.runner.read() as sql:
            rows = ScheduleSql(sql, returning=self.runner.returns_ids()).states()
        return {
            row["entry"]: EntryState(row["entry"], row["last_fire"], row["last_job_id"], int(row["fired"]), int(row["skipped"]), row["last_skipped_at"])
            for row in rows
        }

    def paused_targets(self) -> set[str]:
        with self.runner.read() as sql:
            return ScheduleSql(sql, returning=self.runner.returns_ids()).paused_targets()

    def pause(self, target: str) -> bool:
        """Pause a target ("daemon:NAME" or "entry:NAME"); False if it already was."""
        with self.runner.write() as sql:
            return ScheduleSql(sql, returning=self.runner.returns_ids()).pause(target, time.time())

    def resume(self, target: str) -> bool:
        with self.runner.write() as sql:
            return ScheduleSql(sql, returning=self.runner.returns_ids()).resume(target)
