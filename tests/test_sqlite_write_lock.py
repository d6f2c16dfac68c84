"""SQLite's write lock taken in short polls (``jobd.store.sqlite_write_lock``), on real SQLite files."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from jobd.store.sqlite_write_lock import MAX_PAUSE_SECONDS, begin_immediate


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, timeout=5.0, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    return connection


class Clock:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def test_a_writer_takes_the_lock_once_the_holder_commits_and_keeps_its_busy_timeout(tmp_path: Path) -> None:
    holder, writer = connect(tmp_path / "db"), connect(tmp_path / "db")
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.05, holder.execute, ("COMMIT",))
    released.start()
    try:
        begin_immediate(writer.cursor(), 5.0, sqlite3.Error)  # waits for the holder, then holds the lock
        writer.execute("INSERT INTO t VALUES (1)")
        writer.execute("COMMIT")
    finally:
        released.join()
    assert writer.execute("PRAGMA busy_timeout").fetchone() == (5000,)
    assert writer.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_the_polls_start_short_grow_to_a_millisecond_and_end_at_the_busy_timeout(tmp_path: Path) -> None:
    holder, writer = connect(tmp_path / "db"), connect(tmp_path / "db")
    holder.execute("BEGIN IMMEDIATE")
    clock = Clock()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(writer.cursor(), 0.02, sqlite3.Error, clock=clock, sleep=clock.sleep)
    assert clock.pauses[0] < 0.001 and max(clock.pauses) == MAX_PAUSE_SECONDS
    assert sum(clock.pauses) >= 0.02 and writer.execute("PRAGMA busy_timeout").fetchone() == (20,)
    holder.execute("ROLLBACK")


def test_an_error_other_than_a_held_lock_is_raised_at_once(tmp_path: Path) -> None:
    writer = connect(tmp_path / "db")
    writer.execute("BEGIN")  # a transaction already open: BEGIN IMMEDIATE is refused, not busy
    clock = Clock()
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        begin_immediate(writer.cursor(), 5.0, sqlite3.Error, clock=clock, sleep=clock.sleep)
    assert clock.pauses == []
