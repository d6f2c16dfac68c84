"""A submit's statements through the database driver alone: read the task catalogue, insert a job.

`jobd trigger` used to load SQLAlchemy (about a third of its wall time)
for one SELECT and one INSERT. Here they are written once in SQL with the
driver's placeholders (never a value pasted in; the column names are
``NewJob.row``'s own), on a connection opened as a worker's is
(``driver_sql.open_connection``: the same arguments and pragmas as the
engine's). The INSERT commits as it runs, as the engine's submit does: the
job is durable when ``insert`` returns. The jobs table's defaults are the
server's (``schema.py``), so a row inserted here is the row SQLAlchemy's
INSERT of the same values makes.

A job inserted already claimed for a master's hand-off that nobody took
goes back to the queue with ``requeue_handed``: ``JobQueue.requeue``'s
UPDATE for one job, its attempt refunded.

Errors are the driver's own (``driver.Error``); the caller decides what
each means (``jobd.ops.quick_submit``).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .. import defaults
from ..states import JobState, transition
from .catalogue_row import CatalogueRow
from .driver_reads import rows_on
from .driver_sql import DriverTarget, close_quietly, open_connection
from .job_reads_sql import JobReads


class SubmitStatements:
    """One connection to the store, opened on first use, for catalogue reads and job inserts (one thread's)."""

    #: A connection older than this is closed and opened again before its next statement (``_connected``).
    RECYCLE_SECONDS = 600.0

    def __init__(self, target: DriverTarget) -> None:
        self.target = target
        self.driver: Any = importlib.import_module(target.driver_module)
        self._connection: Any = None
        self._opened_at = 0.0
        self._in_transaction = False
        self._cursor: Any = None
        self._inserts: dict[tuple[str, ...], str] = {}
        self._catalogue = f"SELECT daemon, version, tasks, published_at FROM {defaults.TABLE_PREFIX}task_catalogue"

    def catalogue_rows(self) -> list[CatalogueRow]:
        """Every daemon's published catalogue row (``catalogue.read_published``'s, through the driver)."""
        # fetchall: the statement ends here (SQLite would keep a read transaction open otherwise).
        rows = self._execute(self._catalogue, ()).fetchall()
        return [CatalogueRow(daemon, version, tasks, float(published_at)) for daemon, version, tasks, published_at in rows]

    def insert(self, row: Mapping[str, Any]) -> int:
        """Insert ``row`` (``NewJob.row``) into the jobs table, committed; the new job's id."""
        columns = tuple(row)
        sql = self._inserts.get(columns)
        if sql is None:  # a row's columns are one of a few sets (queued, handed): each statement is made once
            marks = ", ".join([self.target.placeholder] * len(columns))
            sql = self._inserts[columns] = f"INSERT INTO {defaults.TABLE_PREFIX}jobs ({', '.join(columns)}) VALUES ({marks})"
        return int(self._execute(sql, tuple(row.values())).lastrowid)

    def insert_unique(self, row: Mapping[str, Any]) -> tuple[int, bool]:
        """Insert ``row``, whose ``unique_key`` is set, unless an unfinished job holds that key: (job id, whether inserted).

        Finished jobs give their key up, so only an unfinished one is found.
        SQLite looks and inserts in one write transaction; on MySQL a submit
        racing this one may insert the key between the look and the INSERT,
        whose unique index then refuses it, and that job's id is returned.
        """
        find = f"SELECT id FROM {defaults.TABLE_PREFIX}jobs WHERE unique_key = {self.target.placeholder}"
        key = (row["unique_key"],)
        if self.target.dialect != "sqlite":
            found = self._execute(find, key).fetchall()
            if found:
                return int(found[0][0]), False
            try:
                return self.insert(row), True
            except self.driver.IntegrityError:
                found = self._execute(find, key).fetchall()
                if not found:
                    raise
                return int(found[0][0]), False
        with self.transaction():
            found = self._execute(find, key).fetchall()
            return (int(found[0][0]), False) if found else (self.insert(row), True)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction on this connection (SQLite: ``BEGIN IMMEDIATE``, as every writer of the store);
        committed if the block ends normally, else rolled back. Yields the cursor."""
        self._execute("BEGIN IMMEDIATE" if self.target.dialect == "sqlite" else "BEGIN", ())
        self._in_transaction = True  # the connection is not recycled under an open transaction
        try:
            yield self._cursor
            self._execute("COMMIT", ())
        except BaseException:
            self._roll_back()
            raise
        finally:
            self._in_transaction = False

    @property
    def connection(self) -> Any:
        """The DB-API connection (opened if need be)."""
        return self._connected()

    def _roll_back(self) -> None:
        try:
            self._execute("ROLLBACK", ())
        except self.driver.Error:
            self.close()  # a connection that cannot roll back is not used again

    def job_row(self, job_id: int) -> Mapping[str, Any] | None:
        """Job ``job_id``'s row (``job_reads_sql.JobReads.get``, the statement a master runs), or None."""
        return JobReads(rows_on(self._connected()), self.target.dialect).get(job_id)

    def requeue_handed(self, job_id: int, master: str) -> int:
        """Put job ``job_id`` back in the queue if it is still running for ``master``, attempt refunded; rows moved."""
        transition(JobState.RUNNING, JobState.QUEUED)
        mark = self.target.placeholder
        sql = (
            f"UPDATE {defaults.TABLE_PREFIX}jobs SET state = {mark}, owner = NULL, worker_pid = NULL, updated_at = {mark}, "
            f"attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END "
            f"WHERE id = {mark} AND state = {mark} AND owner = {mark}"
        )
        values = (str(JobState.QUEUED), time.time(), job_id, str(JobState.RUNNING), master)
        return int(self._execute(sql, values).rowcount)

    def _execute(self, sql: str, parameters: tuple[Any, ...]) -> Any:
        self._connected()
        self._cursor.execute(sql, parameters)
        return self._cursor

    def _connected(self) -> Any:
        """The connection, opened again once it is ``RECYCLE_SECONDS`` old.

        An application may submit once and then nothing for hours; MySQL
        closes a connection idle past its ``wait_timeout`` (8 hours by
        default), and the next INSERT on it would fail with the job maybe
        written or not. A connection is therefore given up well inside that
        time, as the engine's pool does; never under an open transaction,
        whose statements must all run on one connection.
        """
        if self._connection is not None and not self._in_transaction and time.monotonic() - self._opened_at > self.RECYCLE_SECONDS:
            self.close()
        if self._connection is None:
            self._connection = open_connection(self.target, self.driver)
            self._cursor = self._connection.cursor()
            self._opened_at = time.monotonic()
        return self._connection

    def close(self) -> None:
        connection, self._connection, self._cursor = self._connection, None, None
        close_quietly(connection)
