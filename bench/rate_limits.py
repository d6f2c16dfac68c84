"""A rate limit served by several masters on one MariaDB store: the rate the tasks really start at.

A fresh database; K masters (each its own process group, 2 workers each)
serving one task with ``task_rate_limits = { "bench.stamp" = "50/s" }``
(burst: the default, one second's worth); once they are up, enough no-op
jobs to keep the limit busy for the whole run are inserted at once. Each
job writes its own start time; the run stops after ``--seconds``. Printed:
the jobs started in each second (seconds counted from the first start),
the overall rate after the first second (that one holds the full bucket
as well) against the goal, the most in any second, and the medians.
(The store's ``started_at`` is each claim's clock read before it waits for
the bucket's lock, so it is not used here.) Bounded in time; every master
is killed by process group and the database dropped.

    python bench/rate_limits.py                 # 3 masters, 50/s, 30 s
    python bench/rate_limits.py --quick         # 3 masters, 20/s, 4 s (smoke test)
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

import pymysql

from jobd.rate_limits import default_burst
from jobd.store import NewJob, open_store

TASKS = '''import time

import jobd


@jobd.task("bench.stamp")
def stamp(ctx, path: str) -> None:
    started = time.time()
    with open(path, "a", encoding="utf-8") as handle:  # O_APPEND: one write per line
        handle.write(f"{ctx.job_id} {started}\\n")
'''


def per_second(times: list[float], first: float, seconds: int) -> list[int]:
    counts = [0] * seconds
    for at in times:
        index = int(at - first)
        if 0 <= index < seconds:
            counts[index] += 1
    return counts


def run(masters: int, rate: int, seconds: int, workers: int) -> list[int]:
    """One run: the jobs started in each second, from the tasks' own start times."""
    name = f"jobdbench_{secrets.token_hex(4)}"
    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE `{name}`")
    url = f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    roots = [Path(tempfile.mkdtemp(prefix="jobd-rate-", dir="/tmp")) for _ in range(masters)]
    stamps = roots[0] / "stamps.log"
    processes: list[subprocess.Popen[bytes]] = []
    store = open_store(url)
    try:
        store.initialise()
        for root in roots:
            (root / "benchtasks.py").write_text(TASKS)
            (root / "jobd.toml").write_text(
                f"store = {json.dumps(url)}\npython_path = [\".\"]\nlog_level = \"WARNING\"\nlog_file = \"jobd.log\"\n"
                f"[daemons.bench]\nworkers = {workers}\nmodules = [\"benchtasks\"]\n"
                f"task_rate_limits = {{ \"bench.stamp\" = \"{rate}/s\" }}\n"
            )
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "jobd.cli.app", "start", "--foreground", "-c", str(root / "jobd.toml")],
                cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            ))
        _wait(lambda: sum(1 for m in store.masters.all() if m.state == "running") == masters, 60, "the masters to start")
        jobs = rate * seconds + int(default_burst(rate)) + rate * 5  # more than the run can start
        store.jobs.insert_many([NewJob("bench", "bench.stamp", {"path": str(stamps)}) for _ in range(jobs)])
        _wait(lambda: stamps.exists(), 30, "the first job to start")
        first = min(float(line.split()[1]) for line in stamps.read_text().splitlines())
        time.sleep(max(0.0, first + seconds + 0.5 - time.time()))
        started = [float(line.split()[1]) for line in stamps.read_text().splitlines()]
        return per_second(started, first, seconds)
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(10)
        store.dispose()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)


def _wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def report(series: list[int], rate: int) -> None:
    burst = int(default_burst(rate))
    print(f"\njobs started per second (the tasks' own start times, from the first): {len(series)} s")
    print("| second | " + " | ".join(str(index) for index in range(len(series))) + " |")
    print("|---" * (len(series) + 1) + "|")
    print("| started | " + " | ".join(str(count) for count in series) + " |")
    steady = series[1:]
    overall = sum(steady) / len(steady)
    print(f"\nrate limit {rate}/s, burst {burst} (goal: {rate}/s ± 5% overall, at most the burst in any second)\n")
    print("| overall after 1st s | ÷ goal | median / s | min / s after 1st s | max / s after 1st s | 1st s (burst + rate) | seconds above burst |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {overall:.2f}/s | {overall / rate:.3f} | {statistics.median(series):g} | {min(steady)} | {max(steady)} "
        f"| {series[0]} | {sum(1 for count in series if count > burst)} of {len(series)} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--rate", type=int, default=50, help="the task's limit, jobs per second")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="workers per master")
    parser.add_argument("--quick", action="store_true", help="20/s for 4 s: a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.rate, args.seconds = 20, 4
    print(f"{args.masters} masters × {args.workers} workers, one MariaDB store, task_rate_limits = {args.rate}/s, {args.seconds} s")
    report(run(args.masters, args.rate, args.seconds, args.workers), args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
