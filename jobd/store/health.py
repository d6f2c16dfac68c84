"""Whether the store answers, from the master's point of view, and a probe that says when it is back.

A master must stay in control while its store is down: its loop never waits
on a store it knows is unreachable. After a failure the store counts as
down; a background thread probes it every ``retry_interval`` seconds with
its own short-timeout connection, and the loop tries again only once a probe
answered (or, when no probe can tell, every ``retry_interval``). The first
store call that succeeds marks it up again. What the master could not write
meanwhile stays pending in its memory.

Which errors are outages is decided by ``store.errors.is_outage`` (a lost
or refused connection, a timeout, a locked or full SQLite file); the master
counts any store error that reaches its guard as one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


from .. import defaults
from .driver_sql import DriverTarget
from .errors import describe, is_outage

__all__ = ["StoreHealth", "Outage", "store_probe", "describe", "is_outage"]

log = logging.getLogger("jobd.store")


@dataclass
class Outage:
    since: float  # wall-clock time of the first failure
    since_monotonic: float
    error: str
    failures: int = 1


class StoreHealth:
    """The store's availability as this process sees it; thread-safe."""

    def __init__(
        self, probe: Callable[[], None] | None, *, retry_interval: float = defaults.STORE_RETRY_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.retry_interval = retry_interval
        self.clock = clock
        self.outage: Outage | None = None
        self.last_outage_seconds: float | None = None  # how long the last outage lasted
        self.recovered_at: float | None = None  # monotonic time the last outage ended
        self._lock = threading.Lock()
        self._answered = threading.Event()  # a probe reached the store since the last failure
        self._retry_at = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self.outage is None

    def may_try(self) -> bool:
        """Whether the loop may talk to the store now (always while it is up)."""
        if self.outage is None:
            return True
        if self.probe is not None:
            return self._answered.is_set()
        return self.clock() >= self._retry_at

    def failed(self, error: BaseException) -> bool:
        """A store call failed with ``error``; True if this starts an outage."""
        now = self.clock()
        with self._lock:
            self._answered.clear()
            self._retry_at = now + self.retry_interval
            if self.outage is not None:
                self.outage.error = describe(error)
                self.outage.failures += 1
                return False
            self.outage = Outage(since=time.time(), since_monotonic=now, error=describe(error))
        self._start_probing()
        return True

    def succeeded(self) -> Outage | None:
        """A store call succeeded; the outage it ends, if any."""
        if self.outage is None:
            return None
        with self._lock:
            ended, self.outage = self.outage, None
        if ended is not None:
            now = self.clock()
            self.last_outage_seconds = now - ended.since_monotonic
            self.recovered_at = now
        return ended

    def to_dict(self) -> dict[str, Any]:
        """For `jobd status --json`: ``{"available": bool, "since": epoch, "error": str}``."""
        outage = self.outage
        if outage is None:
            return {"available": True, "last_outage_seconds": self.last_outage_seconds}
        return {"available": False, "since": outage.since, "down_for": round(self.clock() - outage.since_monotonic, 1),
                "error": outage.error, "failures": outage.failures}

    def stop(self) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=defaults.STORE_PROBE_TIMEOUT_SECONDS * 3)

    # -- the probe thread --------------------------------------------------

    def _start_probing(self) -> None:
        if self.probe is None or self._stopping.is_set():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._probe_until_answered, name="jobd-store-probe", daemon=True)
            self._thread.start()

    def _probe_until_answered(self) -> None:
        assert self.probe is not None
        while not self._stopping.wait(self.retry_interval):
            if self.outage is None:
                return
            if self._answered.is_set():
                continue  # the loop is trying again; it reports the result
            try:
                self.probe()
            except Exception as error:  # noqa: BLE001 - any failure means "not yet"
                log.debug("store probe: still unavailable (%s)", error)
                continue
            self._answered.set()


def store_probe(target: DriverTarget) -> Callable[[], None]:
    """A quick check that ``target``'s database accepts a writer, on a connection of its own with short timeouts."""
    timeout = float(defaults.STORE_PROBE_TIMEOUT_SECONDS)
    if target.dialect == "sqlite":
        path = target.args[0] if target.args else ":memory:"

        def probe_sqlite() -> None:
            connection = sqlite3.connect(path, timeout=min(timeout, 0.5), isolation_level=None)
            try:
                connection.execute("BEGIN IMMEDIATE")  # the write lock: another process's EXCLUSIVE lock refuses it
                connection.execute("ROLLBACK")
            finally:
                connection.close()

        return probe_sqlite

    import pymysql

    # The store's own timeouts, each capped: a probe must answer quickly.
    arguments = {**target.kwargs}
    for name in ("connect_timeout", "read_timeout", "write_timeout"):
        arguments[name] = min(float(arguments.get(name, timeout)), timeout)

    def probe_mysql() -> None:
        connection = pymysql.connect(*target.args, **arguments)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            connection.close()

    return probe_mysql
