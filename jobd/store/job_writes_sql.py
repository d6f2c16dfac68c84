"""Writing what running attempts did, and putting jobs back or away, in SQL with the driver's placeholders
(``sql_statements``), written once.

The master's outcome writer, its drain and its recovery of a dead master's
jobs run these inside a transaction the store's ``JobQueue`` opens. Values
are parameters, never pasted in; a column an outcome sets is pasted in only
after it was found among the columns an outcome may set (``OUTCOME_COLUMNS``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import defaults
from ..states import FINAL, JobState
from .job_reads_sql import DAEMON_HAS_JOBS, JOBS
from .master_record import LIVE_STATES
from .sql_statements import Statements

#: What an attempt's outcome may write besides its state (``jobd.outcomes``, ``jobd.outcome_writer``),
#: and what ``apply_outcome`` adds.
OUTCOME_COLUMNS = frozenset({
    "result", "error", "traceback", "run_at", "owner", "attempts", "checkpoint", "progress",
    "state", "updated_at", "worker_pid", "finished_at", "unique_key",
})
MASTERS = f"{defaults.TABLE_PREFIX}masters"


class JobWrites:
    """The jobs table's writes of attempts that ran, on one ``Statements``."""

    def __init__(self, sql: Statements) -> None:
        self.sql = sql

    def apply_outcome(self, owner: str, attempts: Sequence[tuple[int, int]], target: JobState, values: Mapping[str, Any], now: float) -> int:
        """Write one outcome's ``values`` to each (job id, attempt) this owner still runs; how many rows moved.

        Only an attempt ``owner`` still holds (running, the same attempt) is
        changed: a job another master recovered, or that ran again since, is left alone.
        """
        written = {**values, "state": str(target), "updated_at": now, "worker_pid": None}
        if target in FINAL:
            written.update(finished_at=now, unique_key=None)
        if target is JobState.RETRYING:
            written.update(owner=None)
        unknown = set(written) - OUTCOME_COLUMNS
        if unknown:
            raise ValueError(f"an outcome cannot set {sorted(unknown)}")
        mark = self.sql.mark
        settings = ", ".join(f"{column} = {mark}" for column in written)
        ids = [job_id for job_id, _ in attempts]
        # The id list first: SQLite then looks rows up by rowid instead of scanning
        # every job this owner runs for the (id, attempt) pairs.
        sql = (
            f"UPDATE {JOBS} SET {settings} WHERE id IN ({self.sql.marks(len(ids))}) "
            f"AND (id, attempts) IN ({self._pairs(len(attempts))}) AND state = {mark} AND owner = {mark}"
        )
        pairs = [value for pair in attempts for value in pair]
        return self.sql.run(sql, (*written.values(), *ids, *pairs, str(JobState.RUNNING), owner))

    def save_checkpoint(self, job_id: int, attempt: int, checkpoint_json: str, now: float) -> bool:
        """Persist a running attempt's checkpoint; False if that attempt no longer runs."""
        mark = self.sql.mark
        sql = f"UPDATE {JOBS} SET checkpoint = {mark}, updated_at = {mark} WHERE id = {mark} AND attempts = {mark} AND state = {mark}"
        return bool(self.sql.run(sql, (checkpoint_json, now, job_id, attempt, str(JobState.RUNNING))))

    def save_progress(self, progress_json_by_job: Mapping[int, str]) -> None:
        """Persist running jobs' latest progress (display data)."""
        mark = self.sql.mark
        sql = f"UPDATE {JOBS} SET progress = {mark} WHERE id = {mark} AND state = {mark}"
        for job_id, progress in progress_json_by_job.items():
            self.sql.run(sql, (progress, job_id, str(JobState.RUNNING)))

    def requeue(self, job_ids: Sequence[int], *, owner: str | None, orphans_only: bool, refund_attempt: bool, now: float) -> int:
        """Put running jobs back in the queue; how many moved. The checkpoint is kept.

        ``owner``: only jobs it still owns. ``orphans_only``: only jobs no
        live master owns, checked again here. ``refund_attempt`` gives back
        the attempt an interruption cost (a drain; a hand-off nobody took).
        """
        if not job_ids:
            return 0
        mark = self.sql.mark
        attempts = ", attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END" if refund_attempt else ""
        sql = (
            f"UPDATE {JOBS} SET state = {mark}, owner = NULL, worker_pid = NULL, updated_at = {mark}{attempts} "
            f"WHERE id IN ({self.sql.marks(len(job_ids))}) AND state = {mark}"
        )
        values: list[Any] = [str(JobState.QUEUED), now, *job_ids, str(JobState.RUNNING)]
        if owner is not None:
            sql += f" AND owner = {mark}"
            values.append(owner)
        if orphans_only:
            sql += f" AND {self._orphaned()}"
            values += LIVE_STATES
        return self.sql.run(sql, tuple(values))

    def orphans(self) -> list[int]:
        """Running jobs no live master owns (none at all, or one dead, stopped or pruned), locked on MySQL.

        The rows stay locked (MySQL ``FOR UPDATE SKIP LOCKED``; SQLite's write
        transaction) until the caller's transaction ends, so two masters
        recovering one dead master's jobs never both re-queue one.
        """
        sql = f"SELECT id FROM {JOBS} WHERE state = {self.sql.mark} AND {self._orphaned()}"
        if self.sql.dialect == "sqlite":  # every running job, found through the claim's (daemon, state) index
            sql += f" AND {DAEMON_HAS_JOBS}"
        if self.sql.dialect == "mysql":
            sql += " FOR UPDATE SKIP LOCKED"
        return [int(row["id"]) for row in self.sql.rows(sql, (str(JobState.RUNNING), *LIVE_STATES))]

    def finished_before(self, older_than: float, limit: int) -> list[int]:
        """Up to ``limit`` finished jobs that ended before ``older_than``, oldest id first."""
        finals = sorted(str(state) for state in FINAL)
        sql = (
            f"SELECT id FROM {JOBS} WHERE state IN ({self.sql.marks(len(finals))}) AND finished_at < {self.sql.mark} "
            f"ORDER BY id LIMIT {self.sql.mark}"
        )
        return [int(row["id"]) for row in self.sql.rows(sql, (*finals, older_than, limit))]

    def delete(self, job_ids: Sequence[int]) -> int:
        """Delete these jobs' rows; how many."""
        if not job_ids:
            return 0
        return self.sql.run(f"DELETE FROM {JOBS} WHERE id IN ({self.sql.marks(len(job_ids))})", tuple(job_ids))

    def _orphaned(self) -> str:
        """A running job's owner is no live master (``LIVE_STATES`` follow as parameters: masters that may own jobs)."""
        live = f"SELECT id FROM {MASTERS} WHERE state IN ({self.sql.marks(len(LIVE_STATES))})"
        return f"(owner IS NULL OR owner NOT IN ({live}))"

    def _pairs(self, count: int) -> str:
        """``count`` (id, attempt) pairs for a row-value IN: SQLite takes them as a VALUES list, MySQL as a list of rows."""
        pair = f"({self.sql.mark}, {self.sql.mark})"
        if self.sql.dialect == "sqlite":
            return "VALUES " + ", ".join([pair] * count)
        return ", ".join([pair] * count)
