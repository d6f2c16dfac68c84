"""Opening a store on SQLAlchemy: its engines, its tables and the objects that run its operations.

The master's tables are ``StoreCore``'s (driver SQL on a runner); a ``Store``
adds what only SQLAlchemy does here: creating and upgrading the schema, the
full submit, operator actions and batches' creation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from ..errors import StoreUnavailable
from .bulk_insert import BulkJobInsert
from .batches import BatchBook
from .engine import EngineRunner, make_engine, rows_of
from .jobs.full import FullJobQueue
from .schema import SCHEMA_VERSION, build_tables, upgrade
from .status_reads_sql import StatusReads
from .sql_runner import SqlRunner
from .store_core import StoreCore

log = logging.getLogger("jobd.store")


class Store(StoreCore):
    """One store on SQLAlchemy: its engine and tables, and every operation on it."""

    jobs: FullJobQueue
    batches: BatchBook

    def __init__(self, engine: sa.Engine, *, submit_engine: sa.Engine | None = None, runner: SqlRunner | None = None) -> None:
        """``runner``: how the tables a master writes reach the database; by default through ``engine``
        (a test passes the master's own ``DriverRunner`` to run the store's suite the master's way)."""
        self.engine = engine
        self.submit_engine = submit_engine
        self.found_version: int | None = None  # the schema version ``initialise`` found (None: none yet)
        self.metadata, self.tables = build_tables(engine.dialect.name)
        runner = runner or EngineRunner(engine)
        super().__init__(
            runner,
            jobs=FullJobQueue(runner, engine, self.tables["jobs"], submit_engine=submit_engine),
            batches=BatchBook(runner, engine, self.tables["batches"], self.tables["jobs"]),
        )
        self.bulk_jobs = BulkJobInsert(engine)

    def initialise(self) -> int:
        """Create or upgrade the schema to ``SCHEMA_VERSION``; idempotent. Returns the version.

        The version found before (None: a new store) is kept in ``found_version``;
        an upgrade is logged with what it took.
        """
        began = time.monotonic()
        try:
            with self._schema_lock(), self.engine.begin() as connection:
                version = self.found_version = self._version_on(connection)
                if version is not None and version > SCHEMA_VERSION:
                    raise StoreUnavailable(
                        f"the store at {self.url} has schema v{version}, newer than this jobd "
                        f"(v{SCHEMA_VERSION}); upgrade jobd"
                    )
                self.metadata.create_all(connection, checkfirst=True)
                if version is None:
                    connection.execute(
                        self.tables["meta"].insert().values(key="schema_version", value=str(SCHEMA_VERSION))
                    )
                elif version < SCHEMA_VERSION:
                    # Upgrade in place: create_all above added the new tables;
                    # the steps that change what exists run here, then the version.
                    upgrade(connection, self.tables, version)
                    meta = self.tables["meta"]
                    connection.execute(
                        meta.update().where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION))
                    )
        except sa.exc.OperationalError as error:
            raise StoreUnavailable(f"cannot reach the store at {self.url}: {error.orig}") from error
        if version is not None and version < SCHEMA_VERSION:
            log.info("store %s upgraded from schema v%s to v%s in %.1f s", self.url, version, SCHEMA_VERSION, time.monotonic() - began)
        return SCHEMA_VERSION

    @contextmanager
    def _schema_lock(self) -> Iterator[None]:
        """MySQL: one initialiser at a time, the next one starting only after the last one committed.

        Two masters starting together must not race on CREATE TABLE, nor both
        find no version and both insert it. The named lock is held on a
        connection of its own and released after the initialising
        transaction has committed: released inside it, as it once was, the
        next initialiser could read the version before that commit, find
        none, and fail on the duplicate row. SQLite's ``BEGIN IMMEDIATE``
        already serialises writers.
        """
        if self.engine.dialect.name != "mysql":
            yield
            return
        with self.engine.connect() as holder:
            holder.exec_driver_sql("SELECT GET_LOCK('jobd_schema', 30)")
            holder.commit()
            try:
                yield
            finally:
                holder.exec_driver_sql("SELECT RELEASE_LOCK('jobd_schema')")
                holder.commit()

    def _version_on(self, connection: sa.Connection) -> int | None:
        return StatusReads(rows_of(connection), self.engine.dialect.name).schema_version()

    def dispose(self) -> None:
        super().dispose()
        if not isinstance(self.runner, EngineRunner):  # the engine is this store's own, not the runner's
            from .cursor_sql import release_held

            release_held(self.engine)
            self.engine.dispose()
        if self.submit_engine is not None:
            from .cursor_sql import release_held

            release_held(self.submit_engine)
            self.submit_engine.dispose()


def open_store(url: str, *, checkpoint_on_commit: bool = True) -> Store:
    """The store at ``url``; see ``make_engine`` for ``checkpoint_on_commit`` (the master's is False)."""
    engine = make_engine(url, checkpoint_on_commit=checkpoint_on_commit)
    # MySQL: a submit's INSERT commits as it runs, one round trip less than
    # INSERT + COMMIT (no connection is made until a submit needs one).
    submit_engine = make_engine(url, autocommit=True) if engine.dialect.name == "mysql" else None
    return Store(engine, submit_engine=submit_engine)
