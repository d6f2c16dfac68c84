"""Throughput of 1, 2 and 3 masters sharing one MariaDB store.

Each run: a fresh database, N no-op jobs inserted in bulk, K masters (each
its own process group, 2 workers each) started together; the time until
every job has succeeded gives jobs/s. Runs are repeated and the median is
reported. Bounded in time; every master is killed by process group and
every database dropped.

    python bench/scaleout.py --jobs 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql

from jobd.store import NewJob, open_store

TASKS = 'import jobd\n\n@jobd.task("bench.noop")\ndef noop(ctx) -> None:\n    return None\n'


def run_once(masters: int, jobs: int, workers: int, timeout: float) -> float:
    name = f"jobdbench_{secrets.token_hex(4)}"
    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE `{name}`")
    url = f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    roots = [Path(tempfile.mkdtemp(prefix="jobd-scale-", dir="/tmp")) for _ in range(masters)]
    processes: list[subprocess.Popen[bytes]] = []
    store = open_store(url)
    try:
        store.initialise()
        store.jobs.insert_many([NewJob("bench", "bench.noop", {}) for _ in range(jobs)])
        for root in roots:
            (root / "benchtasks.py").write_text(TASKS)
            (root / "jobd.toml").write_text(
                f"store = {json.dumps(url)}\npython_path = [\".\"]\nlog_level = \"WARNING\"\nlog_file = \"jobd.log\"\n"
                f"[daemons.bench]\nworkers = {workers}\nmodules = [\"benchtasks\"]\n"
            )
        started = time.monotonic()
        for root in roots:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "jobd.cli.app", "start", "--foreground", "-c", str(root / "jobd.toml")],
                cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            ))
        deadline = started + timeout
        while time.monotonic() < deadline:
            if store.jobs.counts().get("bench", {}).get("succeeded", 0) == jobs:
                return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"{masters} master(s) did not finish {jobs} jobs in {timeout:.0f}s")
    finally:
        tear_down(processes, store, admin, name, roots)


def tear_down(processes: list[subprocess.Popen[bytes]], store: Any, admin: Any, database: str, roots: list[Path]) -> None:
    """Kill the masters this bench started (their groups), drop its database, remove its folders."""
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)
    store.dispose()
    admin.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
    admin.close()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="workers per master")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    options = parser.parse_args()
    print(f"scale-out: {options.jobs} no-op jobs, {options.workers} workers per master, one MariaDB store, "
          f"median of {options.repeat}; {os.cpu_count()} CPU(s) on this host (start-up included)")
    print(f"{'masters':>8} {'median s':>10} {'jobs/s':>10} {'vs 1':>7}")
    baseline = None
    for masters in (1, 2, 3):
        times = [run_once(masters, options.jobs, options.workers, options.timeout) for _ in range(options.repeat)]
        median = statistics.median(times)
        rate = options.jobs / median
        baseline = baseline or rate
        print(f"{masters:>8} {median:>10.2f} {rate:>10.0f} {rate / baseline:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
