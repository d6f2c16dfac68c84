"""The jobs table with SQLAlchemy's engine and ``Table``: what the full submit and the operator actions run on.

Everything the master does to jobs is driver SQL on a runner (``base.JobsTable``);
only the submit in a caller's transaction, the operator actions and the
bulk actions on dead jobs are still SQLAlchemy Core, and only the processes
that do those (the CLI, ``jobd web``, applications) load it.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..sql_runner import SqlRunner
from .base import JobsTable
from .statements import DirectStatements


class EngineJobsTable(JobsTable):
    """The jobs table of one store, through its SQLAlchemy engine as well as its runner."""

    def __init__(self, runner: SqlRunner, engine: sa.Engine, table: sa.Table, *, submit_engine: sa.Engine | None = None) -> None:
        super().__init__(runner)
        self.engine = engine
        self.table = table
        self.submit_engine = submit_engine  # autocommit connections for a submit's own statements (MySQL)
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
