"""SQLAlchemy engines tuned for a job queue on each backend.

SQLite: WAL so readers never block the writer, a busy timeout instead of
instant "database is locked" errors, and ``BEGIN IMMEDIATE`` for writing
transactions so two processes never deadlock upgrading a read lock.
MySQL/MariaDB: READ COMMITTED (fewer gap locks under ``SKIP LOCKED``) and
connections recycled inside the server's idle timeout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..errors import StoreUnavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = {"jobd_read_only": True}


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``mysql+pymysql://…``)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreUnavailable(f"store URL {url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() in {"mysql", "mariadb"}:
        if parsed.get_driver_name() not in {"pymysql"}:
            raise StoreUnavailable(f"store URL {url!r}: use the mysql+pymysql:// driver")
        return sa.create_engine(
            parsed,
            isolation_level="READ COMMITTED",
            # No ping before every checkout (a round trip per transaction on the
            # hot path): connections are recycled well inside the server's
            # wait_timeout, and a connection lost anyway (server restart) is
            # dropped by the pool on its first error; the master loop retries.
            pool_recycle=1800,
            connect_args={"charset": "utf8mb4", "connect_timeout": 10},
        )
    raise StoreUnavailable(
        f"store URL {url!r}: only sqlite:/// and mysql+pymysql:// stores are supported"
    )


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN
        # is ours (see _on_begin); pragmas then apply outside a transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get("jobd_read_only"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
