"""Reading jobs — one by id, a filtered page — in SQL with the driver's placeholders, written once.

Two kinds of caller run these statements. A master, a dashboard or an
operator's command that has the store open runs them on a SQLAlchemy
connection (``Connection.exec_driver_sql``). ``jobd jobs`` and ``jobd job``
with no master to ask run them on a bare driver connection
(``jobd.store.driver_reads``), which spares the command importing SQLAlchemy:
that import was most of such a command's run. One text serves both, so what
the two show cannot drift apart.

Values are always parameters (``?`` on SQLite, ``%s`` on MySQL), never
pasted in; only jobd's own constants (its table name, ``DESC``) are part of
the text. Rows come back as mappings of column name to the driver's value,
which ``row_decoding`` turns into a ``Job`` whatever an application stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import defaults
from ..states import CLAIMABLE, JobState

#: Runs one statement with its parameters and returns every row (the statement ends there).
Rows = Callable[[str, tuple[Any, ...]], Sequence[Mapping[str, Any]]]

JOBS = f"{defaults.TABLE_PREFIX}jobs"
#: "The job's daemon is one that has jobs" (see ``JobReads.in_states``): every daemon in the table,
#: the smallest, then the next one above it, and so on, each found by one seek.
DAEMON_HAS_JOBS = (
    f"daemon IN (WITH RECURSIVE daemons_with_jobs(name) AS ("
    f"SELECT min(daemon) FROM {JOBS} "
    f"UNION ALL SELECT (SELECT min(daemon) FROM {JOBS} WHERE daemon > daemons_with_jobs.name) "
    f"FROM daemons_with_jobs WHERE daemons_with_jobs.name IS NOT NULL"
    f") SELECT name FROM daemons_with_jobs)"
)
MAX_PROBES = 64  # a 63-bit key needs at most 63 halvings


def placeholder(dialect: str) -> str:
    """The driver's parameter mark: ``?`` for sqlite3, ``%s`` for PyMySQL."""
    return "?" if dialect == "sqlite" else "%s"


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a listing wants: any stored state values, a daemon, a task, a page and a creation window."""

    states: tuple[str, ...] = ()
    daemon: str | None = None
    task: str | None = None
    limit: int = 50
    before_id: int | None = None  # pages on by key: only ids below this one
    created_after: float | None = None
    created_before: float | None = None

    @property
    def has_window(self) -> bool:
        return self.created_after is not None or self.created_before is not None


class JobReads:
    """The read statements on the jobs table, for one dialect, run through ``rows``."""

    def __init__(self, rows: Rows, dialect: str) -> None:
        self.rows = rows
        self.dialect = dialect
        self.mark = placeholder(dialect)

    def get(self, job_id: int, *, lock: bool = False) -> Mapping[str, Any] | None:
        """The row of job ``job_id``, or None. ``lock``: MySQL locks it until the transaction ends."""
        if isinstance(job_id, bool) or not isinstance(job_id, int) or not 0 < job_id <= defaults.MAX_ROW_ID:
            return None  # no job has such an id (and SQLite refuses to bind a larger one)
        sql = f"SELECT * FROM {JOBS} WHERE id = {self.mark}"
        if lock and self.dialect == "mysql":
            sql += " FOR UPDATE"
        found = self.rows(sql, (job_id,))
        return found[0] if found else None

    def owned_running(self, owner: str, started_before: float) -> list[int]:
        """Ids of ``owner``'s running jobs that started before ``started_before``."""
        sql = f"SELECT id FROM {JOBS} WHERE owner = {self.mark} AND state = {self.mark} AND started_at < {self.mark}"
        return [int(row["id"]) for row in self.rows(sql, (owner, str(JobState.RUNNING), started_before))]

    def cancel_requests(self, owner: str) -> list[int]:
        """Running jobs of ``owner`` that an operator asked to cancel (its master stops them)."""
        sql = f"SELECT id FROM {JOBS} WHERE owner = {self.mark} AND state = {self.mark} AND cancel_requested = {self.mark}"
        return [int(row["id"]) for row in self.rows(sql, (owner, str(JobState.RUNNING), True))]

    def queue_depth(self, daemon: str) -> tuple[int, float | None]:
        """How many of ``daemon``'s jobs are queued (due, waiting for a worker), and since when the oldest."""
        found = self.rows(
            f"SELECT count(*) AS n, min(created_at) AS oldest FROM {JOBS} WHERE daemon = {self.mark} AND state = {self.mark}",
            (daemon, str(JobState.QUEUED)),
        )
        oldest = found[0]["oldest"] if found else None
        return (int(found[0]["n"]) if found else 0), (float(oldest) if oldest is not None else None)

    def due_stats(self, now: float) -> dict[str, tuple[int, float | None]]:
        """Per daemon: how many jobs are due and waiting (claimable, their time come), and since when the oldest."""
        terms, values = self.in_states(str(state) for state in CLAIMABLE)
        found = self.rows(
            f"SELECT daemon, count(*) AS n, min(coalesce(run_at, created_at)) AS oldest FROM {JOBS} "
            f"WHERE {' AND '.join(terms)} AND (run_at IS NULL OR run_at <= {self.mark}) GROUP BY daemon",
            (*values, now),
        )
        return {
            str(row["daemon"]): (int(row["n"]), float(row["oldest"]) if row["oldest"] is not None else None) for row in found
        }

    def states_of(self, job_ids: Sequence[int]) -> dict[int, str]:
        """The stored state of each of ``job_ids`` that still exists (pruned ones are left out)."""
        if not job_ids:
            return {}
        marks = ", ".join([self.mark] * len(job_ids))
        found = self.rows(f"SELECT id, state FROM {JOBS} WHERE id IN ({marks})", tuple(job_ids))
        return {int(row["id"]): str(row["state"]) for row in found}

    def page(self, wanted: JobFilter) -> list[Mapping[str, Any]]:
        """The newest rows matching ``wanted``, newest first.

        A creation-time window becomes a primary-key range (``id_range_for_created``), so it
        walks the key, not the table.
        """
        conditions: list[str] = []
        parameters: list[Any] = []
        mark = self.mark
        if wanted.before_id is not None:
            conditions.append(f"id < {mark}")
            parameters.append(wanted.before_id)
        if wanted.has_window:
            window = self.id_range_for_created(wanted.created_after, wanted.created_before)
            if window is None:
                return []
            conditions.append(f"id BETWEEN {mark} AND {mark}")
            parameters.extend(window)
            window_terms, window_values = created_terms(mark, wanted.created_after, wanted.created_before)
            conditions.extend(window_terms)
            parameters.extend(window_values)
        if wanted.daemon:
            conditions.append(f"daemon = {mark}")
            parameters.append(wanted.daemon)
            if wanted.states:
                conditions.append(_in_list("state", mark, len(wanted.states)))
                parameters.extend(sorted(wanted.states))
        elif wanted.states:
            terms, values = self.in_states(wanted.states)
            conditions.extend(terms)
            parameters.extend(values)
        if wanted.task:
            conditions.append(f"task = {mark}")
            parameters.append(wanted.task)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT * FROM {JOBS}{where} ORDER BY id DESC LIMIT {mark}"
        return list(self.rows(sql, (*parameters, wanted.limit)))

    def in_states(self, states: Iterable[str]) -> tuple[list[str], list[Any]]:
        """WHERE terms and their values for "the job is in one of ``states``", through an index.

        A query naming states but no daemon needs an index led by ``state``.
        On MySQL ``jobs_waiting (state, run_at)`` is one. On SQLite the indexes
        led by ``state`` are partial (a plain job's INSERT and claim do not
        write them; see ``schema.py``), so the condition also says "the
        daemon is one that has jobs": those daemons are found with one seek
        each, a loose index scan over ``jobs_ready (daemon, state, …)``
        written as a recursive CTE (SQLite has no skip scan without
        ``ANALYZE``), and SQLite then searches ``(daemon, state)`` per daemon.
        """
        names = sorted(str(state) for state in states)
        state_term = _in_list("state", self.mark, len(names))
        if self.dialect != "sqlite":
            return [state_term], list(names)
        return [DAEMON_HAS_JOBS, state_term], list(names)

    def id_range_for_created(
        self, created_after: float | None, created_before: float | None, *, slack: float = defaults.JOB_TIME_FILTER_SLACK_SECONDS,
    ) -> tuple[int, int] | None:
        """Inclusive (low, high) ids that hold every job created in [after, before), or None if no job can be.

        Jobs have no index on ``created_at``, but ids grow with insertion
        time: "created after T" is, up to clock skew between the hosts that
        insert, "id at least the first id created at T". That id is found by
        bisecting the primary key (each probe one index seek: about 20 for a
        million rows), widened by ``slack`` so a row inserted a little out of
        order is kept; the exact time condition (``created_terms``) still
        applies inside the range.
        """
        # Two statements: SQLite answers a lone min() or max() from the key's ends, but both together by a scan.
        lowest = self._scalar(f"SELECT min(id) FROM {JOBS}")
        highest = self._scalar(f"SELECT max(id) FROM {JOBS}")
        if lowest is None or highest is None:
            return None
        first, last = int(lowest), int(highest)
        low, high = first, last
        if created_after is not None:
            low = self._first_id_created_at_or_after(created_after - slack, first, last)
        if created_before is not None:
            high = self._first_id_created_at_or_after(created_before + slack, first, last) - 1
        return (low, high) if low <= high else None

    def _first_id_created_at_or_after(self, moment: float, low: int, high: int) -> int:
        """The smallest id in [low, high + 1] whose row (or the next row up) was created at or after ``moment``.

        Rows without ``created_at`` (written by another application) take the
        nearest dated row's place: the probe reads the first dated row at or
        above the midpoint.
        """
        mark = self.mark
        probe = (
            f"SELECT id, created_at FROM {JOBS} WHERE id >= {mark} AND id <= {mark} "
            f"AND created_at IS NOT NULL ORDER BY id LIMIT 1"
        )
        for _ in range(MAX_PROBES):
            if low > high:
                break
            middle = (low + high) // 2
            found = self.rows(probe, (middle, high))
            if not found or float(found[0]["created_at"]) >= moment:
                high = middle - 1
            else:
                low = int(found[0]["id"]) + 1
        return low

    def _scalar(self, sql: str) -> Any:
        found = self.rows(sql, ())
        return next(iter(found[0].values())) if found else None


def created_terms(mark: str, created_after: float | None, created_before: float | None) -> tuple[list[str], list[float]]:
    """The exact creation-time conditions (and their values), applied inside an id range."""
    terms: list[str] = []
    values: list[float] = []
    if created_after is not None:
        terms.append(f"created_at >= {mark}")
        values.append(created_after)
    if created_before is not None:
        terms.append(f"created_at < {mark}")
        values.append(created_before)
    return terms, values


def _in_list(column: str, mark: str, count: int) -> str:
    return f"{column} = {mark}" if count == 1 else f"{column} IN ({', '.join([mark] * count)})"
