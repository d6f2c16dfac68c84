"""SQLAlchemy engines tuned for a job queue on each backend.

SQLite: WAL so readers never block the writer, a busy timeout instead of
instant "database is locked" errors, and ``BEGIN IMMEDIATE`` for writing
transactions so two processes never deadlock upgrading a read lock.
MySQL/MariaDB: READ COMMITTED (fewer gap locks under ``SKIP LOCKED``),
connections recycled inside the server's idle timeout, and no ROLLBACK round
trip when a connection that ended its transaction goes back to the pool.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from ..errors import StoreUnavailable
from . import url_options
from .driver_sql import DriverTarget, prepare_sqlite_connection, sqlite_pragmas
from .errors import StoreFault
from .job_reads_sql import Rows
from .sql_statements import Statements

SERVER_STATUS_IN_TRANS = 0x0001  # MySQL protocol: a transaction is open on this connection
READ_ONLY = {"jobd_read_only": True}


def rows_of(connection: sa.Connection) -> Rows:
    """Run driver SQL (``job_reads_sql``) on a SQLAlchemy connection, inside whatever transaction it holds."""

    def rows(sql: str, parameters: tuple[Any, ...]) -> Sequence[Mapping[str, Any]]:
        # RowMapping is keyed by name here: driver SQL has no Column objects to key by.
        return cast(Sequence[Mapping[str, Any]], connection.exec_driver_sql(sql, parameters).mappings().all())

    return rows


def statements_on(connection: sa.Connection) -> Statements:
    """Driver SQL (``sql_statements``) on a SQLAlchemy connection, inside whatever transaction it holds."""

    def run(sql: str, parameters: tuple[Any, ...]) -> int:
        return int(connection.exec_driver_sql(sql, parameters).rowcount)

    def insert(sql: str, parameters: tuple[Any, ...]) -> int:
        return int(connection.exec_driver_sql(sql, parameters).lastrowid)

    def run_many(sql: str, parameters: Sequence[tuple[Any, ...]]) -> None:
        if parameters:
            connection.exec_driver_sql(sql, list(parameters))

    return Statements(connection.dialect.name, rows_of(connection), run, insert, run_many)


class EngineRunner:
    """The store's driver SQL on SQLAlchemy's pooled connections (``sql_runner.SqlRunner``).

    Its driver errors come out as ``StoreFault``, as ``DriverRunner``'s do.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._returns_ids: bool | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Statements]:
        with _as_store_fault(), self.engine.begin() as connection:
            yield statements_on(connection)

    @contextmanager
    def read(self) -> Iterator[Statements]:
        with _as_store_fault(), self.engine.connect().execution_options(**READ_ONLY) as connection:
            yield statements_on(connection)

    def returns_ids(self) -> bool:
        if self._returns_ids is None:
            with _as_store_fault():
                self.engine.connect().close()  # the dialect learns the server (MariaDB's version) on its first connection
            self._returns_ids = bool(self.engine.dialect.insert_returning)
        return self._returns_ids

    def dispose(self) -> None:
        from .cursor_sql import release_held

        release_held(self.engine)
        self.engine.dispose()


@contextmanager
def _as_store_fault() -> Iterator[None]:
    try:
        yield
    except sa.exc.DBAPIError as error:
        raise StoreFault(error.orig or error, statement=error.statement, connection_invalidated=error.connection_invalidated) from error


def make_engine(url: str, *, checkpoint_on_commit: bool = True, autocommit: bool = False) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``mysql+pymysql://…``).

    ``checkpoint_on_commit=False``: SQLite commits never checkpoint the WAL;
    the caller runs checkpoints itself (``checkpoints.WalCheckpointer``).
    ``autocommit=True`` (MySQL only): every statement commits as it runs,
    for single-statement writes that need no COMMIT round trip.
    """
    engine = _make_engine(url, checkpoint_on_commit, autocommit)
    _engines.add(engine)
    return engine


# Every engine this process made: a forked child must not share their pooled
# connections with its parent (two processes on one MySQL socket read each
# other's replies and hang; SQLite forbids it outright).
_engines: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    """In a forked child: fresh pools, the parent's connections neither used nor closed (SQLAlchemy's recipe)."""
    for engine in list(_engines):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)


def _make_engine(url: str, checkpoint_on_commit: bool, autocommit: bool) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreUnavailable(f"store URL {url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        if autocommit:
            raise ValueError("SQLite writes begin with BEGIN IMMEDIATE: no autocommit engine")
        return _sqlite_engine(parsed, checkpoint_on_commit)
    if parsed.get_backend_name() in {"mysql", "mariadb"}:
        if parsed.get_driver_name() not in {"pymysql"}:
            raise StoreUnavailable(f"store URL {url!r}: use the mysql+pymysql:// driver")
        _option(url_options.mysql_tls_files, parsed)  # named here, not by PyMySQL's FileNotFoundError at each connect
        engine = sa.create_engine(
            # jobd's timeouts go in as numbers of seconds below: SQLAlchemy would read them from the URL as integers.
            parsed.difference_update_query(url_options.MYSQL_TIMEOUTS),
            isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
            # No ping before every checkout (a round trip per transaction on the
            # hot path): connections are recycled well inside the server's
            # wait_timeout, and a connection lost anyway (server restart) is
            # dropped by the pool on its first error; the master loop retries.
            pool_recycle=1800,
            pool_reset_on_return=None,  # see _roll_back_if_in_transaction
            connect_args={"charset": "utf8mb4", **mysql_timeouts(parsed)},
        )
        sa.event.listen(engine, "reset", _roll_back_if_in_transaction)
        return engine
    raise StoreUnavailable(
        f"store URL {url!r}: only sqlite:/// and mysql+pymysql:// stores are supported"
    )


def driver_target(url: str, *, checkpoint_on_commit: bool = True) -> DriverTarget:
    """The driver's connection arguments for ``url``, as SQLAlchemy would pass them (``driver_sql.py``).

    Worked out where SQLAlchemy is loaded anyway (``jobd start``) and handed
    to the master and its workers, which then connect without it. See
    ``make_engine`` for ``checkpoint_on_commit``.
    """
    engine = _make_engine(url, checkpoint_on_commit=True, autocommit=False)
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    given = sa.make_url(url)  # jobd's own options, which the engine's URL no longer holds
    if engine.dialect.name == "sqlite":
        busy_timeout = sqlite_busy_timeout(given)
        pragmas = sqlite_pragmas(busy_timeout, checkpoint_on_commit=checkpoint_on_commit, synchronous=sqlite_synchronous(given))
        return DriverTarget("sqlite", tuple(args), {**kwargs, "timeout": busy_timeout}, pragmas)
    return DriverTarget("mysql", tuple(args), {**kwargs, "charset": "utf8mb4", **mysql_timeouts(given)})


def shown_url(url: str) -> str:
    """``url`` as operators may see it: its password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        raise StoreUnavailable(f"store URL {url!r} is not a database URL") from None


def mysql_timeouts(url: sa.URL) -> dict[str, float]:
    """PyMySQL's connect/read/write timeouts for ``url`` (``url_options.mysql_timeouts``)."""
    return _option(url_options.mysql_timeouts, url)


def sqlite_busy_timeout(url: sa.URL) -> float:
    """Seconds a SQLite writer waits for another's lock (``url_options.sqlite_busy_timeout``)."""
    return _option(url_options.sqlite_busy_timeout, url)


def sqlite_synchronous(url: sa.URL) -> str:
    """When a SQLite commit reaches the disk (``url_options.sqlite_synchronous``)."""
    return _option(url_options.sqlite_synchronous, url)


_Read = TypeVar("_Read")


def _option(read: Callable[[url_options.Query], _Read], url: sa.URL) -> _Read:
    """An option of ``url``'s query, read by ``read``; a value it cannot use is a store that cannot be opened."""
    try:
        return read(url.query)
    except ValueError as error:
        raise StoreUnavailable(f"store URL: {error}") from None


def _roll_back_if_in_transaction(dbapi_connection: Any, _record: Any, reset_state: Any) -> None:
    """The pool's reset of a MySQL connection: ROLLBACK only if a transaction is still open.

    The pool's default rolls back every connection it gets back, which is one
    more round trip per transaction, after the COMMIT that already ended it:
    on the submit-to-start path it delayed both the submit's wake-up and the
    claimed job's hand-over. SQLAlchemy ends every transaction it begins
    (commit, or rollback when a connection closes), and the COMMIT's or
    ROLLBACK's OK packet leaves the server's status flags in PyMySQL's
    ``server_status``: whether a transaction is still open. (PyMySQL does not
    refresh them from a result set, so they are exact only after a statement
    that answers OK, such as COMMIT and ROLLBACK; a connection whose rollback
    failed mid-way is invalidated by SQLAlchemy, not reused.)
    """
    if reset_state.terminate_only:
        return  # the connection is being closed
    status = getattr(dbapi_connection, "server_status", None)
    if status is None or status & SERVER_STATUS_IN_TRANS:
        dbapi_connection.rollback()


def _sqlite_engine(url: sa.URL, checkpoint_on_commit: bool) -> sa.Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    busy_timeout = sqlite_busy_timeout(url)
    pragmas = sqlite_pragmas(busy_timeout, checkpoint_on_commit=checkpoint_on_commit, synchronous=sqlite_synchronous(url))
    # ?synchronous= is jobd's (a pragma above), not an argument of the sqlite3 module's connect.
    engine = sa.create_engine(url.difference_update_query(["synchronous"]), connect_args={"timeout": busy_timeout})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN
        # is ours (see _on_begin); pragmas then apply outside a transaction.
        prepare_sqlite_connection(dbapi_connection, pragmas)

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get("jobd_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
