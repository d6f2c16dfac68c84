"""A worker's own statements on the store, through the database driver alone.

A worker touches the store for two things: saving a checkpoint (durable
when ``ctx.checkpoint`` returns) and checking that a submit's hand-off names
a job its master may run (``jobd.handoff``). For those two statements
it used to load SQLAlchemy — about 10 MB of every worker's own memory and a
tenth of a second of its start — while the task code rarely needs it.

Here they are written once in SQL with the driver's placeholders (never a
value pasted in), and run on a connection opened with exactly the arguments
SQLAlchemy would use: the master works them out from the store URL
(``engine.driver_target``) and hands them to the worker with its settings.
Each statement commits as it runs (SQLite: its own implicit transaction,
which takes the write lock at once like ``BEGIN IMMEDIATE``; MySQL:
autocommit), so a checkpoint is as durable as before when the call returns.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import defaults
from ..errors import StoreUnavailable
from ..states import JobState

#: A handed job is inserted on its first attempt (``NewJob.row`` with ``handed_to``).
HANDED_ATTEMPT = 1


@dataclass(frozen=True)
class DriverTarget:
    """How to open a DB-API connection to a store: plain data, picklable, no SQLAlchemy."""

    dialect: str  # "sqlite" or "mysql"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    setup: tuple[str, ...] = field(default=())  # statements run on every new connection (SQLite's pragmas)

    @property
    def driver_module(self) -> str:
        """The DB-API module this target connects with (a fork server preloads it for every worker)."""
        return "sqlite3" if self.dialect == "sqlite" else "pymysql"

    @property
    def placeholder(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    @property
    def busy_timeout(self) -> float:
        """SQLite: seconds a writer waits for another's lock (the URL's ``?timeout=``, else jobd's default)."""
        return float(self.kwargs.get("timeout", defaults.SQLITE_BUSY_TIMEOUT_SECONDS))

    @property
    def synchronous(self) -> str:
        """SQLite: when a commit reaches the disk (``sqlite_pragmas``), as the setup says; NORMAL if it does not."""
        return next((line.removeprefix(_SYNCHRONOUS) for line in self.setup if line.startswith(_SYNCHRONOUS)), "NORMAL")


#: Connections a forked child inherited from its parent: kept referenced, so that no
#: finalizer closes them under the parent (a MySQL QUIT on its socket, a SQLite file's locks).
_inherited: list[Any] = []


def leave_to_parent(held: Any) -> None:
    """In a forked child: never use nor close ``held`` (its parent's connection, or what holds it)."""
    _inherited.append(held)


def target_as_json(target: DriverTarget) -> dict[str, Any]:
    """``target`` as plain JSON data (a config digest's ``driver``, the store ``jobd start`` hands its master)."""
    return {"dialect": target.dialect, "args": list(target.args), "kwargs": target.kwargs, "setup": list(target.setup)}


def target_from_json(data: Any) -> DriverTarget:
    """The ``DriverTarget`` ``target_as_json`` wrote; ``ValueError`` if ``data`` is not of that shape."""
    try:
        return DriverTarget(
            str(data["dialect"]), tuple(data["args"]), dict(data["kwargs"]), tuple(str(line) for line in data["setup"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a store target: {error}") from None


def for_master(target: DriverTarget) -> DriverTarget:
    """``target`` as the master connects: SQLite commits never checkpoint the WAL (its thread does, ``checkpoints.py``)."""
    if target.dialect != "sqlite":
        return target
    pragmas = sqlite_pragmas(target.busy_timeout, checkpoint_on_commit=False, synchronous=target.synchronous)
    return DriverTarget(target.dialect, target.args, target.kwargs, pragmas)


def existing_target(driver: dict[str, Any] | None) -> DriverTarget | None:
    """A config digest's driver arguments (``jobd.config_digest``), or None where connecting is not
    the whole answer: none recorded, data not of this version's shape, a SQLite file that does not
    exist (connecting would create it). Such a command takes the full path, which reports the problem."""
    if driver is None:
        return None
    try:
        target = target_from_json(driver)
    except ValueError:
        return None
    if target.dialect == "sqlite":
        database = target.args[0] if target.args else None
        if not isinstance(database, str) or target.kwargs.get("uri") or not Path(database).is_file():
            return None
    elif target.dialect != "mysql":
        return None
    return target


_SYNCHRONOUS = "PRAGMA synchronous="


def sqlite_pragmas(busy_timeout_seconds: float, *, checkpoint_on_commit: bool = True, synchronous: str = "NORMAL") -> tuple[str, ...]:
    """The pragmas of every jobd SQLite connection (the engine's and a worker's alike).

    ``synchronous`` (the store URL's ``?synchronous=``): with NORMAL, the
    default, a commit is in the write-ahead log when it returns and survives
    the crash of any process; the log reaches the disk at each checkpoint, so
    a crash of the host (power loss, a kernel panic) may take back the last
    commits before it. With FULL every commit is flushed to the disk before
    it returns, and an acknowledged submit survives the host too: one fsync
    per commit.
    """
    pragmas = [
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}",
        f"{_SYNCHRONOUS}{synchronous}",
        "PRAGMA foreign_keys=ON",
        # The log file keeps its largest size: cut it back when it starts over (a full disk needs that space).
        f"PRAGMA journal_size_limit={defaults.WAL_TRUNCATE_ABOVE_BYTES}",
    ]
    if not checkpoint_on_commit:
        # The master's thread checkpoints (checkpoints.py); a commit checkpoints only as a safety
        # net, when the log is far past the size the thread keeps it under (a burst after an outage).
        pragmas.append(f"PRAGMA wal_autocheckpoint={defaults.WAL_AUTOCHECKPOINT_SAFETY_PAGES}")
    return tuple(pragmas)


def prepare_sqlite_connection(connection: Any, pragmas: tuple[str, ...]) -> None:
    """Take transaction control from the sqlite3 module, decode text leniently, apply ``pragmas``."""
    from .row_decoding import sqlite_text

    connection.isolation_level = None  # BEGIN is ours; a lone statement is its own transaction
    # Text that is not UTF-8 (an application's INSERT) is decoded, not an error that
    # aborts the whole read: store/row_decoding.py says what is wrong with such a row.
    connection.text_factory = sqlite_text
    cursor = connection.cursor()
    for pragma in pragmas:
        cursor.execute(pragma)
    cursor.close()


def open_connection(target: DriverTarget, driver: Any) -> Any:
    """A connection on which each statement commits as it runs (SQLite: its own transaction; MySQL: autocommit).

    ``driver`` is ``target``'s DB-API module; its ``Error`` is raised when the store cannot be reached.
    """
    if target.dialect == "sqlite":
        connection = driver.connect(*target.args, **target.kwargs)
        try:
            prepare_sqlite_connection(connection, target.setup)
        except BaseException:
            connection.close()
            raise
        return connection
    return driver.connect(*target.args, **target.kwargs, autocommit=True)


class WorkerStatements:
    """A checkpoint's UPDATE and a hand-off's guarded read, on one connection this worker keeps.

    The connection is opened on first use and reopened after any driver
    error (a lost MySQL connection, a SQLite file that went away). Calls from
    several threads of a task are serialised.
    """

    def __init__(self, target: DriverTarget) -> None:
        self.target = target
        jobs = f"{defaults.TABLE_PREFIX}jobs"
        mark = target.placeholder
        running = str(JobState.RUNNING)
        self._save_checkpoint = (
            f"UPDATE {jobs} SET checkpoint = {mark}, updated_at = {mark} "
            f"WHERE id = {mark} AND attempts = {mark} AND state = '{running}'"
        )
        self._handed = (
            f"SELECT id FROM {jobs} WHERE id = {mark} AND state = '{running}' "
            f"AND owner = {mark} AND attempts = {HANDED_ATTEMPT} AND daemon = {mark}"
        )
        self._lock = threading.Lock()
        self._connection: Any = None

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def connect(self) -> None:
        """Open the connection now (a worker does at start, so its first job waits less); StoreUnavailable if it cannot."""
        driver = self._driver()
        with self._lock:
            if self._connection is None:
                try:
                    self._connection = self._connect(driver)
                except driver.Error as error:
                    raise StoreUnavailable(f"cannot reach the store: {error}") from error

    def save_checkpoint(self, job_id: int, attempt: int, checkpoint_json: str, now: float) -> bool:
        """Write a running attempt's checkpoint; False if that attempt no longer runs."""
        cursor = self._execute(self._save_checkpoint, (checkpoint_json, now, job_id, attempt))
        return bool(cursor.rowcount)

    def handed_runnable(self, job_id: int, owner: str, daemon: str) -> bool:
        """True if the store holds ``job_id`` as ``owner``'s running first attempt for ``daemon``."""
        # fetchall: the statement must end here, or SQLite keeps a read transaction
        # open on this connection and WAL checkpoints cannot finish.
        return bool(self._execute(self._handed, (job_id, owner, daemon)).fetchall())

    def _execute(self, sql: str, parameters: tuple[Any, ...]) -> Any:
        driver = self._driver()
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._connect(driver)
                cursor = self._connection.cursor()
                cursor.execute(sql, parameters)
                return cursor
            except driver.Error as error:
                self.close()
                raise StoreUnavailable(f"the store did not answer a worker's statement: {error}") from error

    def _driver(self) -> Any:
        return importlib.import_module(self.target.driver_module)

    def _connect(self, driver: Any) -> Any:
        return open_connection(self.target, driver)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        close_quietly(connection)


def close_quietly(connection: Any) -> None:
    """Close a driver connection (if any) that may already be broken: nothing to report either way."""
    if connection is not None:
        try:
            connection.close()
        except Exception:
            pass
