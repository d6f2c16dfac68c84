"""SQLite's WAL checkpoints, run by a thread of the master instead of inside commits.

In WAL mode SQLite copies the log back into the database file (a
checkpoint, with its fsyncs) as part of whichever commit finds the log over
1,000 pages: several milliseconds added to the submit or the claim that
happens to cross the line, which made the slowest percent of jobs start
several times later than the rest. The master's connections never
checkpoint on commit (``open_store(url, checkpoint_on_commit=False)``);
this thread runs PASSIVE checkpoints instead: they take no lock writers
wait for, and SQLite releases the GIL meanwhile, so the master loop goes on.
The master ``nudge``s the thread when it has just handed a job over (then
nobody is likely to be waiting for the disk) or written outcomes (the log
grew), and it checkpoints at most
every ``interval`` seconds, at least every ``4 * interval`` seconds. Checkpointing often keeps the log far below the
limit at which other processes' commits (submitters, the CLI, which keep
SQLite's default) would checkpoint; while no master runs, they still do.
A MySQL store needs none of this: the thread does not start.

A full disk: the log file keeps its largest size (SQLite reuses it rather
than shrink it), and a checkpoint must grow the database file by the pages
it copies. On a volume with little room the log can hold all of it, so every
checkpoint fails and every commit too, for good, even after the space that
ran out is back. So after a failed checkpoint (or when the master says the
store failed, ``reclaim``) the thread runs TRUNCATE checkpoints, which copy
the whole log and cut the file to zero bytes, giving its space back, until
one succeeds. They wait for readers a fraction of a second at most
(``TRUNCATE_BUSY_TIMEOUT_MS``): writers are blocked meanwhile.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

from typing import Any

from .. import defaults
from .driver_sql import DriverTarget, close_quietly, open_connection
from .sqlite_write_lock import wait_in_sqlite

log = logging.getLogger("jobd.store")

WARN_EVERY_SECONDS = 300.0
TRUNCATE_BUSY_TIMEOUT_MS = 200


class WalCheckpointer:
    def __init__(self, target: DriverTarget, interval: float, truncate_above: int = defaults.WAL_TRUNCATE_ABOVE_BYTES) -> None:
        """``target``: the store, as the master connects to it (``driver_sql.for_master``)."""
        self.target = target
        self._connection: Any = None  # the thread's own, opened on first use
        self.interval = interval
        self.truncate_above = truncate_above
        self.checkpoints = 0
        self._stopping = threading.Event()
        self._nudged = threading.Event()
        self._last = float("-inf")
        self._thread: threading.Thread | None = None
        self._warned_at = float("-inf")
        self._reclaim = threading.Event()  # the next checkpoint truncates the log (see the module's docstring)
        self.truncations = 0

    @property
    def needed(self) -> bool:
        return self.target.dialect == "sqlite"

    def start(self) -> None:
        if not self.needed or self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="jobd-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after one last checkpoint, so a clean stop leaves a short log)."""
        if self._thread is None:
            return
        self._stopping.set()
        self._nudged.set()
        self._thread.join(timeout=30)
        self._thread = None
        self._checkpoint_logged()
        self.close()

    def nudge(self) -> None:
        """A good moment for a checkpoint (the master just handed a job over); never blocks."""
        if time.monotonic() - self._last >= self.interval:  # else the thread would only go back to sleep
            self._nudged.set()

    def reclaim(self) -> None:
        """The store failed (perhaps a full disk): truncate the log at the next checkpoint, soon; never blocks."""
        if self.needed and not self._reclaim.is_set():
            self._reclaim.set()
            self._nudged.set()

    def _wal_bytes(self) -> int:
        path = self.target.args[0] if self.target.args else None
        try:
            return os.path.getsize(f"{path}-wal") if path else 0
        except OSError:
            return 0

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint (copy what no reader still needs; wait for nobody), or a TRUNCATE one to reclaim space.

        A log over ``truncate_above`` bytes is truncated too: SQLite
        starts the log over only when a writer finds it fully copied and no
        reader in it, which a busy master may rarely offer; meanwhile the
        file keeps growing, and keeps its largest size for good.
        """
        truncate = self._reclaim.is_set() or self._wal_bytes() > self.truncate_above
        if self._connection is None:
            self._connection = open_connection(self.target, sqlite3)  # outside any transaction: a checkpoint cannot run inside one
        try:
            cursor = self._connection.cursor()
            try:
                if truncate:
                    cursor.execute(f"PRAGMA busy_timeout={TRUNCATE_BUSY_TIMEOUT_MS}")
                    try:
                        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                        busy = cursor.fetchall()[0][0]
                    finally:
                        cursor.execute(wait_in_sqlite(self.target.busy_timeout))
                    if not busy:
                        if self._reclaim.is_set():
                            log.info("WAL checkpoint: the log was copied back and truncated (its space is free again)")
                        self._reclaim.clear()
                        self.truncations += 1
                else:
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    cursor.fetchall()
            finally:
                cursor.close()
        except Exception:
            self.close()  # opened again for the next checkpoint (a file replaced, a broken connection)
            raise
        self.checkpoints += 1

    def close(self) -> None:
        connection, self._connection = self._connection, None
        close_quietly(connection)

    def _run(self) -> None:
        while True:
            nudged = self._nudged.wait(4 * self.interval)
            if self._stopping.is_set():
                return
            self._nudged.clear()
            if nudged and time.monotonic() - self._last < self.interval:
                continue  # too soon after the last one: wait for a later nudge
            self._last = time.monotonic()
            self._checkpoint_logged()

    def _checkpoint_logged(self) -> None:
        try:
            self.checkpoint()
        except Exception as error:  # never let the thread die: the log would grow without end
            self._reclaim.set()  # a full disk fails checkpoints for good unless the log's own space comes back
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = now
                log.warning("WAL checkpoint failed (%s); retrying every %.1fs", error, self.interval)
