"""The full submit's statements, run straight on the driver's cursor.

A submit's INSERT sits between an application asking for a job and the job
starting (the master's claim, on the other end, is driver SQL on its own
connections: ``driver_runner``). Through a SQLAlchemy ``Connection`` it
costs an execution context, event dispatch and result wrapping on top of
the statement itself — on SQLite more than the database spends writing the
row. These statements are still SQLAlchemy Core expressions, compiled once
per engine for its dialect (placeholders, quoting, ``FOR UPDATE SKIP
LOCKED``), with the types' bind and result conversions applied; only the
execution goes to the DBAPI cursor of a pooled connection directly.

What callers see does not change: a driver error comes out as SQLAlchemy's
``DBAPIError`` (as from any other statement of the full submit), a
connection the driver reports as lost is invalidated, not reused, and a
transaction that did not commit is rolled back before its connection goes
back to the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
import functools
import os
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

from .driver_sql import leave_to_parent
from .engine import sqlite_busy_timeout
from .sqlite_write_lock import NO_WAIT, is_busy, retry_while_locked, wait_in_sqlite


class DirectStatement:
    """A Core statement compiled once for ``engine``'s dialect, executed on a raw cursor."""

    def __init__(
        self,
        engine: sa.Engine,
        statement: sa.ClauseElement,
        *,
        column_keys: Sequence[str] | None = None,
        returns: Iterable[sa.ColumnElement[Any]] = (),
    ) -> None:
        """``column_keys``: the columns an INSERT sets; ``returns``: the columns its rows carry."""
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys is not None else None)
        assert isinstance(compiled, SQLCompiler)
        self._compiled = compiled
        self._positional = dialect.positional  # SQLite: qmark; PyMySQL: pyformat (named)
        self.sql = str(compiled)
        self._expanding = any(bind.expanding for bind in compiled.binds.values())
        # An INSERT's binds are exactly the row's columns: no defaults or literals to fill in.
        self._plain = not self._expanding and set(compiled.binds) == set(column_keys or ())
        self._bind_processors = {
            name: processor
            for name, bind in compiled.binds.items()
            if not bind.expanding and (processor := bind.type.bind_processor(dialect)) is not None
        }
        self._result_processors = {
            column.key: processor
            for column in returns
            if column.key is not None and (processor := column.type.result_processor(dialect, None)) is not None
        }
        # A statement with fixed values among its binds (``state = 'running'``): each bind's
        # place is either a caller's value or a constant, worked out now instead of per call.
        self._template: list[tuple[str, bool, Any]] | None = None
        if self._positional and not self._plain and not self._expanding:
            assert compiled.positiontup is not None
            self._template = [
                (name, True, None) if compiled.binds[name].required
                else (name, False, self._bind_processors.get(name, _same)(compiled.binds[name].effective_value))
                for name in compiled.positiontup
            ]
        self._row_shape: tuple[list[str], list[Any]] | None = None

    def parameters(self, values: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL and the driver's parameters (a tuple, or a dict for a named paramstyle) for ``values``."""
        if self._plain:
            convert = self._bind_processors
            if not self._positional:
                return self.sql, {name: convert[name](value) if name in convert else value for name, value in values.items()}
            assert self._compiled.positiontup is not None
            return self.sql, tuple(
                convert[name](values[name]) if name in convert else values[name]
                for name in self._compiled.positiontup
            )
        if self._template is not None:
            convert = self._bind_processors
            return self.sql, tuple(
                (convert[name](values[name]) if name in convert else values[name]) if given else constant
                for name, given, constant in self._template
            )
        if self._expanding:  # an IN list: the SQL depends on how many values it has
            state = self._compiled.construct_expanded_state(dict(values))
            sql, order = state.statement, state.positiontup
            params: MutableMapping[str, Any] = dict(state.parameters)
            processors = [*self._bind_processors.items(), *state.processors.items()]
        else:
            sql, order = self.sql, self._compiled.positiontup
            params = self._compiled.construct_params(dict(values))
            processors = list(self._bind_processors.items())
        for name, processor in processors:
            if name in params:
                params[name] = processor(params[name])
        if not self._positional:
            return sql, params
        assert order is not None
        return sql, tuple(params[name] for name in order)

    def rows(self, cursor: Any) -> list[dict[str, Any]]:
        """The rows ``cursor`` returns for this statement, as dicts with the types' conversions applied."""
        shape = self._row_shape
        if shape is None or len(shape[0]) != len(cursor.description):  # the statement fixes its columns
            names = [description[0] for description in cursor.description]
            shape = self._row_shape = (names, [self._result_processors.get(name) for name in names])
        names, processors = shape
        rows = []
        for raw in cursor.fetchall():
            rows.append({
                name: (processor(value) if processor is not None else value)
                for name, processor, value in zip(names, processors, raw)
            })
        return rows


def _same(value: Any) -> Any:
    return value


class DirectTransaction:
    """A transaction on a pooled DBAPI connection: ``execute`` direct statements, commit at the end."""

    def __init__(self, cursor: Any, retry: Callable[[Callable[[], Any]], Any] | None = None) -> None:
        """``retry``: how a statement SQLite found the lock taken for is tried again (each its own transaction)."""
        self.cursor = cursor
        self.last_sql: str | None = None
        self.retry = retry

    def execute(self, statement: DirectStatement, values: Mapping[str, Any]) -> Any:
        """Run ``statement`` with ``values``; return the cursor (for ``lastrowid`` or ``statement.rows``)."""
        sql, params = statement.parameters(values)
        return self.run(sql, params)

    def run(self, sql: str, params: Any) -> Any:
        """Run driver SQL (``job_claim_sql``) with the driver's parameters; return the cursor."""
        self.last_sql = sql
        try:
            self.cursor.execute(sql, params)
        except Exception as error:
            if self.retry is None or not is_busy(error):
                raise
            self.retry(lambda: self.cursor.execute(sql, params))
        return self.cursor

    def rows(self, sql: str, params: Any) -> list[dict[str, Any]]:
        """Run driver SQL; every row it returned, as a mapping of column name to the driver's value."""
        cursor = self.run(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


@contextmanager
def direct_transaction(
    engine: sa.Engine, *, autocommit: bool = False,
) -> Iterator[DirectTransaction]:
    """Open a writing transaction on this process's held connection; commit if the block ends normally.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE`` like every
    writing transaction of the store (see ``engine.py``); MySQL starts one
    implicitly (autocommit is off). ``autocommit=True``: each statement
    commits as it runs, so there is no transaction, no BEGIN and no COMMIT
    to send — on MySQL through an engine made with ``make_engine(url,
    autocommit=True)``; on SQLite because jobd's connections leave the
    driver no transaction control, so a statement outside BEGIN is its own
    transaction. Only for a block whose one write needs nothing read before
    it in the same transaction. On SQLite the write lock is waited for in
    short polls (``sqlite_write_lock``), not in SQLite's busy handler.

    The connection is the one this process keeps checked out of ``engine``'s
    pool for these statements (see ``HeldConnection``); a thread that finds
    it in use by another takes a pooled connection for this transaction.
    """
    held = _held_connection(engine)
    if held.lock.acquire(blocking=False):
        try:
            raw, cursor = held.take(engine)
            with _transaction(engine, raw, cursor, autocommit) as transaction:
                yield transaction
        finally:
            held.lock.release()
        return
    raw = _connect(engine)
    cursor = raw.cursor()
    polls = False
    try:
        polls = _poll_for_locks(engine, cursor)
        with _transaction(engine, raw, cursor, autocommit) as transaction:
            yield transaction
    finally:
        try:
            if polls:
                cursor.execute(wait_in_sqlite(sqlite_busy_timeout(engine.url)))  # back to the pool as it came
            cursor.close()
        except Exception:
            pass
        raw.close()


def _poll_for_locks(engine: sa.Engine, cursor: Any) -> bool:
    """On SQLite, switch this connection's busy timeout off: its statements poll (``sqlite_write_lock``)."""
    if engine.dialect.name != "sqlite":
        return False
    cursor.execute(NO_WAIT)
    return True


def _connect(engine: sa.Engine) -> Any:
    """A pooled raw connection; a driver error while connecting comes out as SQLAlchemy's, like any other.

    ``Engine.raw_connection`` lets the driver's own exception through (a
    pymysql ``OperationalError`` for a refused connection), which callers
    that classify ``sa.exc.DBAPIError`` (outage or refused data) would miss.
    """
    driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    try:
        return engine.raw_connection()
    except driver_error as error:
        raise sa.exc.DBAPIError.instance(
            None, None, error, driver_error, hide_parameters=True, connection_invalidated=True, dialect=engine.dialect,
        ) from error


@contextmanager
def _transaction(
    engine: sa.Engine, raw: Any, cursor: Any, autocommit: bool,
) -> Iterator[DirectTransaction]:
    dialect = engine.dialect
    driver_error: type[Exception] = dialect.loaded_dbapi.Error
    sqlite = dialect.name == "sqlite"
    retry = None
    if sqlite:  # the connection's busy timeout is off (_poll_for_locks): wait for the lock here
        busy_timeout = sqlite_busy_timeout(engine.url)
        retry = functools.partial(retry_while_locked, busy_timeout=busy_timeout, driver_error=driver_error)
    transaction = DirectTransaction(cursor, retry if autocommit else None)
    try:
        if retry is not None and not autocommit:
            transaction.last_sql = "BEGIN IMMEDIATE"
            retry(lambda: cursor.execute("BEGIN IMMEDIATE"))
        yield transaction
        if not autocommit:
            transaction.last_sql = "COMMIT"
            raw.commit()
    except driver_error as error:
        lost = dialect.is_disconnect(error, raw.dbapi_connection, cursor)  # type: ignore[arg-type]
        if lost:
            raw.invalidate(error)
        else:
            _roll_back_quietly(raw)
        raise sa.exc.DBAPIError.instance(
            transaction.last_sql, None, error, driver_error, hide_parameters=True,
            connection_invalidated=lost, dialect=dialect,
        ) from error
    except BaseException:
        _roll_back_quietly(raw)
        raise


class HeldConnection:
    """One pooled connection a process keeps checked out for the submit's and the claim's statements.

    Checking a connection out of SQLAlchemy's pool and back in (events,
    weak references, the reset on return) cost more than SQLite spent on a
    submit's INSERT, and both ends of the submit-to-start path paid it once
    per job. The held connection is checked out once and used under a lock;
    it is given up, and another taken, when it was invalidated (a lost MySQL
    connection), when it is older than ``RECYCLE_SECONDS`` (inside MySQL's
    idle timeout, like the pool's own recycling), and in a forked child,
    which never touches the connection it inherited from its parent.
    """

    RECYCLE_SECONDS = 600.0

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._raw: Any = None
        self._cursor: Any = None
        self._pid = 0
        self._taken_at = 0.0
        self._given_back: str | None = None  # the pragma that restores its busy timeout (SQLite)

    def take(self, engine: sa.Engine) -> tuple[Any, Any]:
        """The connection and its cursor (call with ``lock`` held)."""
        raw = self._raw
        if raw is not None:
            if self._pid != os.getpid():
                leave_to_parent(raw)
                self._raw = raw = None
            elif not raw.is_valid or time.monotonic() - self._taken_at > self.RECYCLE_SECONDS:
                self.release()
                raw = None
        if raw is None:
            raw = _connect(engine)
            self._raw, self._cursor = raw, raw.cursor()
            self._pid, self._taken_at = os.getpid(), time.monotonic()
            if _poll_for_locks(engine, self._cursor):
                self._given_back = wait_in_sqlite(sqlite_busy_timeout(engine.url))
        return raw, self._cursor

    def release(self) -> None:
        """Give the connection back to the pool (call with ``lock`` held, or when nobody uses it)."""
        raw, cursor, self._raw, self._cursor = self._raw, self._cursor, None, None
        given_back, self._given_back = self._given_back, None
        if raw is None or self._pid != os.getpid():
            return
        try:
            if given_back is not None and raw.is_valid:
                cursor.execute(given_back)  # its busy timeout back, for the pool's other users
        except Exception:
            raw.invalidate()  # not handed to anyone else without it
        try:
            raw.close()  # back to the pool, or closed if it was invalidated
        except Exception:
            pass


_held: weakref.WeakKeyDictionary[sa.Engine, HeldConnection] = weakref.WeakKeyDictionary()
_held_guard = threading.Lock()


def _held_connection(engine: sa.Engine) -> HeldConnection:
    held = _held.get(engine)
    if held is None:
        with _held_guard:
            held = _held.setdefault(engine, HeldConnection())
    return held


def release_held(engine: sa.Engine) -> None:
    """Give back the connection held for ``engine`` (before the engine is disposed)."""
    held = _held.pop(engine, None)
    if held is not None:
        with held.lock:
            held.release()


def _roll_back_quietly(raw: Any) -> None:
    try:
        raw.rollback()
    except Exception:
        raw.invalidate()  # a connection that cannot roll back is not given to anyone else
