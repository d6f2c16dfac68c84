"""The submit's statements, compiled once for direct execution.

The claim's own statements are driver SQL (``store.job_claim_sql``).
"""

from __future__ import annotations

import sqlalchemy as sa

from ..cursor_sql import DirectStatement


class DirectStatements:
    """The submit's statements, compiled for direct execution (``cursor_sql``).

    They sit on the submit-to-start path; everything else goes through
    SQLAlchemy connections or driver SQL.
    """

    def __init__(self, engine: sa.Engine, jobs: sa.Table) -> None:
        self.engine = engine
        self.jobs = jobs
        self._inserts: dict[tuple[str, ...], DirectStatement] = {}
        self.find_unique = DirectStatement(engine, sa.select(jobs.c.id).where(jobs.c.unique_key == sa.bindparam("unique_key")))

    def insert(self, columns: tuple[str, ...]) -> DirectStatement:
        """The INSERT of a row with these columns (``NewJob.row`` always has the same ones)."""
        statement = self._inserts.get(columns)
        if statement is None:
            statement = self._inserts[columns] = DirectStatement(self.engine, self.jobs.insert(), column_keys=columns)
        return statement
