"""Reading jobs through the database driver alone: ``jobd jobs`` and ``jobd job ID`` with no master to ask.

With a master running, those commands ask it (``jobd.ops.job_reads``). With
none, they read the store themselves; the statements are the ones a master
runs (``job_reads_sql``), here on one short-lived driver connection opened
with the arguments the config's digest recorded. No SQLAlchemy is imported:
that import was most of such a command's run.
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


@contextmanager
def driver_job_reads(target: DriverTarget) -> Iterator[JobReads]:
    """The job reads on a connection of their own, closed on leaving; a driver error is ``StoreUnavailable``."""
    driver = importlib.import_module(target.driver_module)
    connection = None
    try:
        connection = open_connection(target, driver)
        yield JobReads(rows_on(connection), target.dialect)
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
