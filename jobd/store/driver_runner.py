"""The store through the database driver alone: the master's ``SqlRunner``.

The master runs its whole life on driver SQL (``sql_statements``), so it
needs none of SQLAlchemy's engine, pool or dialects — about 20 MB of its
memory. What the engine did for it is done here, with the same effect:

* One connection per thread, kept between transactions (the master's loop,
  its WAL checkpoint thread and its status answers each have their own),
  opened with the arguments SQLAlchemy would use (``driver_sql.DriverTarget``,
  worked out by ``engine.driver_target`` where SQLAlchemy is loaded anyway:
  ``jobd start``).
* SQLite: writes begin with ``BEGIN IMMEDIATE``, waiting for the write lock in
  short polls (``sqlite_write_lock``); a read is a statement of its own,
  polled the same way. MySQL: READ COMMITTED, reads in autocommit, writes
  between ``BEGIN`` and ``COMMIT``; a connection is opened again once it is
  half an hour old (inside the server's idle timeout), never under a
  transaction.
* A driver error comes out as ``errors.StoreFault``. A connection the error
  may have broken (an outage, a failed rollback) is dropped, and the next
  transaction opens another; one that only refused data is rolled back and kept.
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

from .driver_sql import DriverTarget, close_quietly, open_connection
from .errors import StoreFault, is_outage
from .sql_statements import Statements
from .sqlite_write_lock import NO_WAIT, retry_while_locked

#: MySQL: a connection older than this is opened again before its next transaction (the pool's ``pool_recycle``).
MYSQL_RECYCLE_SECONDS = 1800.0
READ_COMMITTED = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"


class _Held:
    """One thread's connection and its cursor."""

    def __init__(self, connection: Any, cursor: Any) -> None:
        self.connection = connection
        self.cursor = cursor
        self.opened_at = time.monotonic()
        self.pid = os.getpid()


class DriverRunner:
    """Transactions on a store through its DB-API driver (``sql_runner.SqlRunner``)."""

    def __init__(self, target: DriverTarget, url: str) -> None:
        self.target = target
        self._url = url
        self.driver: Any = importlib.import_module(target.driver_module)
        self._sqlite = target.dialect == "sqlite"
        self._busy_timeout = float(target.kwargs.get("timeout", 5.0)) if self._sqlite else 0.0
        self._local = threading.local()
        self._opened: list[_Held] = []  # every thread's, to close on ``dispose``
        self._guard = threading.Lock()
        self._returns_ids: bool | None = None

    @property
    def dialect(self) -> str:
        return self.target.dialect

    @property
    def url(self) -> str:
        return self._url

    @contextmanager
    def write(self) -> Iterator[Statements]:
        held = self._held()
        begin = "BEGIN IMMEDIATE" if self._sqlite else "BEGIN"
        self._local.in_transaction = True
        try:
            try:
                if self._sqlite:
                    self._retrying(lambda: held.cursor.execute(begin))
                else:
                    held.cursor.execute(begin)
                yield self._statements(held, retry=False)
                held.cursor.execute("COMMIT")
            except self.driver.Error as error:
                self._failed(held, error)
                raise StoreFault(error, connection_invalidated=self._held_now() is None) from error
            except BaseException:
                self._roll_back(held)
                raise
        finally:
            self._local.in_transaction = False

    @contextmanager
    def read(self) -> Iterator[Statements]:
        held = self._held()
        try:
            yield self._statements(held, retry=self._sqlite)
        except self.driver.Error as error:
            self._failed(held, error)
            raise StoreFault(error, connection_invalidated=self._held_now() is None) from error

    def returns_ids(self) -> bool:
        if self._returns_ids is None:
            if self._sqlite:
                self._returns_ids = sqlite3.sqlite_version_info >= (3, 35)
            else:
                from .bulk_sql import server_returns_ids

                with self.read() as sql:
                    self._returns_ids = server_returns_ids(str(sql.rows("SELECT VERSION() AS version", ())[0]["version"]))
        return self._returns_ids

    def connect(self) -> Any:
        """A new connection of the caller's own (a WAL checkpoint's), opened as the runner's are; the caller closes it."""
        try:
            return open_connection(self.target, self.driver)
        except self.driver.Error as error:
            raise StoreFault(error, connection_invalidated=True) from error

    def dispose(self) -> None:
        with self._guard:
            opened, self._opened = self._opened, []
        for held in opened:
            if held.pid == os.getpid():
                close_quietly(held.connection)
        self._local = threading.local()

    # -- connections ---------------------------------------------------------

    def _held_now(self) -> _Held | None:
        held: _Held | None = getattr(self._local, "held", None)
        return held

    def _held(self) -> _Held:
        """This thread's connection: opened if there is none, again if it is stale (MySQL) or a parent's."""
        held = self._held_now()
        if held is not None:
            if held.pid != os.getpid():
                _inherited.append(held.connection)  # the parent's: neither used nor closed here
                held = None
            elif (
                not self._sqlite and not getattr(self._local, "in_transaction", False)
                and time.monotonic() - held.opened_at > MYSQL_RECYCLE_SECONDS
            ):
                self._drop(held)
                held = None
        if held is None:
            held = self._open()
        return held

    def _open(self) -> _Held:
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
        held = _Held(connection, cursor)
        self._local.held = held
        with self._guard:
            self._opened.append(held)
        return held

    def _drop(self, held: _Held) -> None:
        """Close ``held`` and forget it: the next transaction opens another connection."""
        if self._held_now() is held:
            self._local.held = None
        with self._guard:
            if held in self._opened:
                self._opened.remove(held)
        close_quietly(held.connection)

    def _failed(self, held: _Held, error: BaseException) -> None:
        """After a driver error: roll back, and drop the connection if the error or the rollback may have broken it."""
        if is_outage(error) and not self._sqlite:
            self._drop(held)  # a lost or timed-out MySQL connection may answer the next statement with this one's reply
            return
        self._roll_back(held)

    def _roll_back(self, held: _Held) -> None:
        try:
            if self._sqlite:
                if held.connection.in_transaction:
                    held.cursor.execute("ROLLBACK")
            else:
                held.connection.rollback()
        except Exception:
            self._drop(held)  # a connection that cannot roll back is not used again

    # -- statements ----------------------------------------------------------

    def _retrying(self, run: Any) -> Any:
        return retry_while_locked(run, self._busy_timeout, self.driver.Error)

    def _statements(self, held: _Held, *, retry: bool) -> Statements:
        cursor = held.cursor
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


_inherited: list[Any] = []  # connections a forked child inherited: kept referenced so no finalizer closes them
