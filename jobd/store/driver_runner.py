"""The store through the database driver alone: the master's ``SqlRunner``.

The master runs its whole life on driver SQL (``sql_statements``), so it
needs none of SQLAlchemy's engine, pool or dialects — about 20 MB of its
memory. What the engine did for it is done here, with the same effect:

* A small pool of connections kept open between transactions, opened with
  the arguments SQLAlchemy would use (``driver_sql.DriverTarget``, worked
  out by ``engine.driver_target`` where SQLAlchemy is loaded anyway: ``jobd
  start``). A transaction takes one and gives it back; a statement a thread
  runs inside its own transaction stays on that transaction's connection.
  Threads that come and go (the master counts jobs on a thread of its own
  each time) reuse the pool's connections instead of opening one each.
* SQLite: writes begin with ``BEGIN IMMEDIATE``, waiting for the write lock in
  short polls (``sqlite_write_lock``); a read is a statement of its own,
  polled the same way. MySQL: READ COMMITTED, reads in autocommit, writes
  between ``BEGIN`` and ``COMMIT``; a connection is opened again once it is
  half an hour old (inside the server's idle timeout), never under a
  transaction.
* A driver error comes out as ``errors.StoreFault``. A connection the error
  may have broken (an outage, a failed rollback) is closed, and the next
  transaction opens another; one that only refused data is rolled back and
  goes back to the pool.
* A forked child never touches the connections it inherited.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .driver_sql import DriverTarget, close_quietly, leave_to_parent, open_connection
from .errors import StoreFault, is_outage
from .sql_statements import Statements
from .sqlite_write_lock import NO_WAIT, retry_while_locked

#: MySQL: a connection older than this is opened again before its next transaction (the pool's ``pool_recycle``).
MYSQL_RECYCLE_SECONDS = 1800.0
#: Connections kept open while no transaction uses them (more are closed as they come back).
IDLE_KEPT = 4
READ_COMMITTED = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"


class _Pooled:
    """One connection, its cursor, and whether it may still be used."""

    def __init__(self, connection: Any, cursor: Any) -> None:
        self.connection = connection
        self.cursor = cursor
        self.opened_at = time.monotonic()
        self.pid = os.getpid()
        self.broken = False  # closed after an error: never handed out again


class DriverRunner:
    """Transactions on a store through its DB-API driver (``sql_runner.SqlRunner``)."""

    def __init__(self, target: DriverTarget, url: str) -> None:
        self.target = target
        self._url = url
        self.driver: Any = importlib.import_module(target.driver_module)
        self._sqlite = target.dialect == "sqlite"
        self._idle: list[_Pooled] = []
        self._guard = threading.Lock()
        self._current = threading.local()  # the connection a thread's block runs on, while it runs
        self._returns_ids: bool | None = None

    @property
    def dialect(self) -> str:
        return self.target.dialect

    @property
    def url(self) -> str:
        return self._url

    @contextmanager
    def write(self) -> Iterator[Statements]:
        with self._checked_out() as pooled:
            begin = "BEGIN IMMEDIATE" if self._sqlite else "BEGIN"
            try:
                if self._sqlite:
                    self._retrying(lambda: pooled.cursor.execute(begin))
                else:
                    pooled.cursor.execute(begin)
                yield self._statements(pooled, retry=False)
                pooled.cursor.execute("COMMIT")
            except self.driver.Error as error:
                self._failed(pooled, error)
                raise StoreFault(error, connection_invalidated=pooled.broken) from error
            except BaseException:
                self._roll_back(pooled)
                raise

    @contextmanager
    def read(self) -> Iterator[Statements]:
        with self._checked_out() as pooled:
            try:
                yield self._statements(pooled, retry=self._sqlite and not pooled.connection.in_transaction)
            except self.driver.Error as error:
                self._failed(pooled, error)
                raise StoreFault(error, connection_invalidated=pooled.broken) from error

    def returns_ids(self) -> bool:
        if self._returns_ids is None:
            if self._sqlite:
                self._returns_ids = sqlite3.sqlite_version_info >= (3, 35)
            else:
                from .bulk_sql import server_returns_ids

                with self.read() as sql:
                    self._returns_ids = server_returns_ids(str(sql.rows("SELECT VERSION() AS version", ())[0]["version"]))
        return self._returns_ids

    def dispose(self) -> None:
        with self._guard:
            idle, self._idle = self._idle, []
        for pooled in idle:
            if pooled.pid == os.getpid():
                close_quietly(pooled.connection)

    # -- connections ---------------------------------------------------------

    @contextmanager
    def _checked_out(self) -> Iterator[_Pooled]:
        """The connection of the thread's block already running (a statement inside it), else one from the pool."""
        current: _Pooled | None = getattr(self._current, "pooled", None)
        if current is not None:
            yield current
            return
        pooled = self._take()
        self._current.pooled = pooled
        try:
            yield pooled
        finally:
            self._current.pooled = None
            self._give_back(pooled)

    def _take(self) -> _Pooled:
        """An idle connection still fit for use, else a new one."""
        while True:
            with self._guard:
                pooled = self._idle.pop() if self._idle else None
            if pooled is None:
                return self._open()
            if pooled.pid != os.getpid():
                leave_to_parent(pooled.connection)
            elif not self._sqlite and time.monotonic() - pooled.opened_at > MYSQL_RECYCLE_SECONDS:
                close_quietly(pooled.connection)
            else:
                return pooled

    def _give_back(self, pooled: _Pooled) -> None:
        if pooled.broken or pooled.pid != os.getpid():
            return
        with self._guard:
            if len(self._idle) < IDLE_KEPT:
                self._idle.append(pooled)
                return
        close_quietly(pooled.connection)

    def _open(self) -> _Pooled:
        try:
            connection = open_connection(self.target, self.driver)
        except self.driver.Error as error:
            raise StoreFault(error, connection_invalidated=True) from error
        try:
            cursor = connection.cursor()
            cursor.execute(NO_WAIT if self._sqlite else READ_COMMITTED)  # SQLite: this runner polls for the lock itself
        except self.driver.Error as error:
            close_quietly(connection)
            raise StoreFault(error, connection_invalidated=True) from error
        return _Pooled(connection, cursor)

    def _break(self, pooled: _Pooled) -> None:
        """Close ``pooled`` for good: the next transaction opens another connection."""
        pooled.broken = True
        close_quietly(pooled.connection)

    def _failed(self, pooled: _Pooled, error: BaseException) -> None:
        """After a driver error: roll back, and close the connection if the error or the rollback may have broken it."""
        if is_outage(error) and not self._sqlite:
            self._break(pooled)  # a lost or timed-out MySQL connection may answer the next statement with this one's reply
            return
        self._roll_back(pooled)

    def _roll_back(self, pooled: _Pooled) -> None:
        try:
            if self._sqlite:
                if pooled.connection.in_transaction:
                    pooled.cursor.execute("ROLLBACK")
            else:
                pooled.connection.rollback()
        except Exception:
            self._break(pooled)  # a connection that cannot roll back is not used again

    # -- statements ----------------------------------------------------------

    def _retrying(self, run: Any) -> Any:
        return retry_while_locked(run, self.target.busy_timeout, self.driver.Error)

    def _statements(self, pooled: _Pooled, *, retry: bool) -> Statements:
        cursor = pooled.cursor
        retrying = self._retrying

        def execute(sql: str, parameters: Any) -> Any:
            if retry:  # SQLite, outside a transaction: each statement is its own, and "busy" means it did nothing yet
                return retrying(lambda: cursor.execute(sql, parameters))
            return cursor.execute(sql, parameters)

        def rows(sql: str, parameters: tuple[Any, ...]) -> Sequence[Mapping[str, Any]]:
            execute(sql, parameters)
            names = [column[0] for column in cursor.description or ()]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

        def run(sql: str, parameters: tuple[Any, ...]) -> int:
            execute(sql, parameters)
            return int(cursor.rowcount)

        def insert(sql: str, parameters: tuple[Any, ...]) -> int:
            execute(sql, parameters)
            return int(cursor.lastrowid or 0)

        def run_many(sql: str, parameters: Sequence[tuple[Any, ...]]) -> None:
            if parameters:
                cursor.executemany(sql, list(parameters))

        return Statements(self.target.dialect, rows, run, insert, run_many)

