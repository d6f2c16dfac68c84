"""A batch of 100,000 members across 3 masters, one of them killed with kill -9 mid-batch.

One MariaDB store, three masters (each its own folder and process group,
a short heartbeat lease so the others recover the dead master's jobs soon).
The members are submitted while the masters run (``jobd.batch`` with
``submit_many`` in chunks); once a share of them has succeeded one master
is killed with SIGKILL to its process group. The run then waits for the
batch to complete and checks, from the store:

* ``on_complete`` ran exactly once, and was queued no earlier than the
  last member's end (its row's ``created_at`` ≥ every member's ``finished_at``);
* the counts it was given are the batch's (every member succeeded once);
* a second batch with a member that always fails ran ``on_failure`` once.

Repeated runs print a table with the median and each run; exit status 1
if any check failed.

    python bench/batches.py                 # 100,000 members, 3 masters, one killed
    python bench/batches.py --quick         # 2,000 members: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

import jobd
from jobd.batch_record import BatchState
from jobd.store import Store, open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scaleout import tear_down  # noqa: E402

TASKS = '''import jobd


@jobd.task("bench.member")
def member(ctx, n: int) -> None:
    return None


@jobd.task("bench.fail")
def fail(ctx) -> None:
    raise RuntimeError("this member always fails")


@jobd.task("bench.done")
def done(ctx, batch: dict, tag: str) -> dict:
    return {"tag": tag, **batch}
'''
CHUNK = 5000


@dataclass
class Run:
    members: int
    submit_seconds: float
    complete_seconds: float
    killed_running: int
    on_complete_runs: int
    on_failure_runs: int
    counts_right: bool
    after_last_member: bool

    @property
    def ok(self) -> bool:
        return self.on_complete_runs == 1 and self.on_failure_runs == 1 and self.counts_right and self.after_last_member


def write_config(root: Path, url: str, workers: int) -> Path:
    (root / "benchtasks.py").write_text(TASKS)
    path = root / "jobd.toml"
    path.write_text(
        f"store = {json.dumps(url)}\npython_path = [\".\"]\nlog_level = \"WARNING\"\nlog_file = \"jobd.log\"\n"
        "heartbeat_interval = 1\nheartbeat_lease = 5\n"
        f"[daemons.bench]\nworkers = {workers}\nmodules = [\"benchtasks\"]\n"
    )
    return path


def start_master(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "jobd.cli.app", "start", "--foreground", "-c", str(root / "jobd.toml")],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def count_rows(store: Store, where: str, *params: object) -> int:
    with store.engine.connect() as connection:
        return int(connection.exec_driver_sql(f"SELECT COUNT(*) FROM jobd_jobs WHERE {where}", params).scalar_one())


def wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def run_once(members: int, masters: int, workers: int, kill_at: float, timeout: float) -> Run:
    name = f"jobdbench_{secrets.token_hex(4)}"
    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE `{name}`")
    url = f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    roots = [Path(tempfile.mkdtemp(prefix="jobd-batch-", dir="/tmp")) for _ in range(masters)]
    processes: list[subprocess.Popen[bytes]] = []
    store = open_store(url)
    try:
        store.initialise()
        configs = [write_config(root, url, workers) for root in roots]
        processes = [start_master(root) for root in roots]
        started = time.monotonic()
        with jobd.batch("bench", on_complete=("bench", "bench.done", {"tag": "complete"}), config=configs[0]) as batch:
            for start in range(0, members, CHUNK):
                batch.submit_many("bench", "bench.member", [{"n": n} for n in range(start, min(members, start + CHUNK))])
        submitted = time.monotonic() - started
        with jobd.batch("failing", on_failure=("bench", "bench.done", {"tag": "failure"}), config=configs[0]) as failing:
            failing.submit_many("bench", "bench.member", [{"n": n} for n in range(10)])
            failing.submit("bench", "bench.fail", max_attempts=1)
        wait(lambda: store.batches.get(batch.id).finished >= kill_at * members or store.batches.get(batch.id).state is not BatchState.OPEN,
             timeout, "the batch to get going")
        victim = processes[-1]
        killed_running = count_rows(store, "state = 'running'")
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(10)
        wait(lambda: store.batches.get(batch.id).state is not BatchState.OPEN and store.batches.get(failing.id).state is not BatchState.OPEN,
             timeout, "both batches to complete")
        complete_seconds = time.monotonic() - started
        found = store.batches.get(batch.id)
        callbacks = [found.complete_job_id, store.batches.get(failing.id).failure_job_id]
        wait(lambda: count_rows(store, "task = 'bench.done' AND state = 'succeeded'") == 2, timeout, "the callbacks to run")
        tags = [job.args.get("tag") for job in store.jobs.list(task="bench.done", limit=100)]
        on_complete_runs, on_failure_runs = tags.count("complete"), tags.count("failure")
        result = store.jobs.get(found.complete_job_id).result if found.complete_job_id else None
        with store.engine.connect() as connection:
            last_member = connection.exec_driver_sql(
                "SELECT MAX(finished_at) FROM jobd_jobs WHERE batch_id = %s", (batch.id,)).scalar_one()
        callback_started = store.jobs.get(callbacks[0]).started_at if callbacks[0] else None  # it must run after every member ended
        counts_right = (
            (found.state, found.total, found.succeeded, found.dead) == (BatchState.COMPLETE, members, members, 0)
            and isinstance(result, dict) and result.get("succeeded") == members and result.get("total") == members
            and count_rows(store, "batch_id = %s AND state = 'succeeded'", batch.id) == members
        )
        after = callback_started is not None and last_member is not None and callback_started >= last_member
        return Run(members, submitted, complete_seconds, killed_running, on_complete_runs, on_failure_runs, counts_right, after)
    finally:
        tear_down(processes, store, admin, name, roots)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="workers per master")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--kill-at", type=float, default=0.4, help="share of members finished when a master is killed")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per wait")
    parser.add_argument("--quick", action="store_true", help="2,000 members, one run: a smoke test")
    options = parser.parse_args()
    if options.quick:
        options.members, options.repeat, options.timeout = 2000, 1, 120.0
    print(f"batches: {options.members:,} members across {options.masters} masters ({options.workers} workers each), "
          f"one MariaDB store, the last master killed with kill -9 at {options.kill_at:.0%} done; {os.cpu_count()} CPU(s)")
    runs = [run_once(options.members, options.masters, options.workers, options.kill_at, options.timeout) for _ in range(options.repeat)]
    print("| run | members | submit s | members/s submitted | complete s | members/s end to end | running at kill "
          "| on_complete runs | on_failure runs | counts right | after last member |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for index, run in enumerate(runs, 1):
        print(f"| {index} | {run.members:,} | {run.submit_seconds:.1f} | {run.members / run.submit_seconds:,.0f} "
              f"| {run.complete_seconds:.1f} | {run.members / run.complete_seconds:,.0f} | {run.killed_running} "
              f"| {run.on_complete_runs} | {run.on_failure_runs} | {'yes' if run.counts_right else 'NO'} "
              f"| {'yes' if run.after_last_member else 'NO'} |")
    if len(runs) > 1:
        print(f"median end to end: {statistics.median(run.members / run.complete_seconds for run in runs):,.0f} members/s")
    verdict = all(run.ok for run in runs)
    print("on_complete exactly once, after the last member, with the batch's counts: " + ("yes" if verdict else "NO"))
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
