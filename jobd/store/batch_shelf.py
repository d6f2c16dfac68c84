"""Reading batches and pruning old ones: driver SQL on the store's runner (the master prunes with no SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Sequence

from ..batch_record import Batch, BatchState
from .batch_counter_sql import BatchCounterSql
from .sql_runner import SqlRunner
from .sql_statements import Statements
from .status_reads_sql import StatusReads


class BatchShelf:
    """The batches of one store, as ``jobd batches`` reads them (``status_reads_sql``)."""

    def __init__(self, runner: SqlRunner) -> None:
        self.runner = runner

    def prune(self, *, older_than: float) -> int:
        """Delete batches that ended before ``older_than`` (the jobs' retention); open ones stay, however old."""
        with self.runner.write() as sql:
            return BatchCounterSql(sql).prune(older_than)

    def get(self, batch_id: int) -> Batch:
        with self.runner.read() as sql:
            return self._reads(sql).batch(batch_id)

    def list(self, *, states: Sequence[BatchState] = (), limit: int = 50, before_id: int | None = None) -> list[Batch]:
        """Most recent batches first; ``before_id`` pages on by key."""
        with self.runner.read() as sql:
            return self._reads(sql).batches(states=states, limit=limit, before_id=before_id)

    def member_states(self, batch_id: int) -> dict[str, int]:
        """How many members are in each state now (from the jobs themselves: includes waiting and running)."""
        with self.runner.read() as sql:
            return self._reads(sql).batch_member_states(batch_id)

    def _reads(self, sql: Statements) -> StatusReads:
        return StatusReads(sql.rows, self.runner.dialect)
