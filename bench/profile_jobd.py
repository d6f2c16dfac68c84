"""Where a jobd master spends its time per job: py-spy samples and store statements per job.

Bulk-enqueues N no-op jobs (the peers' throughput workload), starts a master
with 2 workers, samples the master and its workers with py-spy (``--idle``
off: only time spent running), and counts every SQL statement and commit
each process sends (SQLAlchemy engine events installed by a
``sitecustomize`` on the master's path; jobd's code is untouched). Prints
the master's and the workers' top functions by share of samples, and
statements per job by kind.

    python bench/profile_jobd.py --jobs 5000 [--store mysql+pymysql://root@127.0.0.1:3306/DB]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "adapters"))

import processes  # noqa: E402
from jobd_adapter import JobdAdapter, JobdMariaDBAdapter  # noqa: E402

COUNTER = '''
import atexit, collections, json, os
import sqlalchemy as sa

_counts = collections.Counter()

@sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
def _statement(conn, cursor, statement, parameters, context, executemany):
    _counts[statement.split(None, 1)[0].upper() + (" (many)" if executemany else "")] += 1

@sa.event.listens_for(sa.engine.Engine, "commit")
def _commit(conn):
    _counts["COMMIT"] += 1

@sa.event.listens_for(sa.pool.Pool, "checkout")
def _checkout(dbapi_connection, record, proxy):
    _counts["pool checkout"] += 1

def _dump():
    if _counts:
        with open(os.path.join(os.environ["BENCH_PROFILE_DIR"], f"statements-{os.getpid()}.json"), "w") as f:
            json.dump(dict(_counts), f)
atexit.register(_dump)
'''


def top_functions(raw: Path, pids: set[int] | None, limit: int) -> list[tuple[str, float, float]]:
    """(function, self share, inclusive share) from py-spy's collapsed stacks, for the given pids."""
    self_counts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        owners = [frame for frame in frames if frame.startswith("process ")]
        if not owners:
            continue
        pid = int(owners[-1].split()[1].split(":")[0])  # the innermost process: workers nest in the fork server
        if pids is not None and pid not in pids:
            continue
        count = int(count_text)
        total += count
        names = [_function(frame) for frame in frames if not frame.startswith("process ") and " (" in frame]
        if names:
            self_counts[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    if not total:
        return []
    ranked = sorted(inclusive, key=lambda n: -inclusive[n])[:limit]
    return [(name, self_counts[name] / total, inclusive[name] / total) for name in ranked]


def _function(frame: str) -> str:
    """``name (path/to/file.py:123)`` → ``name (file.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0].rsplit('/', 1)[-1]})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--mariadb", action="store_true", help="on a fresh MariaDB database instead of SQLite")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", action="store_true", help="keep the folder with the raw profile")
    options = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="jobd-prof-", dir="/tmp"))
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(COUNTER)
    adapter = (JobdMariaDBAdapter if options.mariadb else JobdAdapter)(root, "")
    adapter.setup()
    adapter.enqueue_bulk(options.jobs, 0.0)
    env = {**adapter.env(), "BENCH_PROFILE_DIR": str(root),
           "PYTHONPATH": os.pathsep.join([str(root / "site"), adapter.env()["PYTHONPATH"]])}
    adapter.process = processes.start(adapter.worker_command(), env=env, cwd=root, log=root / "workers.log")
    spy = subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(adapter.process.pid), "--subprocesses",
         "--rate", "250", "--format", "raw", "--output", str(root / "profile.txt"), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    began = time.monotonic()
    try:
        deadline = began + 300
        while not adapter.finished_by_own_account(options.jobs) and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = time.monotonic() - began
        supervisor, workers = adapter.roles()
        master_pid = adapter.process.pid
        os.kill(master_pid, signal.SIGTERM)  # a graceful stop, so every process writes its counts
        adapter.process.wait(60)
    finally:
        os.kill(spy.pid, signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
        adapter.stop_workers()
        adapter.teardown()

    print(f"{options.jobs} no-op jobs on {'MariaDB' if options.mariadb else 'SQLite'} in {elapsed:.1f}s "
          f"(incl. start-up; {options.jobs / elapsed:.0f} jobs/s while profiled)")
    for title, pids in (("master", {master_pid}), ("workers", set(workers))):
        print(f"\n{title}: share of samples (self / inclusive)")
        for name, own, whole in top_functions(root / "profile.txt", pids, options.top):
            print(f"  {own * 100:5.1f}% {whole * 100:5.1f}%  {name}")
    print("\nstore statements per job, by process:")
    for path in sorted(root.glob("statements-*.json")):
        pid = int(path.stem.split("-")[1])
        role = "master" if pid == master_pid else "worker" if pid in workers else "other"
        counts = json.loads(path.read_text())
        print(f"  {role} {pid}: " + ", ".join(f"{kind} {n / options.jobs:.2f}" for kind, n in sorted(counts.items())))
    if options.keep:
        print(f"\nraw profile: {root / 'profile.txt'}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
