"""A SQLite store's ``?synchronous=``: when a commit reaches the disk.

With ``normal`` (the default) a commit is in the write-ahead log when it
returns and survives the crash of any process; the log reaches the disk at
each checkpoint. With ``full`` every commit is flushed first, so an
acknowledged submit survives a crash of the host as well. The process tests
count what the kernel sees: the submitting process's fsyncs of the log file,
traced with strace.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from jobd.config_digest import config_digest
from jobd.store.driver_sql import for_master, open_connection, target_as_json, target_from_json
from jobd.store.engine import driver_target, make_engine
from support import Deployment, require

FULL, NORMAL = 2, 1  # PRAGMA synchronous's answers


def synchronous_of(connection: sqlite3.Connection) -> int:
    value: int = connection.execute("PRAGMA synchronous").fetchone()[0]
    connection.close()
    return value


@pytest.mark.parametrize(
    "query, level",
    [("", NORMAL), ("?synchronous=full", FULL), ("?synchronous=Normal", NORMAL), ("?timeout=3&synchronous=FULL", FULL)],
)
def test_every_connection_jobd_opens_on_the_store_runs_at_the_urls_level(tmp_path: Path, query: str, level: int) -> None:
    url = f"sqlite:///{tmp_path / 'jobd.db'}{query}"
    engine = make_engine(url)  # the CLI's, `jobd web`'s and an application's full submit
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == level
    finally:
        engine.dispose()
    target = driver_target(url)  # a worker's, and a plain submit's
    handed = target_from_json(target_as_json(target))  # as `jobd start` hands it over, and a config digest records it
    for kept in (target, handed, for_master(handed)):  # the master's own
        assert synchronous_of(open_connection(kept, sqlite3)) == level


SUBMITTER = """
import os, sys
import jobd

jobd.submit("main", "t.noop", {}, config=sys.argv[1])  # the first commit on a new log: SQLite syncs its header
os.kill(os.getpid(), 0)  # marks the trace: the three submits counted start here
for n in range(3):
    jobd.submit("main", "t.noop", {}, config=sys.argv[1])
os.kill(os.getpid(), 0)  # and end here: what follows is the process exiting (its connection's checkpoint)
"""


def log_fsyncs_of_three_submits(deployment: Deployment) -> int:
    """fsyncs of the store's write-ahead log while a process submits three jobs (one submitted before)."""
    trace = deployment.root / "trace.txt"
    completed = subprocess.run(
        ["strace", "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync,kill", "-o", str(trace),
         sys.executable, "-c", SUBMITTER, str(deployment.config_path)],
        capture_output=True, text=True, timeout=120, cwd=deployment.root, env=deployment.env(),
    )
    assert completed.returncode == 0, completed.stderr
    lines = trace.read_text().splitlines()
    marks = [index for index, line in enumerate(lines) if re.match(r"(\d+)\s+kill\(\1, 0\)", line)]  # its own pid
    first, last = marks[0], marks[-1]
    return sum(1 for line in lines[first:last] if "sync(" in line and "jobd.db-wal>" in line)


@pytest.mark.parametrize("query, flushed", [("", False), ("?synchronous=full", True)])
def test_a_submit_is_flushed_to_the_disk_before_it_returns_only_with_synchronous_full(
    deployment_factory: Callable[[str], Deployment], tmp_path: Path, query: str, flushed: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require(shutil.which("strace") is not None, "strace is not installed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # this test's own config digests
    deployment = deployment_factory(f"sqlite:///{tmp_path / 'jobd.db'}{query}")
    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init", check=True)
    deployment.jobd("check", check=True)  # the catalogue: each submit is one INSERT through the driver
    config_digest(deployment.config_path)
    fsyncs = log_fsyncs_of_three_submits(deployment)
    assert (fsyncs >= 3) if flushed else (fsyncs == 0), fsyncs
    assert deployment.store.jobs.counts()["main"]["queued"] == 4
