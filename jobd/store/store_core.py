"""One store's tables on a runner: everything a master does to its store, with no SQLAlchemy loaded.

``open_store`` (``opening.py``) builds the whole ``Store`` on SQLAlchemy's
engine, for the processes that also submit, act on jobs or create the
schema. A master is handed the driver's connection arguments by ``jobd
start`` and opens a ``StoreCore`` on them (``open_driver_store``): the same
table classes running the same driver SQL, through ``DriverRunner``.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from .. import defaults
from ..defaults import STORE_SCHEMA_VERSION as SCHEMA_VERSION
from ..errors import StoreUnavailable
from .batch_shelf import BatchShelf
from .desired_states import DesiredStates
from .driver_runner import DriverRunner
from .driver_sql import DriverTarget
from .errors import StoreFault
from .job_logs import JobLogTable
from .jobs import JobQueue
from .leases import Leases
from .masters import MasterRegistry
from .sql_runner import SqlRunner
from .status_reads_sql import StatusReads
from .task_catalogue import TaskCatalogueTable

if TYPE_CHECKING:
    from .schedules import ScheduleBook


class StoreCore:
    """One store: its runner, job queue, master registry and the other tables a master writes."""

    def __init__(self, runner: SqlRunner, *, jobs: JobQueue | None = None, batches: BatchShelf | None = None) -> None:
        self.runner = runner
        self.jobs = jobs or JobQueue(runner)
        self.batches = batches or BatchShelf(runner)
        self.leases = Leases(runner)
        self.masters = MasterRegistry(runner)
        self.job_logs = JobLogTable(runner)
        self.daemon_states = DesiredStates(runner)
        self.task_catalogue = TaskCatalogueTable(runner)

    @cached_property
    def schedules(self) -> ScheduleBook:
        """Fire times and pauses of schedule entries.

        Built on first use: it brings the schedule engine (APScheduler's
        triggers), which the commands that only read or submit jobs never need.
        """
        from .schedules import ScheduleBook

        return ScheduleBook(self.runner)

    @property
    def dialect(self) -> str:
        return self.runner.dialect

    @property
    def url(self) -> str:
        return self.runner.url

    @property
    def jobs_per_write(self) -> int | None:
        """At most how many jobs one of the master's write transactions should touch; None: no bound.

        SQLite has one write lock for the whole file: every submit, and the
        master's claim for an urgent job, waits until the master's transaction
        ends, and a claim or an outcome burst of 256 jobs holds it for 10-15
        ms. On MariaDB writers lock rows, not the file, and fewer, larger
        commits are cheaper.
        """
        return defaults.SQLITE_JOBS_PER_WRITE if self.dialect == "sqlite" else None

    def version(self) -> int | None:
        """The schema version in the store, or None if it was never initialised."""
        try:
            with self.runner.read() as sql:
                return StatusReads(sql.rows, self.dialect).schema_version()
        except StoreFault as error:  # chained: an outage is retried at a master's start (``retry.passing``)
            raise StoreUnavailable(f"cannot reach the store at {self.url}: {error.orig}") from error

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
        self.runner.dispose()


def open_driver_store(target: DriverTarget, url: str) -> StoreCore:
    """The store ``target`` connects to (``engine.driver_target``), through the driver alone; ``url`` is shown to operators."""
    return StoreCore(DriverRunner(target, url))
