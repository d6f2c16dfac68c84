"""Waiting for SQLite's write lock in short polls instead of in SQLite's busy handler.

SQLite has one write lock per database file. A writer that finds it taken
waits in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25 ms
between tries: a submit that found the lock taken five times in a row had
slept 33 ms, however soon after each try the holder let go. A busy
master's writes come as transactions of a few milliseconds with short
gaps between them (a claim, a burst of outcomes), so a writer that tries
again every fraction of a millisecond gets into the next gap.

The connection that runs the submit's and the claim's statements
(``cursor_sql``) has SQLite's busy timeout switched off (``NO_WAIT``) and
retries here instead; the busy timeout still bounds the whole wait. Only
a statement that takes a lock as it starts is retried: ``BEGIN
IMMEDIATE``, or a statement outside a transaction, which is its own
transaction and did nothing when SQLite answered "busy".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

FIRST_PAUSE_SECONDS = 0.0001
MAX_PAUSE_SECONDS = 0.001
SQLITE_BUSY = 5  # the result code of "database is locked"
NO_WAIT = "PRAGMA busy_timeout=0"

T = TypeVar("T")


def is_busy(error: BaseException) -> bool:
    """Whether a driver error says another connection holds the lock."""
    return getattr(error, "sqlite_errorcode", None) == SQLITE_BUSY or "database is locked" in str(error)


def wait_in_sqlite(busy_timeout: float) -> str:
    """The pragma that gives a connection its busy timeout back (SQLite waits again)."""
    return f"PRAGMA busy_timeout={int(busy_timeout * 1000)}"


def retry_while_locked(
    run: Callable[[], T],
    busy_timeout: float,
    driver_error: type[Exception],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``run()``, tried again every 0.1-1 ms while SQLite answers "busy", for up to ``busy_timeout`` seconds."""
    deadline: float | None = None
    pause = FIRST_PAUSE_SECONDS
    while True:
        try:
            return run()
        except driver_error as error:
            if not is_busy(error):
                raise
            now = clock()
            deadline = now + busy_timeout if deadline is None else deadline
            if now >= deadline:
                raise
        sleep(pause)
        pause = min(2 * pause, MAX_PAUSE_SECONDS)
