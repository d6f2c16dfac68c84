"""An upgrade killed half way (the OOM killer, `kill -9 PID` of `jobd init`) leaves the store as it was.

Store v8 rebuilds SQLite's jobs table in one transaction. Killed while the
rows are being copied, the process leaves an uncommitted transaction in the
write-ahead log, which SQLite discards: the store is still v7, every job is
there, the key is still unique, and the next `jobd init` upgrades it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from jobd.store import NewJob, Store, open_store
from support import Deployment, wait_until

from .rows_sql import downgrade_keys_to_v7

JOBS = 200_000


def test_a_jobd_init_killed_during_the_rebuild_leaves_the_v7_store_whole_and_the_next_one_upgrades_it(
    tmp_path: Path,
) -> None:
    deployment = Deployment(tmp_path, f"sqlite:///{tmp_path / 'jobd.db'}")
    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init", check=True)
    store = deployment.store
    keyed = store.jobs.insert(_keyed())
    with store.engine.begin() as connection:  # many finished jobs: a rebuild that takes a while
        connection.exec_driver_sql(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {JOBS}) "
            "INSERT INTO jobd_jobs (daemon, task, args, state, finished_at) SELECT 'main', 't.record', '{}', 'succeeded', i FROM n"
        )
    downgrade_keys_to_v7(store)
    store.dispose()
    wal = tmp_path / "jobd.db-wal"
    logged_before = wal.stat().st_size if wal.exists() else 0

    init = subprocess.Popen(
        [sys.executable, "-m", "jobd.cli.app", "init"], env=deployment.env(), cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        # Uncommitted pages reach the log while the rows are copied: the rebuild is under way.
        wait_until(lambda: init.poll() is not None or (wal.exists() and wal.stat().st_size > logged_before + 4 * 2**20),
                   timeout=60, message="the rebuild to write to the log")
        assert init.poll() is None, "the upgrade finished before it could be killed: make JOBS larger"
        os.kill(init.pid, signal.SIGKILL)  # the process alone, as the OOM killer does
        assert init.wait(10) == -signal.SIGKILL
    finally:
        if init.poll() is None:
            os.kill(init.pid, signal.SIGKILL)
            init.wait(10)

    after = open_store(deployment.store_url)
    try:
        assert after.version() == 7
        assert "jobd_jobs_unique_key UNIQUE" in _table_sql(after)
        with after.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert connection.exec_driver_sql("SELECT COUNT(*) FROM jobd_jobs").scalar() == JOBS + 1
        assert after.jobs.insert(_keyed()) == keyed  # the key still holds

        upgraded = subprocess.run(
            [sys.executable, "-m", "jobd.cli.app", "init"], env=deployment.env(), cwd=tmp_path,
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
        assert "upgraded from schema v7 to v8" in upgraded
        assert after.version() == 8 and "UNIQUE" not in _table_sql(after)
        with after.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT COUNT(*) FROM jobd_jobs").scalar() == JOBS + 1
        assert after.jobs.insert(_keyed()) == keyed
    finally:
        after.dispose()


def _keyed() -> NewJob:
    return NewJob("main", "t.record", {}, unique_key="report-7")


def _table_sql(store: Store) -> str:
    with store.engine.connect() as connection:
        return str(connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'jobd_jobs'").scalar())
