"""Many jobs in few statements through the store's engine, or in a caller's SQLAlchemy transaction.

The statements and their sizing are ``bulk_sql``'s; here they run on the
connection the process keeps checked out of the engine's pool
(``cursor_sql``), or through the caller's ``Connection``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa

from .bulk_sql import BulkInsertSql, BulkJobs, CursorExecutor, Inserted
from .cursor_sql import direct_transaction

__all__ = ["BulkJobInsert", "BulkJobs", "Inserted"]


class BulkJobInsert:
    """Multi-row INSERTs into the jobs table of one store (``Store.bulk_jobs``), through its engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._statements: BulkInsertSql | None = None

    def insert(self, bulk: BulkJobs, now: float, *, connection: sa.Connection | None = None) -> Inserted:
        """Insert ``bulk``'s jobs in one transaction: the caller's (``connection``) or one of its own.

        Either every new job is written or, on an error, none (the caller's
        transaction decides for its own).
        """
        sqlite = self.engine.dialect.name == "sqlite"
        if self._statements is None:
            self.engine.connect().close()  # the dialect learns the server (MariaDB's RETURNING) on a first connection
            self._statements = BulkInsertSql(self.engine.dialect.name, returning=bool(self.engine.dialect.insert_returning))
        if connection is None:
            with direct_transaction(self.engine) as own:
                limit = _variable_limit(own.cursor.connection) if sqlite else None
                return self._statements.insert(bulk, now, CursorExecutor(own.cursor), variable_limit=limit)
        raw = connection.connection.dbapi_connection
        limit = _variable_limit(raw) if sqlite else None
        return self._statements.insert(bulk, now, _ConnectionExecutor(connection), variable_limit=limit)


def _variable_limit(sqlite_connection: Any) -> int:
    return int(sqlite_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))


class _ConnectionExecutor:
    """Statements in the caller's transaction, through its SQLAlchemy ``Connection``."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def run(self, sql: str, parameters: Any) -> list[tuple[Any, ...]]:
        result = self.connection.exec_driver_sql(sql, parameters)
        return [tuple(row) for row in result.fetchall()] if result.returns_rows else []

    def inserted(self, sql: str, parameters: Any) -> tuple[int, int]:
        result = self.connection.exec_driver_sql(sql, parameters)
        return int(result.lastrowid), int(result.rowcount)
