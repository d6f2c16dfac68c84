"""SQLite's WAL is checkpointed by the master's thread, never inside the master's commits."""

from __future__ import annotations

from pathlib import Path

from jobd import defaults
from jobd.store import NewJob, Store, open_store
from jobd.store.checkpoints import WalCheckpointer
from jobd.store.driver_sql import DriverTarget, for_master
from jobd.store.engine import driver_target
from support import wait_until


def masters_target(store: Store) -> DriverTarget:
    """How a master connects to ``store`` (what ``jobd start`` hands it)."""
    return for_master(driver_target(store.engine.url.render_as_string(hide_password=False)))


def autocheckpoint(store: Store) -> int:
    with store.engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_the_masters_sqlite_connections_checkpoint_on_commit_only_far_past_the_threads_limit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobd.db'}"
    master_side, application_side = open_store(url, checkpoint_on_commit=False), open_store(url)
    try:
        # Past 2 MB the master's commits copy the log back themselves (between the thread's checkpoints under
        # heavy load), well before it reaches the size at which the thread truncates it, holding writers off.
        assert autocheckpoint(master_side) == defaults.WAL_AUTOCHECKPOINT_SAFETY_PAGES
        assert defaults.WAL_AUTOCHECKPOINT_SAFETY_PAGES * 4096 * 4 < defaults.WAL_TRUNCATE_ABOVE_BYTES
        assert autocheckpoint(application_side) == 1000  # SQLite's default: it checkpoints while no master runs
    finally:
        master_side.dispose()
        application_side.dispose()


def test_a_nudge_makes_the_thread_copy_the_log_back_into_the_database_file(tmp_path: Path) -> None:
    database = tmp_path / "jobd.db"
    store = open_store(f"sqlite:///{database}", checkpoint_on_commit=False)
    store.initialise()
    checkpointer = WalCheckpointer(masters_target(store), interval=3600)  # only the first nudge counts within the test
    checkpointer.start()
    try:
        store.jobs.insert_many([NewJob("main", "t.record", {"n": n, "pad": "x" * 500}) for n in range(500)])
        in_log_only = database.stat().st_size
        assert Path(f"{database}-wal").stat().st_size > 100_000  # the rows are in the log, not the file
        checkpointer.nudge()
        wait_until(lambda: database.stat().st_size > in_log_only + 100_000, timeout=10, message="the rows copied back")
        # The file grows during the checkpoint; the thread counts it once the call returns.
        wait_until(lambda: checkpointer.checkpoints >= 1, timeout=10, message="the checkpoint counted")
        assert checkpointer.checkpoints == 1
    finally:
        checkpointer.stop()
        store.dispose()


def test_without_nudges_the_thread_still_checkpoints_and_stops_cleanly(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'jobd.db'}", checkpoint_on_commit=False)
    store.initialise()
    checkpointer = WalCheckpointer(masters_target(store), interval=0.01)
    checkpointer.start()
    try:
        wait_until(lambda: checkpointer.checkpoints >= 2, timeout=10, message="periodic checkpoints")
    finally:
        checkpointer.stop()
        store.dispose()


def test_a_mysql_store_needs_no_checkpointer(mariadb_url: str) -> None:
    store = open_store(mariadb_url, checkpoint_on_commit=False)
    checkpointer = WalCheckpointer(masters_target(store), interval=0.01)
    checkpointer.start()  # does nothing
    checkpointer.stop()
    assert not checkpointer.needed and checkpointer.checkpoints == 0
    store.dispose()


def test_a_log_over_the_limit_or_after_a_failure_is_truncated_to_give_its_space_back(tmp_path: Path) -> None:
    database = tmp_path / "jobd.db"
    wal = Path(f"{database}-wal")
    store = open_store(f"sqlite:///{database}", checkpoint_on_commit=False)
    store.initialise()
    checkpointer = WalCheckpointer(masters_target(store), interval=3600, truncate_above=1024 * 1024)
    try:
        store.jobs.insert_many([NewJob("main", "t.record", {"n": n, "pad": "x" * 500}) for n in range(3000)])
        assert wal.stat().st_size > checkpointer.truncate_above
        checkpointer.checkpoint()
        assert wal.stat().st_size == 0 and checkpointer.truncations == 1
        store.jobs.insert_many([NewJob("main", "t.record", {"n": 1})])
        checkpointer.checkpoint()  # a small log: a PASSIVE checkpoint leaves the file as it is
        assert wal.stat().st_size > 0 and checkpointer.truncations == 1
        checkpointer.reclaim()  # the store failed (a full disk, say): the next one truncates
        checkpointer.checkpoint()
        assert wal.stat().st_size == 0 and checkpointer.truncations == 2
    finally:
        store.dispose()
