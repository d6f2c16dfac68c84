"""Batches' counters kept in step with their members' endings, in SQL with the driver's placeholders
(``sql_statements``), written once.

Every transaction that writes a member's final state runs these in that
same transaction (``batches.BatchCounters`` says why: nothing can lose or
double a count), and the one whose conditional UPDATE moves a batch on
(open → complete, no failure callback → one) inserts the callback job, so
it exists exactly once. Values are parameters, never pasted in; only jobd's
own constants (table names, counter columns, states) are part of the text.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import defaults
from ..batch_record import Batch, BatchState, Callback, batch_transition, callback_args
from ..job import encode_json
from ..states import JobState
from .job_reads_sql import JOBS
from .sql_statements import Statements
from .status_reads_sql import StatusReads

BATCHES = f"{defaults.TABLE_PREFIX}batches"
#: The counter each counted final state adds to.
COUNTER = {JobState.SUCCEEDED: "succeeded", JobState.DEAD: "dead", JobState.CANCELLED: "cancelled"}
CLAIMING = -1  # a callback being inserted by this very transaction (never seen by another: it commits with the id)


class BatchEndings:
    """How one transaction changes batches' counters: members that reached a counted state (or left one, negative)."""

    def __init__(self) -> None:
        self.changes: dict[int, dict[JobState, int]] = {}

    def add(self, batch_id: int | None, state: JobState, count: int = 1) -> None:
        if batch_id is None or count == 0 or state not in COUNTER:
            return
        per_state = self.changes.setdefault(batch_id, {})
        per_state[state] = per_state.get(state, 0) + count

    def __bool__(self) -> bool:
        return bool(self.changes)


class BatchCounterSql:
    """The counters' statements on one ``Statements``, inside the transaction that moved the members."""

    def __init__(self, sql: Statements) -> None:
        self.sql = sql

    def endings_of(self, job_ids: Sequence[int], state: JobState, sign: int = 1) -> BatchEndings:
        """The batches of ``job_ids`` (rows this transaction just moved to or out of ``state``), counted."""
        endings = BatchEndings()
        if not job_ids or state not in COUNTER:
            return endings
        sql = (
            f"SELECT batch_id, count(*) AS n FROM {JOBS} WHERE id IN ({self.sql.marks(len(job_ids))}) "
            f"AND batch_id IS NOT NULL GROUP BY batch_id"
        )
        for row in self.sql.rows(sql, tuple(job_ids)):
            endings.add(int(row["batch_id"]), state, sign * int(row["n"]))
        return endings

    def record(self, endings: BatchEndings, now: float) -> None:
        """Apply ``endings`` to the counters (batches in id order), then queue the callbacks they make due (once each)."""
        mark = self.sql.mark
        for batch_id in sorted(endings.changes):
            changes = endings.changes[batch_id]
            settings = ", ".join(f"{COUNTER[state]} = {COUNTER[state]} + {mark}" for state in changes)
            updated = self.sql.run(  # a complete batch's counts are final
                f"UPDATE {BATCHES} SET {settings}, updated_at = {mark} WHERE id = {mark} AND state != {mark}",
                (*changes.values(), now, batch_id, str(BatchState.COMPLETE)),
            )
            if updated:
                self.settle(batch_id, now)

    def settle(self, batch_id: int, now: float) -> None:
        """Queue ``on_failure`` at the first dead member and ``on_complete`` once every member finished."""
        mark, open_ = self.sql.mark, str(BatchState.OPEN)
        claimed_failure = self.sql.run(
            f"UPDATE {BATCHES} SET failure_job_id = {mark} WHERE id = {mark} AND state = {mark} AND dead > 0 "
            f"AND failure_job_id IS NULL AND on_failure IS NOT NULL",
            (CLAIMING, batch_id, open_),
        )
        if claimed_failure:
            batch = self._locked(batch_id)
            assert batch.on_failure is not None
            job_id = self._queue_callback(batch.on_failure, batch, now)
            self.sql.run(f"UPDATE {BATCHES} SET failure_job_id = {mark} WHERE id = {mark}", (job_id, batch_id))
        completed = self.sql.run(
            f"UPDATE {BATCHES} SET state = {mark}, finished_at = {mark}, updated_at = {mark} "
            f"WHERE id = {mark} AND state = {mark} AND sealed = {mark} AND succeeded + dead + cancelled >= total",
            (str(batch_transition(BatchState.OPEN, BatchState.COMPLETE)), now, now, batch_id, open_, True),
        )
        if completed:
            batch = self._locked(batch_id)
            if batch.on_complete is not None:
                job_id = self._queue_callback(batch.on_complete, batch, now)
                self.sql.run(f"UPDATE {BATCHES} SET complete_job_id = {mark} WHERE id = {mark}", (job_id, batch_id))

    def prune(self, older_than: float) -> int:
        """Delete batches that ended before ``older_than``; open ones stay, however old. How many."""
        return self.sql.run(
            f"DELETE FROM {BATCHES} WHERE state != {self.sql.mark} AND finished_at < {self.sql.mark}",
            (str(BatchState.OPEN), older_than),
        )

    def _locked(self, batch_id: int) -> Batch:
        """The batch's latest counts, not a snapshot: locked until the transaction ends (MySQL)."""
        return StatusReads(self.sql.rows, self.sql.dialect).batch(batch_id, lock=True)

    def _queue_callback(self, callback: Callback, batch: Batch, now: float) -> int:
        values = (callback.daemon, callback.task, encode_json(callback_args(callback, batch)), str(JobState.QUEUED), 0, 0, "batch", now, now)
        return self.sql.insert(
            f"INSERT INTO {JOBS} (daemon, task, args, state, priority, attempts, origin, created_at, updated_at) "
            f"VALUES ({self.sql.marks(len(values))})",
            values,
        )
