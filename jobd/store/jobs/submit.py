"""Putting jobs in the queue: one (on the submit's fast path, or in the caller's transaction) or many."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ..cursor_sql import direct_transaction
from .engine_table import EngineJobsTable
from .records import NewJob


class Submitting(EngineJobsTable):
    """Inserting jobs."""

    def insert(self, job: NewJob, *, connection: sa.Connection | None = None, now: float | None = None) -> int:
        """Commit ``job`` (or add it to the caller's transaction) and return its id.

        With a ``unique_key`` already held by an unfinished job, the existing
        job's id is returned and nothing is written.
        """
        now = time.time() if now is None else now
        row = job.row(now)
        if connection is not None:
            return self._insert_on(connection, job, row)
        direct = self._direct
        # A submit's own statements: the fast path. The INSERT is the only write
        # (a unique key's lookup only reads; the unique index catches a race).
        # Without a unique key it is the only statement: committed as it runs
        # (MySQL's autocommit engine; on SQLite its own transaction), one call
        # to the database instead of BEGIN, INSERT, COMMIT. Durable when it returns.
        engine = self.submit_engine or self.engine
        single = self.submit_engine is not None or job.unique_key is None
        with direct_transaction(engine, autocommit=single) as own:
            if job.unique_key is not None:
                found = own.execute(direct.find_unique, {"unique_key": job.unique_key}).fetchone()
                if found is not None:
                    return int(found[0])
            return int(own.execute(direct.insert(tuple(row)), row).lastrowid)

    def _insert_on(self, connection: sa.Connection, job: NewJob, row: dict[str, Any]) -> int:
        if job.unique_key is not None:
            existing = connection.execute(self._find_unique, {"unique_key": job.unique_key}).scalar()
            if existing is not None:
                return int(existing)
        result = connection.execute(self._insert_row, row)
        primary_key = result.inserted_primary_key
        assert primary_key is not None
        return int(primary_key[0])

    def insert_many(self, jobs: Sequence[NewJob], *, now: float | None = None) -> int:
        """Commit many jobs in one transaction (no unique keys); return how many."""
        now = time.time() if now is None else now
        rows = [job.row(now) for job in jobs]
        if any(job.unique_key for job in jobs):
            raise ValueError("insert_many does not take unique keys; use insert")
        with self.engine.begin() as connection:
            for start in range(0, len(rows), 1000):
                connection.execute(self.table.insert(), rows[start : start + 1000])
        return len(rows)
