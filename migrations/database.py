"""Connections to tenant databases: session settings, the per-tenant lock, raw step SQL.

Each tenant is migrated on ONE dedicated connection that holds its
``GET_LOCK``: if the runner dies, the server drops the connection and the
lock with it, so a crash never leaves a tenant locked. Connections are never
pooled (NullPool) for the same reason: a pooled connection could hand a held
lock to an unrelated caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from jobd.errors import StoreUnavailable
from jobd.migrations.errors import TenantBusy, UnknownTenant
from jobd.migrations.identifiers import quote
from jobd.migrations.tenants import Tenant

MYSQL_LOCK_NAME_LIMIT = 64


def server_engine(url: URL) -> Engine:
    """An engine for the tenants' server; each connect() is a fresh session."""
    return create_engine(url, poolclass=NullPool)


def lock_name(database: str) -> str:
    """The server-wide ``GET_LOCK`` name guarding one tenant database."""
    name = f"jobd:migrate:{database}"
    if len(name) <= MYSQL_LOCK_NAME_LIMIT:
        return name
    return "jobd:migrate:" + hashlib.sha1(database.encode()).hexdigest()


class TenantConnection:
    """One session on a tenant database, with the helpers the engine needs."""

    def __init__(self, connection: Connection, tenant: Tenant) -> None:
        self.connection = connection
        self.tenant = tenant
        self.locked = False

    def execute(self, sql: str, **params: Any) -> Any:
        """Run jobd's own SQL with bound parameters."""
        return self.connection.execute(text(sql), params)

    def run_raw(self, statement: str) -> None:
        """Run a migration statement verbatim through the driver.

        The DBAPI cursor is used without parameters so that ``%`` and ``:``
        in a step's SQL are never taken for placeholders.
        """
        cursor = self.connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(statement)
            if cursor.description is not None:
                cursor.fetchall()
        finally:
            cursor.close()

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()

    def acquire_lock(self, wait_seconds: float) -> None:
        """Take the tenant's migration lock or raise TenantBusy naming the holder."""
        name = lock_name(self.tenant.database)
        got = self.execute("SELECT GET_LOCK(:name, :wait)", name=name, wait=wait_seconds).scalar()
        if got != 1:
            holder = self.execute("SELECT IS_USED_LOCK(:name)", name=name).scalar()
            raise TenantBusy(
                f"tenant {self.tenant.name}: another runner is migrating it "
                f"(MariaDB connection {holder}); it was left to that runner — "
                "re-run later, or pass --lock-wait SECONDS to wait for it"
            )
        self.locked = True

    def release_lock(self) -> None:
        if self.locked:
            self.execute("SELECT RELEASE_LOCK(:name)", name=lock_name(self.tenant.database))
            self.locked = False

    def base_tables(self, database: str | None = None) -> list[str]:
        """Base tables of the tenant (or another) database, by name."""
        rows = self.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = :db AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            db=database or self.tenant.database,
        )
        return [row[0] for row in rows]


@contextmanager
def open_tenant(engine: Engine, tenant: Tenant, *, lock_wait_timeout: int | None = None) -> Iterator[TenantConnection]:
    """A session with the tenant's database selected; fails clearly if it does not exist."""
    try:
        connection = engine.connect()
    except OperationalError as error:
        raise StoreUnavailable(f"tenant {tenant.name}: cannot connect to its server: {error.orig}") from None
    try:
        exists = connection.execute(
            text("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :db"),
            {"db": tenant.database},
        ).scalar()
        if not exists:
            raise UnknownTenant(f"tenant {tenant.name}: database {tenant.database!r} does not exist")
        connection.exec_driver_sql(f"USE {quote(tenant.database)}")
        if lock_wait_timeout is not None:
            # A DDL waiting for a metadata lock (a long transaction on the
            # table) fails after this many seconds instead of hanging, and
            # stops queueing the application's queries behind it.
            connection.execute(text("SET SESSION lock_wait_timeout = :seconds"), {"seconds": lock_wait_timeout})
        connection.commit()
        session = TenantConnection(connection, tenant)
        try:
            yield session
        finally:
            try:
                session.release_lock()
            except OperationalError:
                pass  # the connection is gone, and the lock with it
    finally:
        connection.close()


def database_sizes(engine: Engine, databases: Sequence[str]) -> dict[str, int]:
    """Data + index bytes of each database, for largest-first ordering."""
    if not databases:
        return {}
    params = {f"d{position}": name for position, name in enumerate(databases)}
    placeholders = ", ".join(f":{key}" for key in params)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT TABLE_SCHEMA, SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
                f"WHERE TABLE_SCHEMA IN ({placeholders}) GROUP BY TABLE_SCHEMA"
            ),
            params,
        )
        return {row[0]: int(row[1] or 0) for row in rows}
