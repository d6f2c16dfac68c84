"""SQLite's write lock waited for in short polls (``jobd.store.sqlite_write_lock``), on real SQLite files."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from jobd.store import NewJob, open_store
from jobd.store.sqlite_write_lock import MAX_PAUSE_SECONDS, NO_WAIT, retry_while_locked


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


def test_a_writer_takes_the_lock_once_the_holder_commits(tmp_path: Path) -> None:
    holder, writer = connect(tmp_path / "db"), connect(tmp_path / "db")
    writer.execute(NO_WAIT)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Timer(0.05, holder.execute, ("COMMIT",))
    released.start()
    try:
        retry_while_locked(lambda: writer.execute("INSERT INTO t VALUES (1)"), 5.0, sqlite3.Error)
    finally:
        released.join()
    assert writer.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_the_polls_start_short_grow_to_a_millisecond_and_end_at_the_busy_timeout(tmp_path: Path) -> None:
    holder, writer = connect(tmp_path / "db"), connect(tmp_path / "db")
    writer.execute(NO_WAIT)
    holder.execute("BEGIN IMMEDIATE")
    clock = Clock()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        retry_while_locked(lambda: writer.execute("BEGIN IMMEDIATE"), 0.02, sqlite3.Error, clock=clock, sleep=clock.sleep)
    assert clock.pauses[0] < 0.001 and max(clock.pauses) == MAX_PAUSE_SECONDS and sum(clock.pauses) >= 0.02
    holder.execute("ROLLBACK")


def test_an_error_other_than_a_held_lock_is_raised_at_once(tmp_path: Path) -> None:
    writer = connect(tmp_path / "db")
    writer.execute("BEGIN")  # a transaction already open: BEGIN IMMEDIATE is refused, not busy
    clock = Clock()
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        retry_while_locked(lambda: writer.execute("BEGIN IMMEDIATE"), 5.0, sqlite3.Error, clock=clock, sleep=clock.sleep)
    assert clock.pauses == []


def test_a_submit_waits_out_another_writer_and_the_store_keeps_its_busy_timeout(tmp_path: Path) -> None:
    """The submit's connection polls; the connections SQLAlchemy hands out still wait in SQLite."""
    store = open_store(f"sqlite:///{tmp_path / 'jobd.db'}")
    try:
        store.initialise()
        holder = sqlite3.connect(tmp_path / "jobd.db", isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        released = threading.Timer(0.05, holder.execute, ("COMMIT",))
        released.start()
        try:
            job_id = store.jobs.insert(NewJob("main", "t.work", {}))
        finally:
            released.join()
        assert store.jobs.get(job_id).task == "t.work"
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        store.dispose()
