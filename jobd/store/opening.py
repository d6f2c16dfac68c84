"""Opening a store: its engines, its tables and the objects that run its operations."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .. import defaults
from ..errors import StoreUnavailable
from .bulk_insert import BulkJobInsert
from .batches import BatchBook, BatchCounters
from .desired_states import DesiredStates
from .cursor_sql import release_held
from .engine import READ_ONLY, make_engine, rows_of
from .job_logs import JobLogTable
from .jobs import JobQueue, NewJob
from .leases import Leases
from .masters import MasterRecord, MasterRegistry
from .schema import SCHEMA_VERSION, build_tables, upgrade
from .status_reads_sql import StatusReads
from .task_catalogue import TaskCatalogueTable

if TYPE_CHECKING:
    from .schedules import ScheduleBook

log = logging.getLogger("jobd.store")

class Store:
    """One store: its engine, tables, job queue and master registry."""

    def __init__(self, engine: sa.Engine, *, submit_engine: sa.Engine | None = None) -> None:
        self.engine = engine
        self.submit_engine = submit_engine
        self.found_version: int | None = None  # the schema version ``initialise`` found (None: none yet)
        self.metadata, self.tables = build_tables(engine.dialect.name)
        counters = BatchCounters()
        self.jobs = JobQueue(engine, self.tables["jobs"], submit_engine=submit_engine, batch_counters=counters)
        self.bulk_jobs = BulkJobInsert(engine)
        self.batches = BatchBook(engine, self.tables["batches"], self.tables["jobs"], counters)
        self.leases = Leases(engine)
        self.masters = MasterRegistry(engine)
        self.job_logs = JobLogTable(engine)
        self.daemon_states = DesiredStates(engine)
        self.task_catalogue = TaskCatalogueTable(engine)

    @cached_property
    def schedules(self) -> ScheduleBook:
        """Fire times and pauses of schedule entries.

        Built on first use: it brings the schedule engine (APScheduler's
        triggers), which the commands that only read or submit jobs never need.
        """
        from .schedules import ScheduleBook

        return ScheduleBook(self.engine)

    @property
    def jobs_per_write(self) -> int | None:
        """At most how many jobs one of the master's write transactions should touch; None: no bound.

        SQLite has one write lock for the whole file: every submit, and the
        master's claim for an urgent job, waits until the master's transaction
        ends, and a claim or an outcome burst of 256 jobs holds it for 10-15
        ms. On MariaDB writers lock rows, not the file, and fewer, larger
        commits are cheaper.
        """
        return defaults.SQLITE_JOBS_PER_WRITE if self.engine.dialect.name == "sqlite" else None

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

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

    def version(self) -> int | None:
        """The schema version in the store, or None if it was never initialised."""
        try:
            with self.engine.connect().execution_options(**READ_ONLY) as connection:
                return self._version_on(connection)
        except sa.exc.OperationalError as error:
            raise StoreUnavailable(f"cannot reach the store at {self.url}: {error.orig}") from None

    def _version_on(self, connection: sa.Connection) -> int | None:
        return StatusReads(rows_of(connection), self.engine.dialect.name).schema_version()

    def require_schema(self) -> None:
        """Raise ``StoreUnavailable`` unless the store is initialised at our version."""
        version = self.version()
        if version is None:
            raise StoreUnavailable(f"the store at {self.url} is not initialised; run `jobd init`")
        if version != SCHEMA_VERSION:
            raise StoreUnavailable(
                f"the store at {self.url} has schema v{version}, this jobd needs v{SCHEMA_VERSION}"
            )

    def dispose(self) -> None:
        for engine in (self.engine, self.submit_engine):
            if engine is not None:
                release_held(engine)
                engine.dispose()


def open_store(url: str, *, checkpoint_on_commit: bool = True) -> Store:
    """The store at ``url``; see ``make_engine`` for ``checkpoint_on_commit`` (the master's is False)."""
    engine = make_engine(url, checkpoint_on_commit=checkpoint_on_commit)
    # MySQL: a submit's INSERT commits as it runs, one round trip less than
    # INSERT + COMMIT (no connection is made until a submit needs one).
    submit_engine = make_engine(url, autocommit=True) if engine.dialect.name == "mysql" else None
    return Store(engine, submit_engine=submit_engine)
