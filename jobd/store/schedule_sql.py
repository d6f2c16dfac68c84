"""Schedule entries' cursors, the jobs their ticks create, and pauses, in SQL with the driver's placeholders
(``sql_statements``), written once.

``schedules.ScheduleBook`` decides the ticks (``jobd.schedules``) and runs
these inside one transaction per instant: read and lock the entries' rows,
look at their previous jobs, insert the new jobs, move the cursors. Values
are parameters, never pasted in; only jobd's own constants (table and column
names, states) are part of the text.

An INSERT that a unique key refuses ends only itself, not the transaction
(SQLite and MySQL), and a multi-row INSERT is refused whole: a chunk whose
tick already has its job (its fire key is taken) is then inserted row by
row, and the row that has one is left out. No savepoint is needed for that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import defaults
from ..states import ACTIVE, JobState
from .job_reads_sql import JOBS
from .sql_statements import Statements, is_duplicate_key, sqlite_variable_limit

SCHEDULES = f"{defaults.TABLE_PREFIX}schedules"
PAUSES = f"{defaults.TABLE_PREFIX}schedule_pauses"
MAX_ROWS_PER_INSERT = 500  # a tick's jobs are small rows: far inside MySQL's packet; SQLite's limit is checked


class ScheduleSql:
    """The schedule book's statements on one ``Statements``; ``returning``: the database can answer an INSERT's ids."""

    def __init__(self, sql: Statements, *, returning: bool) -> None:
        self.sql = sql
        self.returning = returning

    def locked_rows(self, names: Sequence[str], now: float) -> dict[str, Mapping[str, Any]]:
        """Every entry's row, locked in name order (MySQL; SQLite's write transaction holds them all); a new entry's is made."""
        def read(wanted: Sequence[str]) -> dict[str, Mapping[str, Any]]:
            query = f"SELECT * FROM {SCHEDULES} WHERE entry IN ({self.sql.marks(len(wanted))}) ORDER BY entry"
            if self.sql.dialect == "mysql":
                query += " FOR UPDATE"
            return {row["entry"]: row for row in self.sql.rows(query, tuple(wanted))}

        rows = read(names)
        missing = [name for name in names if name not in rows]
        for name in missing:
            try:
                self.sql.run(f"INSERT INTO {SCHEDULES} (entry, updated_at) VALUES ({self.sql.marks(2)})", (name, now))
            except Exception as error:
                if not is_duplicate_key(error):
                    raise  # another master created it first: its row is read (and waited for) below
        if missing:
            rows.update(read(missing))
        return rows

    def active_among(self, job_ids: Sequence[int]) -> set[int]:
        """Which of these jobs are still active (waiting or running): an entry's previous jobs."""
        if not job_ids:
            return set()
        rows = self.sql.rows(f"SELECT id, state FROM {JOBS} WHERE id IN ({self.sql.marks(len(job_ids))})", tuple(job_ids))
        return {int(row["id"]) for row in rows if JobState(row["state"]) in ACTIVE}

    def replace(self, job_id: int, now: float) -> None:
        """Stop the job a newer tick replaces: ask a running one to stop, cancel a waiting one."""
        mark = self.sql.mark
        self.sql.run(
            f"UPDATE {JOBS} SET cancel_requested = {mark}, updated_at = {mark} WHERE id = {mark} AND state = {mark}",
            (True, now, job_id, str(JobState.RUNNING)),
        )
        waiting = (str(JobState.QUEUED), str(JobState.SCHEDULED), str(JobState.RETRYING))
        self.sql.run(
            f"UPDATE {JOBS} SET state = {mark}, finished_at = {mark}, updated_at = {mark}, error = {mark} "
            f"WHERE id = {mark} AND state IN ({self.sql.marks(len(waiting))})",
            (str(JobState.CANCELLED), now, now, "replaced by a newer tick", job_id, *waiting),
        )

    def queued_ahead(self, daemon: str, now: float) -> bool:
        """Whether ``daemon`` has a due queued job of priority 0 or more (a tick's new job would wait behind it)."""
        mark = self.sql.mark
        sql = (
            f"SELECT id FROM {JOBS} WHERE daemon = {mark} AND state = {mark} AND priority >= 0 "
            f"AND (run_at IS NULL OR run_at <= {mark}) LIMIT 1"
        )
        return bool(self.sql.rows(sql, (daemon, str(JobState.QUEUED), now)))

    def insert_jobs(self, rows: Sequence[Mapping[str, Any]]) -> list[int | None]:
        """Insert the ticks' jobs (rows with the same columns); each one's id, None where its tick already has a job."""
        if not rows:
            return []
        if not self.returning:
            return [self._insert_one(row) for row in rows]
        columns = list(rows[0])
        size = self._rows_per_insert(len(columns))
        ids: list[int | None] = []
        for start in range(0, len(rows), size):
            chunk = rows[start:start + size]
            try:
                ids += self._insert_returning(columns, chunk)
            except Exception as error:
                if not is_duplicate_key(error):
                    raise
                ids += [self._insert_one(row) for row in chunk]  # the chunk was refused whole
        return ids

    def move_cursors(self, cursors: Sequence[tuple[Any, ...]]) -> None:
        """Persist each entry's cursor and counters: (entry, last_fire, fired, updated_at, last_job_id, skipped, last_skipped_at)."""
        mark = self.sql.mark
        sql = (
            f"UPDATE {SCHEDULES} SET last_fire = {mark}, fired = fired + {mark}, updated_at = {mark}, "
            f"last_job_id = coalesce({mark}, last_job_id), skipped = skipped + {mark}, "
            f"last_skipped_at = coalesce({mark}, last_skipped_at) WHERE entry = {mark}"
        )
        self.sql.run_many(sql, [(*values, entry) for entry, *values in cursors])

    def states(self) -> list[Mapping[str, Any]]:
        """Every entry's row."""
        return list(self.sql.rows(f"SELECT * FROM {SCHEDULES}", ()))

    def paused_targets(self) -> set[str]:
        return {str(row["target"]) for row in self.sql.rows(f"SELECT target FROM {PAUSES}", ())}

    def pause(self, target: str, now: float) -> bool:
        """Pause ``target``; False if it already was."""
        try:
            self.sql.run(f"INSERT INTO {PAUSES} (target, paused_at) VALUES ({self.sql.marks(2)})", (target, now))
        except Exception as error:
            if is_duplicate_key(error):
                return False
            raise
        return True

    def resume(self, target: str) -> bool:
        return bool(self.sql.run(f"DELETE FROM {PAUSES} WHERE target = {self.sql.mark}", (target,)))

    def _insert_returning(self, columns: list[str], rows: Sequence[Mapping[str, Any]]) -> list[int | None]:
        """One ``INSERT … VALUES (…), (…) RETURNING id``; the ids in the rows' order.

        The ids one statement generates grow with its rows' order (SQLite,
        MariaDB), so the returned ids, sorted, are the rows'.
        """
        row = f"({self.sql.marks(len(columns))})"
        sql = f"INSERT INTO {JOBS} ({', '.join(columns)}) VALUES {', '.join([row] * len(rows))} RETURNING id"
        values = tuple(each[column] for each in rows for column in columns)
        ids: list[int | None] = []
        ids.extend(sorted(int(found["id"]) for found in self.sql.rows(sql, values)))
        return ids

    def _insert_one(self, row: Mapping[str, Any]) -> int | None:
        try:
            return self.sql.insert(f"INSERT INTO {JOBS} ({', '.join(row)}) VALUES ({self.sql.marks(len(row))})", tuple(row.values()))
        except Exception as error:
            if is_duplicate_key(error):
                return None  # this tick already has its job
            raise

    def _rows_per_insert(self, columns: int) -> int:
        """How many rows one INSERT may carry: SQLite's bound-variable limit, else a size that suits MySQL's packet."""
        if self.sql.dialect != "sqlite":
            return MAX_ROWS_PER_INSERT
        return max(1, min(MAX_ROWS_PER_INSERT, sqlite_variable_limit() // columns))
