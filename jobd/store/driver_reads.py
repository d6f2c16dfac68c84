"""Reading the store through the database driver alone: ``jobd jobs``, ``jobd job ID`` and ``jobd status``
with no master to ask.

With a master running, those commands ask it (``jobd.ops.job_reads``,
``jobd.ops.status_reads``). With none, they read the store themselves; the
statements are the ones a master runs (``job_reads_sql``,
``status_reads_sql``), here on one short-lived driver connection opened with
the arguments the config's digest recorded. No SQLAlchemy is imported: that
import was most of such a command's run.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ..errors import StoreUnavailable
from .diagnosis import describe_store_error
from .driver_sql import DriverTarget, close_quietly, open_connection
from .job_reads_sql import JobReads, Rows
from .sql_statements import Statements
from .status_reads_sql import StatusReads


@contextmanager
def driver_job_reads(target: DriverTarget) -> Iterator[JobReads]:
    """The job reads on a connection of their own, closed on leaving; a driver error is ``StoreUnavailable``."""
    with driver_rows(target) as rows:
        yield JobReads(rows, target.dialect)


@contextmanager
def driver_status_reads(target: DriverTarget) -> Iterator[StatusReads]:
    """The status reads on a connection of their own, closed on leaving; a driver error is ``StoreUnavailable``."""
    with driver_rows(target) as rows:
        yield StatusReads(rows, target.dialect)


@contextmanager
def driver_rows(target: DriverTarget) -> Iterator[Rows]:
    """Statements on one driver connection opened for ``target``, closed on leaving."""
    driver = importlib.import_module(target.driver_module)
    connection = None
    try:
        connection = open_connection(target, driver)
        yield rows_on(connection)
    except driver.Error as error:
        raise StoreUnavailable(describe_store_error(error)) from error
    finally:
        close_quietly(connection)


def rows_on(connection: Any) -> Rows:
    """Run a statement on a DB-API connection; every row as a mapping of column name to value."""

    def rows(sql: str, parameters: tuple[Any, ...]) -> Sequence[Mapping[str, Any]]:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, parameters)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        finally:
            cursor.close()

    return rows


def statements_on_driver(connection: Any, dialect: str) -> Statements:
    """Driver SQL (``sql_statements``) on a DB-API connection, in whatever transaction it holds."""

    def executed(sql: str, parameters: tuple[Any, ...]) -> tuple[int, int]:
        """Rows changed and the last inserted id (0: none) of one statement."""
        cursor = connection.cursor()
        try:
            cursor.execute(sql, parameters)
            return int(cursor.rowcount), int(cursor.lastrowid or 0)
        finally:
            cursor.close()

    def run(sql: str, parameters: tuple[Any, ...]) -> int:
        return executed(sql, parameters)[0]

    def insert(sql: str, parameters: tuple[Any, ...]) -> int:
        return executed(sql, parameters)[1]

    def run_many(sql: str, parameters: Sequence[tuple[Any, ...]]) -> None:
        if parameters:
            cursor = connection.cursor()
            try:
                cursor.executemany(sql, list(parameters))
            finally:
                cursor.close()

    return Statements(dialect, rows_on(connection), run, insert, run_many)
