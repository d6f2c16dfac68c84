"""Taking SQLite's write lock in short polls instead of through SQLite's busy handler.

SQLite has one write lock per database file. A writer that finds it taken
waits in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25 ms
between tries: a submit that found the lock taken five times in a row had
slept 33 ms, however soon after each try the holder let go. A busy
master's writes come as transactions of a few milliseconds with short
gaps between them (a claim, a burst of outcomes), so a writer that tries
again every fraction of a millisecond gets into the next gap. The busy
timeout still bounds the whole wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

FIRST_PAUSE_SECONDS = 0.0001
MAX_PAUSE_SECONDS = 0.001
SQLITE_BUSY = 5  # the result code of "database is locked"


def is_busy(error: BaseException) -> bool:
    """Whether a driver error says another connection holds the write lock."""
    return getattr(error, "sqlite_errorcode", None) == SQLITE_BUSY or "database is locked" in str(error)


def begin_immediate(
    cursor: Any,
    busy_timeout: float,
    driver_error: type[Exception],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """``BEGIN IMMEDIATE`` on ``cursor``: take the write lock, retrying for up to ``busy_timeout`` seconds.

    The connection's own busy timeout is off while it polls, and back as it was
    after (the other statements of jobd's SQLite connections keep it).
    """
    cursor.execute("PRAGMA busy_timeout=0")
    try:
        deadline = clock() + busy_timeout
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except driver_error as error:
                if not is_busy(error) or clock() >= deadline:
                    raise
            sleep(pause)
            pause = min(2 * pause, MAX_PAUSE_SECONDS)
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
