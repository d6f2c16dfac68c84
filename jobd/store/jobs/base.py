"""What every part of the jobs queue shares: the engine, the tables, compiled statements, a locked read."""

from __future__ import annotations

import sqlalchemy as sa

from ...job import Job
from ...states import JobState
from ..batches import BatchCounters
from ..engine import rows_of
from ..job_reads_sql import JobReads
from ..rate_buckets import RateBuckets
from ..row_decoding import decode_found
from ..job_claim_sql import ClaimSql
from .statements import DirectStatements


class JobsTable:
    """The jobs table of one store (``JobQueue`` is this plus one mixin per concern)."""

    def __init__(
        self, engine: sa.Engine, table: sa.Table, *, submit_engine: sa.Engine | None = None,
        batch_counters: BatchCounters | None = None,
    ) -> None:
        self.engine = engine
        self.batch_counters = batch_counters  # every final state written here is counted in its batch, same transaction
        self.rate_buckets = RateBuckets(engine)
        self._next_tokens: dict[str, float | None] = {}  # daemon → when a rate lets its waiting jobs go (last claim)
        self.submit_engine = submit_engine  # autocommit connections for a submit's own statements (MySQL)
        self.table = table
        self.is_mysql = engine.dialect.name == "mysql"
        self._next_promotion = float("-inf")
        self._claim_sql = ClaimSql(engine.dialect.name)
        # A submit in the caller's transaction: built once, executed with the row
        # as parameters (``insert().values(**row)`` spent more time building and
        # cache-keying the expression than SQLite spent writing the row).
        self._insert_row = table.insert()
        self._find_unique = sa.select(table.c.id).where(table.c.unique_key == sa.bindparam("unique_key"))
        self._direct_statements: DirectStatements | None = None

    @property
    def _direct(self) -> DirectStatements:
        """Compiled on first use: most processes that open a store never submit."""
        if self._direct_statements is None:
            # The dialect learns the server (MariaDB or MySQL, its version) on the
            # first connection: compile after it, as SQLAlchemy's own cache does.
            self.engine.connect().close()
            self._direct_statements = DirectStatements(self.engine, self.table)
        return self._direct_statements

    def _reads(self, connection: sa.Connection) -> JobReads:
        """The read statements ``jobd jobs`` also runs without SQLAlchemy, here on ``connection``."""
        return JobReads(rows_of(connection), self.engine.dialect.name)

    def _get_on(self, connection: sa.Connection, job_id: int, *, lock: bool = False) -> Job:
        return decode_found(self._reads(connection).get(job_id, lock=lock), job_id)

    def _count_in_batches(self, connection: sa.Connection, job_ids: list[int], state: JobState, now: float, sign: int = 1) -> None:
        """Count rows this transaction moved to (or, ``sign=-1``, out of) ``state`` in their batches' counters."""
        if self.batch_counters is not None:
            self.batch_counters.record(connection, self.batch_counters.endings_of(connection, job_ids, state, sign), now)
