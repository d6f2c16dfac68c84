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
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..job import Job, encode_json
from ..schedules import OverlapPolicy, ScheduleEntry, TickPlan, apply_jitter, fire_key, overlap_decision, plan_ticks
from ..states import ACTIVE, JobState
from .engine import READ_ONLY

MAX_ROWS_PER_INSERT = 500  # a tick's jobs are small rows: far inside MySQL's packet, and SQLite's limit is checked


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
    def __init__(self, engine: sa.Engine, table: sa.Table, pauses: sa.Table, jobs: sa.Table) -> None:
        self.engine = engine
        self.table = table
        self.pauses = pauses
        self.jobs = jobs
        self.is_mysql = engine.dialect.name == "mysql"
        self._insert_sql: dict[tuple[tuple[str, ...], int], str] = {}
        self._move_cursor = (  # one statement for every entry of a tick, executed with each one's values
            table.update()
            .where(table.c.entry == sa.bindparam("b_entry"))
            .values(
                last_fire=sa.bindparam("b_last_fire"),
                fired=table.c.fired + sa.bindparam("b_fired"),
                updated_at=sa.bindparam("b_updated_at"),
                last_job_id=sa.func.coalesce(sa.bindparam("b_last_job_id", type_=table.c.last_job_id.type), table.c.last_job_id),
                skipped=table.c.skipped + sa.bindparam("b_skipped"),
                last_skipped_at=sa.func.coalesce(sa.bindparam("b_last_skipped_at", type_=table.c.last_skipped_at.type), table.c.last_skipped_at),
            )
        )

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
        with self.engine.begin() as connection:
            rows = self._locked_rows(connection, [entry.name for entry, _paused in ordered])
            decided = []
            for entry, paused in ordered:
                row = rows[entry.name]
                plan = plan_ticks(entry, _utc(row["last_fire"]), now)
                decided.append(_Decided(entry, plan, () if paused else plan.fire, row["last_job_id"]))
            self._apply_overlap(connection, [item for item in decided if item.fire], now)
            self._insert_jobs(connection, self._new_jobs(connection, decided, now, rng, claim))
            self._move_cursors(connection, decided, now)
        return {
            item.entry.name: TickResult(fired=item.fired, skipped=item.skipped, cursor=item.plan.cursor, claimed=item.claimed)
            for item in decided
        }

    def _locked_rows(self, connection: sa.Connection, names: Sequence[str]) -> dict[str, Any]:
        """Every entry's row, locked in name order; a missing row (a new entry) is created first."""
        query = sa.select(self.table).where(self.table.c.entry.in_(names)).order_by(self.table.c.entry)
        if self.is_mysql:
            query = query.with_for_update()
        rows = {row["entry"]: row for row in connection.execute(query).mappings()}
        missing = [name for name in names if name not in rows]
        for name in missing:
            try:
                with connection.begin_nested():
                    connection.execute(self.table.insert().values(entry=name, updated_at=time.time()))
            except sa.exc.IntegrityError:
                pass  # another master created it first
        if missing:
            rows.update({row["entry"]: row for row in connection.execute(
                query.where(self.table.c.entry.in_(missing))).mappings()})
        return rows

    def _apply_overlap(self, connection: sa.Connection, firing: list[_Decided], now: dt.datetime) -> None:
        """Skip or replace the ticks whose entry's previous job is still active (its overlap policy)."""
        previous = [  # an entry that allows overlap fires whatever its previous job does: no need to look
            item.last_job_id for item in firing if item.last_job_id is not None and item.entry.overlap is not OverlapPolicy.ALLOW
        ]
        active: set[int] = set()
        if previous:
            jobs = self.jobs
            active = {
                int(job_id) for job_id, state in connection.execute(
                    sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(previous))).all()
                if JobState(state) in ACTIVE
            }
        for item in firing:
            decision = overlap_decision(item.entry, item.last_job_id in active)
            if decision == "skip":
                item.skipped, item.fire = len(item.fire), ()
            elif decision == "replace":
                self._cancel(connection, item.last_job_id, now.timestamp())

    def _new_jobs(
        self, connection: sa.Connection, decided: list[_Decided], now: dt.datetime, rng: random.Random, claim: TickClaim | None,
    ) -> list[_NewJob]:
        """The rows of the jobs to create, oldest tick first per entry; those ``claim`` may take are claimed."""
        created = time.time()
        budget = self._claim_budget(connection, decided, created, claim)
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

    def _claim_budget(
        self, connection: sa.Connection, decided: list[_Decided], now: float, claim: TickClaim | None,
    ) -> dict[str, int]:
        """How many new jobs of each daemon ``claim`` takes: its limit, or none behind a due queued job."""
        if claim is None:
            return {}
        daemons = {item.entry.daemon for item in decided if item.fire and claim.limits.get(item.entry.daemon, 0) > 0}
        jobs = self.jobs
        budget = {}
        for daemon in sorted(daemons):
            ahead = connection.execute(
                sa.select(jobs.c.id).where(
                    jobs.c.daemon == daemon, jobs.c.state == str(JobState.QUEUED), jobs.c.priority >= 0,
                    sa.or_(jobs.c.run_at.is_(None), jobs.c.run_at <= now),
                ).limit(1)
            ).first()
            if ahead is None:
                budget[daemon] = claim.limits[daemon]
        return budget

    def _insert_jobs(self, connection: sa.Connection, new_jobs: list[_NewJob]) -> None:
        """Create the jobs: a multi-row INSERT per chunk where the database returns ids, else one by one.

        A tick whose fire key another job holds already has its job (the
        unique index, the last line of defence): it is left out. The fire
        key is unique, so a chunk fails as a whole (its savepoint rolled
        back) and its jobs are inserted one by one.
        """
        if not new_jobs:
            return
        if self.engine.dialect.insert_returning:
            size = self._rows_per_insert(connection, len(new_jobs[0].values))
            for start in range(0, len(new_jobs), size):
                chunk = new_jobs[start:start + size]
                try:
                    with connection.begin_nested():
                        ids = self._insert_returning(connection, [new.values for new in chunk])
                except sa.exc.IntegrityError:
                    self._insert_one_by_one(connection, chunk)
                    continue
                for new, job_id in zip(chunk, ids):
                    self._created(new, job_id)
            return
        self._insert_one_by_one(connection, new_jobs)

    def _insert_returning(self, connection: sa.Connection, rows: list[dict[str, Any]]) -> list[int]:
        """One ``INSERT … VALUES (…), (…) RETURNING id``; the ids in the rows' order.

        The ids one statement generates grow with its rows' order (SQLite,
        MariaDB), so the returned ids, sorted, are the rows'. Only the
        table's own identifiers and placeholders make up the SQL.
        """
        columns = list(rows[0])
        key = (tuple(columns), len(rows))
        sql = self._insert_sql.get(key)
        if sql is None:
            dialect = self.engine.dialect
            preparer = dialect.identifier_preparer
            mark = "?" if dialect.paramstyle == "qmark" else "%s"
            row = "(" + ", ".join([mark] * len(columns)) + ")"
            sql = (
                f"INSERT INTO {preparer.format_table(self.jobs)} ({', '.join(preparer.quote(column) for column in columns)}) "
                f"VALUES {', '.join([row] * len(rows))} RETURNING {preparer.quote('id')}"
            )
            self._insert_sql[key] = sql
        parameters = tuple(row[column] for row in rows for column in columns)
        return sorted(int(job_id) for (job_id,) in connection.exec_driver_sql(sql, parameters).all())

    def _rows_per_insert(self, connection: sa.Connection, columns: int) -> int:
        """How many rows one INSERT may carry: SQLite's bound-variable limit, else a size that suits MySQL's packet."""
        if self.engine.dialect.name != "sqlite":
            return MAX_ROWS_PER_INSERT
        raw = connection.connection.dbapi_connection
        variables = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # type: ignore[union-attr]
        return max(1, min(MAX_ROWS_PER_INSERT, variables // columns))

    def _insert_one_by_one(self, connection: sa.Connection, new_jobs: list[_NewJob]) -> None:
        for new in new_jobs:
            try:
                with connection.begin_nested():
                    result = connection.execute(self.jobs.insert().values(**new.values))
            except sa.exc.IntegrityError:
                continue  # this tick already has its job
            primary_key = result.inserted_primary_key
            if primary_key:
                self._created(new, int(primary_key[0]))

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

    def _move_cursors(self, connection: sa.Connection, decided: list[_Decided], now: dt.datetime) -> None:
        """Persist every entry's cursor and counters in one batched UPDATE."""
        updated = time.time()
        connection.execute(self._move_cursor, [
            {
                "b_entry": item.entry.name, "b_last_fire": item.plan.cursor.timestamp(), "b_fired": len(item.fired),
                "b_updated_at": updated, "b_last_job_id": item.fired[-1] if item.fired else None,
                "b_skipped": item.skipped, "b_last_skipped_at": now.timestamp() if item.skipped else None,
            }
            for item in decided
        ])

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
