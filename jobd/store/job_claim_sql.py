"""A master's claim of due jobs, in SQL with the driver's placeholders, written once for each dialect.

A claim runs many times a second on the path from a submit to a task's
start, so its texts are made once per dialect and run in a write
transaction of the store's runner (``sql_runner``): in a master, its
``DriverRunner``'s connection, kept open, with no SQLAlchemy. Values are parameters, never pasted in; only jobd's own
constants (table and index names, states, the attempts counter's limit) are
part of the text.

SQLite claims in one statement (``UPDATE … RETURNING``: its write lock
already excludes every other claimer). MySQL claims in two: lock the rows
to take, skipping those other masters hold (``FOR UPDATE SKIP LOCKED``),
then mark them; the claimed values are known, so nothing is read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import defaults
from ..states import JobState, transition
from .job_reads_sql import JOBS, placeholder

P = defaults.TABLE_PREFIX
UNDATED_WHERE = "run_at IS NULL AND state IN ('retrying', 'scheduled')"  # the SQLite partial index jobs_undated's condition
#: The lowest value of the INTEGER priority column: a claim with no priority bound takes every job.
NO_PRIORITY_BOUND = -(2**31)


def counted_attempt_of(attempts: Any) -> int:
    """What a claim writes as the attempt, for a row read before the UPDATE (MySQL's claim)."""
    try:
        value = int(attempts or 0)
    except (TypeError, ValueError):
        return 1
    return value + 1 if value < defaults.MAX_ATTEMPTS_COUNTER else defaults.MAX_ATTEMPTS_COUNTER


class ClaimSql:
    """The claim's statements for one dialect; ``…_values`` give each its parameters in order."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        mark = self.mark = placeholder(dialect)
        limit = defaults.MAX_ATTEMPTS_COUNTER
        # ``attempts + 1`` never past the column's limit (MySQL refuses the overflow, which failed
        # the whole claim): a row found at the limit is ended dead by the master.
        self._claimed = (
            f"state = '{JobState.RUNNING}', attempts = CASE WHEN attempts < {limit} THEN attempts + 1 ELSE {limit} END, "
            f"owner = {mark}, worker_pid = NULL, cancel_requested = {mark}, started_at = {mark}, updated_at = {mark}"
        )
        self._due = (
            f"daemon = {mark} AND state = '{JobState.QUEUED}' AND priority >= {mark} AND (run_at IS NULL OR run_at <= {mark})"
        )
        self.claim_returning = (  # SQLite
            f"UPDATE {JOBS} SET {self._claimed} WHERE id IN "
            f"(SELECT id FROM {JOBS} WHERE {self._due} ORDER BY priority DESC, id LIMIT {mark}) RETURNING *"
        )
        # Right after a bulk insert InnoDB's statistics can steer the optimizer
        # to a filesort of every queued job: the index is named.
        self.lock_due = (  # MySQL
            f"SELECT * FROM {JOBS} FORCE INDEX ({P}jobs_ready) WHERE {self._due} "
            f"ORDER BY priority DESC, id LIMIT {mark} FOR UPDATE SKIP LOCKED"
        )
        # Scheduled and retrying jobs whose time has come become queued; rows an application
        # wrote without a run_at are due now (a NULL run_at means "due now" everywhere else),
        # found through the SQLite partial index jobs_undated, whose condition this is.
        self.promotions = [
            (f"UPDATE {JOBS} SET state = '{transition(waiting, JobState.QUEUED)}' WHERE state = '{waiting}' AND run_at <= {mark}", True)
            for waiting in (JobState.SCHEDULED, JobState.RETRYING)
        ] + [(f"UPDATE {JOBS} SET state = '{JobState.QUEUED}' WHERE {UNDATED_WHERE}", False)]
        self.handed = f"SELECT * FROM {JOBS} WHERE id = {mark} AND owner = {mark} AND state = '{JobState.RUNNING}'"

    def claim_values(self, daemon: str, now: float, limit: int, owner: str, min_priority: int | None) -> tuple[Any, ...]:
        """``claim_returning``'s parameters."""
        return (owner, False, now, now, *self._due_values(daemon, now, min_priority), limit)

    def lock_due_values(self, daemon: str, now: float, limit: int, min_priority: int | None) -> tuple[Any, ...]:
        return (*self._due_values(daemon, now, min_priority), limit)

    def mark_claimed(self, count: int) -> str:
        """The UPDATE that claims ``count`` rows by id (MySQL's second step; the capped claim's)."""
        return f"UPDATE {JOBS} SET {self._claimed} WHERE id IN ({', '.join([self.mark] * count)})"

    def mark_claimed_values(self, ids: Sequence[int], owner: str, now: float) -> tuple[Any, ...]:
        return (owner, False, now, now, *ids)

    def running_per_task(self) -> str:
        """How many of a daemon's jobs run, per task (the capped claim's count)."""
        return f"SELECT task, count(*) AS n FROM {JOBS} WHERE daemon = {self.mark} AND state = '{JobState.RUNNING}' GROUP BY task"

    def candidates(self) -> str:
        """The due jobs a capped claim chooses among (ids and tasks), best first; MySQL skips rows others hold."""
        sql = (
            f"SELECT id, task FROM {JOBS} WHERE daemon = {self.mark} AND state = '{JobState.QUEUED}' "
            f"AND (run_at IS NULL OR run_at <= {self.mark}) ORDER BY priority DESC, id LIMIT {self.mark}"
        )
        return sql + (" FOR UPDATE SKIP LOCKED" if self.dialect == "mysql" else "")

    def rows_of(self, count: int) -> str:
        return f"SELECT * FROM {JOBS} WHERE id IN ({', '.join([self.mark] * count)})"

    def mutex(self) -> tuple[str, str]:
        """The lock row a capped claim holds: its SELECT (locking on MySQL) and the INSERT that makes it."""
        select = f"SELECT name FROM {P}locks WHERE name = {self.mark}" + (" FOR UPDATE" if self.dialect == "mysql" else "")
        return select, f"INSERT INTO {P}locks (name) VALUES ({self.mark})"

    def _due_values(self, daemon: str, now: float, min_priority: int | None) -> tuple[Any, ...]:
        return (daemon, NO_PRIORITY_BOUND if min_priority is None else min_priority, now)
