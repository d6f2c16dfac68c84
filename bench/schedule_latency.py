"""How late do scheduled tasks start? 100 entries firing every second.

Starts a real master (SQLite store, embedded default) with 100 `every = "1s"`
entries served by one daemon, runs for --seconds, then reports the delay
between each tick's due time and its task starting in a worker (p50, p90,
p99, max). Two more rows say where the delay lies: the first job of each
tick (the tick's own transaction and hand-over) and the last (draining the
burst through the workers). Bounded in time; cleans up the master it started
(by pid).

    python bench/schedule_latency.py --seconds 20 --workers 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK_MODULE = '''
import os, time, jobd

@jobd.task("bench.tick")
def tick(ctx) -> None:
    with open(os.path.join(os.environ["BENCH_DIR"], "starts.log"), "a") as handle:
        handle.write(f"{ctx.job_id} {time.time()}\\n")
'''


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="jobd-bench-", dir="/tmp"))
    (root / "benchtasks.py").write_text(TASK_MODULE)
    (root / "schedules").mkdir()
    (root / "jobd.toml").write_text(
        f'python_path = ["."]\nlog_level = "WARNING"\nlog_file = "jobd.log"\n'
        f'[daemons.bench]\nworkers = {options.workers}\nmodules = ["benchtasks"]\n'
    )
    entries = "".join(
        f'[entries.e{n:03d}]\ndaemon = "bench"\ntask = "bench.tick"\nevery = "1s"\nmisfire = "skip"\noverlap = "allow"\n'
        for n in range(options.entries)
    )
    (root / "schedules" / "bench.toml").write_text(entries)
    env = {**os.environ, "BENCH_DIR": str(root)}
    master = subprocess.Popen(
        [sys.executable, "-m", "jobd.cli.app", "start", "--foreground", "-c", str(root / "jobd.toml")],
        env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        time.sleep(3 + options.seconds)  # start-up, then the measured window
    finally:
        os.killpg(master.pid, signal.SIGTERM)
        try:
            master.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(master.pid, signal.SIGKILL)

    from jobd.store import open_store

    store = open_store(f"sqlite:///{root / 'jobd.db'}")
    due = {job.id: job.fire_key for job in store.jobs.list(limit=10**6) if job.fire_key}
    delays: list[float] = []
    by_tick: dict[str, list[float]] = {}
    for line in (root / "starts.log").read_text().splitlines():
        job_id, started = line.split()
        key = due.get(int(job_id))
        if key is None:
            continue
        when = key.split("@")[1]
        tick = dt.datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        delay = (float(started) - tick.timestamp()) * 1000
        delays.append(delay)
        by_tick.setdefault(when, []).append(delay)
    delays = delays[len(delays) // 10 :]  # drop the warm-up tenth
    ticks = [sorted(starts) for _when, starts in sorted(by_tick.items())]
    ticks = ticks[len(ticks) // 10 :]
    print(f"schedule latency: {options.entries} entries every 1s, {options.workers} workers, {options.seconds:.0f}s, SQLite store")
    print(f"{'':>16} {'count':>8} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9} {'mean ms':>9}")
    rows = [
        ("every job", delays),
        # Where the delay lies: until a tick's first job starts (the tick's own transaction and
        # hand-over), and until its last one does (draining the burst through the workers).
        ("first of a tick", [starts[0] for starts in ticks]),
        ("last of a tick", [starts[-1] for starts in ticks]),
    ]
    for label, values in rows:
        if values:
            print(f"{label:>16} {len(values):>8} {percentile(values, .5):>9.1f} {percentile(values, .9):>9.1f} "
                  f"{percentile(values, .99):>9.1f} {max(values):>9.1f} {statistics.mean(values):>9.1f}")
    store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
