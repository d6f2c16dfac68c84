"""A submit through the database driver alone, when nothing about it needs more: `jobd trigger`, ``jobd.submit``
and ``jobd.submit_many``.

The full submit (``jobd.api.submit``'s own path) validates the config's
models, loads SQLAlchemy, reads the task catalogue, inserts the job and wakes
the master. An application that submits carried all of that in every
process that ever submitted — 36 MiB and 0.3 s for its first submit — and a
`jobd trigger` spent most of its run loading it, for one SELECT and one
INSERT. Here the config's validated settings come from its digest
(``jobd.config_digest``: the store's driver arguments among them), the task
catalogue and the INSERT go through the driver (``store.driver_submit``),
and the same checks refuse the same intents with the same words: an unknown
task or bad args (``catalogue_check``: the catalogue held and read again as
a full submit does), args that are not JSON or too large (``NewJob.row``).
Before any catalogue was published for the daemon (no master has started on
the store, and `jobd check` has not run), its task code is imported here and
checked, as the full submit would: the digest says where it is.
The job is committed before its id is returned, then the master is woken as
by the full submit. When the local master offers to take the daemon's jobs
straight (``jobd.handoff``), the job is inserted claimed for it and handed to
one of its idle workers, as the full submit does: the same row, the same
datagram, and the same way back to the queue if nobody takes it.

A ``DriverSubmitter`` serves one process: each thread submits on a
connection of its own, kept open between submits (and opened again once it
is ten minutes old), and a forked child opens its own instead of touching
its parent's. A bulk (``submit_many``) is checked item by item against the
catalogue and written in one transaction by ``store.bulk_sql``.

``DriverSubmitter.submit`` returns None, having written nothing, whenever
the full submit has more to do or more to say, and the caller then takes it:

* a daemon the config does not name (``UnknownDaemon``, named by the full path);
* args that are not a JSON object (``InvalidArgs``, worded by the full path);
* no catalogue published for the daemon, and a task its code does not
  define (a shell task, the migration task, an unknown name: the full path
  knows them from the config, or names the known ones), or task code that
  fails to import (the full path reports it); a row that is not a catalogue;
* a store not reached, not initialised (a SQLite file that does not exist
  is never created here), or an INSERT refused (nothing written: the full
  path tries again and reports what the store says);
* options the full submit alone handles (``reuse_cached``, a caller's
  ``connection``) are never brought here.

One case cannot be handed over: a MySQL connection lost during the INSERT
may have committed it, so trying again could submit the job twice. That is
reported as the full submit reports it (``StoreUnavailable``, "the job was
not submitted", as likely true there as here).
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Sequence
from sqlite3 import SQLITE_LIMIT_VARIABLE_NUMBER
from typing import TYPE_CHECKING, Any

from ..bulk import check_items, check_unique_keys
from ..catalogue_check import CatalogueCache, check_intent, require_object
from ..config_digest import ConfigDigest
from ..errors import ConfigError, StoreUnavailable
from ..handoff.submit_side import announce, hand_off, offer_for
from ..job import Job
from ..store.bulk_sql import BulkInsertSql, BulkJobs, CursorExecutor, Inserted
from ..store.catalogue_row import CatalogueRow
from ..store.driver_submit import SubmitStatements
from ..store.driver_sql import DriverTarget, existing_target, leave_to_parent
from ..store.new_job import NewJob
from ..store.row_decoding import decode_found
from ..workers.protocol import HandedJob

if TYPE_CHECKING:
    from ..tasks import TaskDefinition

#: How a schedule names its shell entries' tasks (``jobd.schedules.entry.SHELL_TASK_PREFIX``; a test holds them equal).
SCHEDULE_SHELL_PREFIX = "shell:"

class _FullPath(Exception):
    """The catalogue could not be read for a reason the full submit reports better (no table, say)."""


class DriverSubmitter:
    """One process's submits to the store a config digest names, through the driver alone."""

    def __init__(self, digest: ConfigDigest, target: DriverTarget) -> None:
        self.digest = digest
        self.target = target
        self.driver: Any = importlib.import_module(target.driver_module)
        self._catalogues = CatalogueCache(self._read_catalogue)
        self._bulk_sql = BulkInsertSql(target.dialect, returning=None if target.dialect == "mysql" else True)
        self._local = threading.local()
        self._pid = os.getpid()
        self._task_code: dict[str, dict[str, TaskDefinition] | None] = {}  # daemon → its imported tasks (None: failed)

    @classmethod
    def of(cls, digest: ConfigDigest) -> DriverSubmitter | None:
        """A submitter for ``digest``'s store; None when the driver cannot be the whole answer (``existing_target``)."""
        target = existing_target(digest.driver)
        return None if target is None else cls(digest, target)

    def submit(
        self, daemon: str, task: str, args: Any, *,
        run_at: float | None = None, priority: int = 0, max_attempts: int | None = None, unique_key: str | None = None,
    ) -> int | None:
        """The id of the committed job; None when the full submit must run instead (nothing was written).

        With ``unique_key``, the id of the unfinished job that holds the key
        if there is one (nothing is written then). ``UnknownTask`` and
        ``InvalidArgs`` as from ``jobd.api.submit``.
        """
        if daemon not in self.digest.daemons or not isinstance(args, dict):
            return None
        try:
            if not self._checked(daemon, task, args):
                return None
        except _FullPath:
            return None
        digest = self.digest
        due_now = run_at is None or run_at <= time.time()
        offer = offer_for(digest.socket, daemon) if digest.handoff and due_now and unique_key is None else None
        new_job = NewJob(
            daemon=daemon, task=task, args=args, priority=priority, run_at=run_at, max_attempts=max_attempts,
            unique_key=unique_key, handed_to=offer.master if offer is not None else None,
        )
        values = new_job.row(time.time())
        statements = self._statements()
        try:
            if unique_key is None:
                job_id = statements.insert(values)
            else:
                job_id, inserted = statements.insert_unique(values)
                if not inserted:
                    return job_id  # an unfinished job holds the key: nothing new to wake the master for
        except self.driver.Error as error:
            statements.close()  # reopened by the next statement
            if not self._maybe_committed(error):
                return None
            raise _not_submitted(digest.store, error) from None
        if offer is not None:
            handed = HandedJob(daemon, job_id, priority, max_attempts, task, new_job.encoded_args)
            hand_off(digest.socket, offer, handed, statements.requeue_handed, (self.driver.Error,))
        else:
            announce(digest.socket, daemon, priority)  # the master claims it now (past its prefetch if it is urgent)
        return job_id

    def submit_many(
        self, daemon: str, task: str, items: list[Any], *, priority: int, run_at: float | None,
        unique_keys: Sequence[str | None] | None, max_attempts: int | None,
    ) -> tuple[Inserted, list[str | None] | None] | None:
        """``jobd.submit_many`` through the driver: what was inserted and the checked keys; None when the full
        bulk submit must run instead (nothing was written). ``InvalidArgs`` and ``UnknownTask`` as from it."""
        if daemon not in self.digest.daemons:
            return None

        def validate(args: Any) -> None:
            require_object(args)
            if not self._checked(daemon, task, args):
                raise _FullPath

        try:
            encoded = check_items(validate, task, items)
        except _FullPath:
            return None
        keys = check_unique_keys(unique_keys, len(items))
        if not items:
            return Inserted([], {}, {}), keys
        bulk = BulkJobs(daemon, task, encoded, keys, priority=priority, run_at=run_at, max_attempts=max_attempts)
        statements = self._statements()
        try:
            with statements.transaction() as cursor:
                limit = statements.connection.getlimit(SQLITE_LIMIT_VARIABLE_NUMBER) if self.target.dialect == "sqlite" else None
                inserted = self._bulk_sql.insert(bulk, time.time(), CursorExecutor(cursor), variable_limit=limit)
        except self.driver.Error as error:
            statements.close()
            if not self._maybe_committed(error):
                return None  # rolled back: the full path tries again and reports what the store says
            raise _not_submitted(self.digest.store, error, what="no job was submitted") from None
        announce(self.digest.socket, daemon, priority)  # once for the whole bulk: the master claims them in its own batches
        return inserted, keys

    def job(self, job_id: int) -> Job | None:
        """Job ``job_id`` as ``jobd.get_job`` returns it (``UnknownJob`` if there is none); None when the
        driver failed the read: the full path reads again and reports what the store says."""
        statements = self._statements()
        try:
            row = statements.job_row(job_id)
        except self.driver.Error:
            statements.close()
            return None
        return decode_found(row, job_id)

    def close(self) -> None:
        """Close this thread's connection (a one-shot command's, before it exits)."""
        statements = getattr(self._local, "statements", None)
        if statements is not None and self._pid == os.getpid():
            statements.close()

    def _statements(self) -> SubmitStatements:
        """This thread's statements, on a connection of its own (opened on first use)."""
        if self._pid != os.getpid():  # a forked child: its parent's connections are neither used nor closed here
            leave_to_parent(self._local)
            self._local, self._pid = threading.local(), os.getpid()
        statements: SubmitStatements | None = getattr(self._local, "statements", None)
        if statements is None:
            statements = self._local.statements = SubmitStatements(self.target)
        return statements

    def _checked(self, daemon: str, task: str, args: dict[str, Any]) -> bool:
        """Check an intent against the daemon's published catalogue or, before one is, against its task code
        imported here, as the full submit does; False when only the full submit can decide."""
        if check_intent(self._catalogues, daemon, task, args):
            return True
        definition = self._imported_tasks(daemon).get(task)
        code = self.digest.task_code.get(daemon)
        if definition is None or code is None or task in code.elsewhere or task.startswith(SCHEDULE_SHELL_PREFIX):
            return False  # unknown here, or a task the config defines: the full submit names it, or knows it
        definition.check_args(args)  # InvalidArgs, in the full submit's words
        return True

    def _imported_tasks(self, daemon: str) -> dict[str, TaskDefinition]:
        """The Python tasks of ``daemon``'s modules and task paths, imported once (none if they fail to:
        the full submit reports that)."""
        if daemon not in self._task_code:
            code = self.digest.task_code.get(daemon)
            tasks = None
            if code is not None:
                from ..task_code import add_python_path, import_tasks  # only before a catalogue is published

                add_python_path(self.digest.python_path)
                try:
                    tasks = import_tasks(str(self.digest.source), daemon, code.modules, code.tasks)
                except ConfigError:
                    tasks = None
            self._task_code[daemon] = tasks
        return self._task_code[daemon] or {}

    def _read_catalogue(self) -> list[CatalogueRow]:
        statements = self._statements()
        try:
            return statements.catalogue_rows()
        except self.driver.Error as error:
            statements.close()
            if _out_of_reach(error):  # the full submit would wait as long again, and fail the same way
                raise _not_submitted(self.digest.store, error) from None
            raise _FullPath from None  # no catalogue table (an older schema): the full submit says what is wrong

    def _maybe_committed(self, error: BaseException) -> bool:
        """Whether a failed INSERT may have been committed all the same (a MySQL connection lost mid-way).

        A SQLite statement that fails wrote nothing, and neither did a MySQL
        statement the server refused (its data, its table).
        """
        if self.target.dialect == "sqlite":
            return False
        from ..store.errors import is_outage

        return is_outage(error)


def submit_quickly(
    digest: ConfigDigest, daemon: str, task: str, args: dict[str, Any], *, run_at: float | None = None, priority: int = 0,
    unique_key: str | None = None,
) -> int | None:
    """`jobd trigger`'s one submit through the driver (``DriverSubmitter.submit``); None: the full submit must run."""
    submitter = DriverSubmitter.of(digest)
    if submitter is None:
        return None
    try:
        return submitter.submit(daemon, task, args, run_at=run_at, priority=priority, unique_key=unique_key)
    finally:
        submitter.close()


def _out_of_reach(error: BaseException) -> bool:
    """Whether the store could not be reached (a read timeout, a refused connection), not a missing table."""
    from ..store.errors import is_outage

    return is_outage(error) and "no such table" not in str(error)


def _not_submitted(url: str, error: BaseException, *, what: str = "the job was not submitted") -> StoreUnavailable:
    """The full submit's words for a store that failed the INSERT (``jobd.api.submit``, ``jobd.submit_many``)."""
    import sqlalchemy as sa

    from ..store.errors import describe

    shown = sa.make_url(url).render_as_string(hide_password=True)
    return StoreUnavailable(f"{what}: the store at {shown} is unavailable ({describe(error)}); try again later")
