"""What every part of the jobs queue shares: the runner, the batch counters, the claim's statements, a locked read."""

from __future__ import annotations

from ...job import Job
from ...states import JobState
from ..batch_counter_sql import BatchCounterSql
from ..job_claim_sql import ClaimSql
from ..job_reads_sql import JobReads
from ..rate_buckets import RateBuckets
from ..row_decoding import decode_found
from ..sql_runner import SqlRunner
from ..sql_statements import Statements


class JobsTable:
    """The jobs table of one store (``JobQueue`` is this plus one mixin per concern)."""

    def __init__(self, runner: SqlRunner) -> None:
        self.runner = runner
        self.rate_buckets = RateBuckets(runner)
        self._next_tokens: dict[str, float | None] = {}  # daemon → when a rate lets its waiting jobs go (last claim)
        self.is_mysql = runner.dialect == "mysql"
        self._next_promotion = float("-inf")
        self._claim_sql = ClaimSql(runner.dialect)

    def _reads(self, sql: Statements) -> JobReads:
        """The read statements ``jobd jobs`` also runs without SQLAlchemy, here on ``sql``."""
        return JobReads(sql.rows, self.runner.dialect)

    def _get_on(self, sql: Statements, job_id: int, *, lock: bool = False) -> Job:
        return decode_found(self._reads(sql).get(job_id, lock=lock), job_id)

    def _count_in_batches(self, sql: Statements, job_ids: list[int], state: JobState, now: float, sign: int = 1) -> None:
        """Count rows this transaction moved to (or, ``sign=-1``, out of) ``state`` in their batches' counters.

        Every final state written here is counted in its batch in the same transaction (``batches.py`` says why).
        """
        counters = BatchCounterSql(sql)
        counters.record(counters.endings_of(job_ids, state, sign), now)
