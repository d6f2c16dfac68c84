"""What the store's driver SQL needs of a connection, whoever opened it.

The store's statements are being written once in SQL with the driver's
placeholders (``job_reads_sql``, ``status_reads_sql``, ``registry_sql``…),
so that the same text runs on a SQLAlchemy connection (``exec_driver_sql``,
inside the transaction the caller holds: ``engine.statements_on``) and on a
bare DB-API connection (``driver_reads.statements_on_driver``), which is how
a process that never loads SQLAlchemy reaches the store. ``Statements`` is
the little those texts use: rows back, a count of rows changed, a new row's
id, many rows written by one statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: Runs one statement with its parameters; every row it returned (the statement ends there).
Rows = Callable[[str, tuple[Any, ...]], Sequence[Mapping[str, Any]]]
#: Runs one writing statement; the number of rows it changed (matched, on MySQL: jobd's connections count found rows).
Run = Callable[[str, tuple[Any, ...]], int]
#: Runs one INSERT; the id of the row it made.
Insert = Callable[[str, tuple[Any, ...]], int]
#: Runs one statement once per parameter tuple (the driver's ``executemany``).
RunMany = Callable[[str, Sequence[tuple[Any, ...]]], None]


@dataclass(frozen=True)
class Statements:
    """Driver SQL on one connection, in whatever transaction it holds."""

    dialect: str  # "sqlite" or "mysql"
    rows: Rows
    run: Run
    insert: Insert
    run_many: RunMany

    @property
    def mark(self) -> str:
        """The driver's parameter mark: ``?`` for sqlite3, ``%s`` for PyMySQL."""
        return "?" if self.dialect == "sqlite" else "%s"

    def marks(self, count: int) -> str:
        """``count`` parameter marks, comma-separated (an ``IN`` list, a row's values)."""
        return ", ".join([self.mark] * count)


def is_duplicate_key(error: BaseException) -> bool:
    """Whether ``error`` (SQLAlchemy's or the driver's own) is a unique key's refusal: another writer's row is there.

    On SQLite and MySQL a refused INSERT ends only itself, not the
    transaction it ran in, so the caller goes on (an UPDATE of that row).
    """
    wrapped = getattr(error, "orig", None)  # SQLAlchemy's wrapper keeps the driver's exception here
    cause = wrapped if isinstance(wrapped, BaseException) else error
    return type(cause).__name__ == "IntegrityError"  # sqlite3's and PyMySQL's alike


@lru_cache(maxsize=1)
def sqlite_variable_limit() -> int:
    """How many values one SQLite statement may bind: the library's compiled limit (every connection's)."""
    connection = sqlite3.connect(":memory:")
    try:
        return int(connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    finally:
        connection.close()
