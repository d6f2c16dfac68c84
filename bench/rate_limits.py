"""A rate limit served by several masters on one MariaDB store: the rate the tasks really start at.

A fresh database; K masters (each its own process group, 2 workers each)
serving one task with ``task_rate_limits = { "bench.stamp" = "50/s" }``
(burst: the default, one second's worth); once they are up, enough no-op
jobs to keep the limit busy for the whole run are inserted at once. Each
job writes its own start time. Counted per calendar second (the unit the
limit caps), from the second of the first start (partial: the backlog
arrived during it) for ``--seconds`` full seconds more, twice: by the
tasks' own start times (what a rate-limited API would see) and by the
claim times the store recorded (``started_at``, what the limit decides
on). Printed: each second's counts, the rate over the full seconds against
the goal, the most in any second, how many seconds went above the burst,
and how long a task's start lags its claim (the limiter claims nothing in
a second's last ``CLOSING_MARGIN`` so the start lands in the claim's
second). Bounded in time; every master is killed by process group and the
database dropped.

    python bench/rate_limits.py                 # 3 masters, 50/s, 30 s
    python bench/rate_limits.py --quick         # 3 masters, 20/s, 4 s (smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymysql
import sqlalchemy as sa

from jobd.rate_limits import CLOSING_MARGIN, default_burst
from jobd.store import NewJob, open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scaleout import tear_down  # noqa: E402

TASKS = '''import time

import jobd


@jobd.task("bench.stamp")
def stamp(ctx, path: str) -> None:
    started = time.time()
    with open(path, "a", encoding="utf-8") as handle:  # O_APPEND: one write per line
        handle.write(f"{ctx.job_id} {started}\\n")
'''


def per_calendar_second(times: list[float], first_second: int, seconds: int) -> list[int]:
    """Events in each calendar second from ``first_second``, ``seconds`` of them."""
    counts = [0] * seconds
    for at in times:
        index = int(at) - first_second
        if 0 <= index < seconds:
            counts[index] += 1
    return counts


def run(masters: int, rate: int, seconds: int, workers: int) -> tuple[list[int], list[int], list[float]]:
    """One run: jobs started in each calendar second by the tasks' own start times and by the store's claim times, and each job's lag."""
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
        jobs = rate * (seconds + 1) + int(default_burst(rate)) + rate * 5  # more than the run can start
        store.jobs.insert_many([NewJob("bench", "bench.stamp", {"path": str(stamps)}) for _ in range(jobs)])
        _wait(lambda: stamps.exists(), 30, "the first job to start")
        first_second = int(min(float(line.split()[1]) for line in stamps.read_text().splitlines()))
        time.sleep(max(0.0, first_second + seconds + 1 + 0.5 - time.time()))
        started = {int(job_id): float(at) for job_id, at in (line.split() for line in stamps.read_text().splitlines())}
        table = store.tables["jobs"]
        with store.engine.connect() as connection:
            claimed = {int(job_id): float(at) for job_id, at in connection.execute(
                sa.select(table.c.id, table.c.started_at).where(table.c.started_at.is_not(None))
            )}
        lags = [at - claimed[job_id] for job_id, at in started.items() if job_id in claimed]
        return (
            per_calendar_second(list(started.values()), first_second, seconds + 1),
            per_calendar_second(list(claimed.values()), first_second, seconds + 1),
            lags,
        )
    finally:
        tear_down(processes, store, admin, name, roots)


def _wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def report(started: list[int], claimed: list[int], lags: list[float], rate: int) -> None:
    burst = int(default_burst(rate))
    print(f"\njobs per calendar second, from the second of the first start (second 0: partial, the backlog arrived in it)")
    print("| second | " + " | ".join(str(index) for index in range(len(started))) + " |")
    print("|---" * (len(started) + 1) + "|")
    print("| started | " + " | ".join(str(count) for count in started) + " |")
    print("| claimed | " + " | ".join(str(count) for count in claimed) + " |")
    print(f"\nrate limit {rate}/s, burst {burst} (goal: {rate}/s ± 5% overall, at most the burst in any second)\n")
    print("| counted by | overall after 1st s | ÷ goal | median / s | min / s after 1st s | max / s | seconds above burst |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, series in (("started", started), ("claimed", claimed)):
        full = series[1:]
        overall = sum(full) / len(full)
        print(
            f"| {label} | {overall:.2f}/s | {overall / rate:.3f} | {statistics.median(full):g} | {min(full)} | {max(series)} "
            f"| {sum(1 for count in series if count > burst)} of {len(series)} |"
        )
    ordered = sorted(lags)
    print(
        f"\nstart after claim: median {statistics.median(ordered) * 1000:.1f} ms, p99 {ordered[int(0.99 * (len(ordered) - 1))] * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms; over the closing margin ({CLOSING_MARGIN * 1000:.0f} ms): "
        f"{sum(1 for lag in lags if lag >= CLOSING_MARGIN)} of {len(lags)} jobs"
    )
    print(f"load average (1, 5, 15 min): {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


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
    report(*run(args.masters, args.rate, args.seconds, args.workers), args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
