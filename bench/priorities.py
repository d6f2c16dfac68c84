"""How soon a high-priority intent starts while a million jobs wait (issue 18, acceptance 4).

A master with one daemon of 2 workers works through a backlog of no-op jobs
(``--backlog``, default 1,000,000, submitted with ``jobd.submit_many``);
meanwhile an application submits priority-100 jobs one at a time with
``jobd.submit`` at a steady rate. Each such task stamps the moment it
starts; submit→start is measured from just before the ``submit`` call, so
it includes the insert, the wake-up, the claim and the wait for a worker.
The goal: p50 within 5 ms and p99 within 20 ms on SQLite (MariaDB reported
beside it). The backlog must still be draining when the last sample is
taken, else the figure says nothing; the table says how many backlog jobs
were still queued at the end.

    python bench/priorities.py                      # SQLite and MariaDB, 1M backlog, 200 samples each
    python bench/priorities.py --stores sqlite --backlog 200000 --samples 100
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAEMON = "main"
TASKS = '''import os, time
import jobd


@jobd.task("bench.noop")
def noop(ctx) -> None:
    pass


@jobd.task("bench.urgent")
def urgent(ctx, submitted: float) -> None:
    started = time.time()
    fd = os.open(os.environ["BENCH_URGENT_STAMPS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"%d %.6f %.6f\\n" % (ctx.job_id, submitted, started))
    os.close(fd)
'''
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
START_TIMEOUT = 60.0
SAMPLE_TIMEOUT = 30.0
WARM_UP = 3


def on_server(statement: str) -> None:
    """Run one statement on the local MariaDB server (a database of this run: created, dropped)."""
    import pymysql

    connection = pymysql.connect(**MARIADB)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class Run:
    """One store: a throw-away folder and database, a master, the backlog and the samples."""

    def __init__(self, store: str, folder: Path) -> None:
        self.store = store
        self.folder = folder
        self.database: str | None = None
        self.master: subprocess.Popen[bytes] | None = None
        self.stamps = folder / "urgent.stamps"

    def create_store(self) -> str:
        """The store's URL: a SQLite file in the folder, or a MariaDB database made for this run."""
        if self.store == "sqlite":
            return f"sqlite:///{self.folder / 'jobd.db'}"
        self.database = f"jobdbench_prio_{secrets.token_hex(4)}"
        on_server(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4")
        return f"mysql+pymysql://root@127.0.0.1:3306/{self.database}"

    def prepare(self, backlog: int, workers: int) -> float:
        """Write the config and tasks, submit the backlog; return the seconds the backlog took to submit."""
        import jobd

        self.store_url = self.create_store()
        (self.folder / "prio_tasks.py").write_text(TASKS)
        self.config = self.folder / "jobd.toml"
        self.config.write_text("\n".join([
            f'store = "{self.store_url}"', 'socket = "jobd.sock"', 'pid_file = "jobd.pid"', 'log_file = "jobd.log"',
            'log_level = "WARNING"', f'python_path = ["{self.folder}"]', f"[daemons.{DAEMON}]", f"workers = {workers}",
            'modules = ["prio_tasks"]',
        ]) + "\n")
        subprocess.run([sys.executable, "-m", "jobd.cli.app", "init", "-c", str(self.config)], cwd=self.folder, check=True,
                       stdout=subprocess.DEVNULL)
        started = time.monotonic()
        done = 0
        while done < backlog:
            chunk = min(50_000, backlog - done)
            jobd.submit_many(DAEMON, "bench.noop", [{}] * chunk, config=str(self.config))
            done += chunk
        return time.monotonic() - started

    def start_master(self) -> None:
        env = {**os.environ, "BENCH_URGENT_STAMPS": str(self.stamps)}
        self.master = subprocess.Popen(
            [sys.executable, "-m", "jobd.cli.app", "start", "--foreground", "-c", str(self.config)],
            cwd=self.folder, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.succeeded_noops() and time.monotonic() < deadline:
            if self.master.poll() is not None:
                raise SystemExit(f"{self.store}: the master exited with {self.master.returncode}; see {self.folder}/jobd.log")
            time.sleep(0.2)
        if not self.succeeded_noops():
            raise SystemExit(f"{self.store}: no backlog job ran within {START_TIMEOUT:.0f}s")
        time.sleep(2.0)  # past the start-up: the workers are warm and the prefetch is full

    def counts(self) -> dict[str, int]:
        from jobd.store import open_store

        store = open_store(self.store_url)
        try:
            return store.jobs.counts().get(DAEMON, {})
        finally:
            store.dispose()

    def succeeded_noops(self) -> int:
        return self.counts().get("succeeded", 0)

    def sample(self, samples: int, rate: float) -> list[float]:
        """Submit ``samples`` priority-100 jobs at ``rate`` per second; return submit→start in ms."""
        import jobd

        self.submit_ms: list[float] = []
        for _ in range(WARM_UP):  # the application's first submits open its store connection: not measured
            jobd.submit(DAEMON, "bench.urgent", {"submitted": 0.0}, priority=100, config=str(self.config))
        time.sleep(0.5)
        for index in range(samples):
            submitted = time.time()
            jobd.submit(DAEMON, "bench.urgent", {"submitted": submitted}, priority=100, config=str(self.config))
            self.submit_ms.append((time.time() - submitted) * 1000)
            time.sleep(max(0.0, 1.0 / rate - (time.time() - submitted)))
        deadline = time.monotonic() + SAMPLE_TIMEOUT
        while self._stamped() < samples + WARM_UP and time.monotonic() < deadline:
            time.sleep(0.1)
        latencies = []
        for line in self.stamps.read_text().splitlines() if self.stamps.exists() else []:
            _job, submitted_at, started_at = line.split()
            if float(submitted_at) == 0.0:
                continue  # a warm-up submit
            latencies.append((float(started_at) - float(submitted_at)) * 1000)
        return latencies

    def _stamped(self) -> int:
        return len(self.stamps.read_text().splitlines()) if self.stamps.exists() else 0

    def stop(self) -> None:
        if self.master is not None and self.master.poll() is None:
            try:
                os.killpg(self.master.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.master.wait(10)
        if self.database:
            on_server(f"DROP DATABASE IF EXISTS `{self.database}`")


def measure(store: str, backlog: int, samples: int, rate: float, workers: int, keep: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="jobd-prio-") as temporary:
        folder = tempfile.mkdtemp(prefix=f"jobd-prio-{store}-") if keep else temporary
        run = Run(store, Path(folder))
        try:
            submit_seconds = run.prepare(backlog, workers)
            run.start_master()
            latencies = run.sample(samples, rate)
            left = run.counts().get("queued", 0)
            if keep:
                print(f"{store}: kept {folder}")
            submit_ms = run.submit_ms
        finally:
            run.stop()
    load = os.getloadavg()[0]
    return {
        "store": store, "backlog": backlog, "submit_s": submit_seconds, "samples": len(latencies), "asked": samples,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p90": percentile(latencies, 0.9) if latencies else float("nan"),
        "p99": percentile(latencies, 0.99) if latencies else float("nan"),
        "max": max(latencies) if latencies else float("nan"), "queued_at_end": left, "load": load,
        "submit_p50": statistics.median(submit_ms), "submit_p99": percentile(submit_ms, 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite,mariadb", help="comma-separated: sqlite,mariadb")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="no-op jobs queued before the samples")
    parser.add_argument("--samples", type=int, default=200, help="priority-100 jobs submitted one at a time")
    parser.add_argument("--rate", type=float, default=20.0, help="priority-100 submits per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep each run's folder (config, master log) and say where")
    options = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    rows = [measure(store, options.backlog, options.samples, options.rate, options.workers, options.keep)
            for store in options.stores.split(",") if store]
    table = Table(title=f"priority-100 submit → start with {options.backlog:,} no-op jobs queued, "
                        f"{options.workers} workers, {options.samples} samples at {options.rate:g}/s (goal SQLite: p50 ≤ 5 ms, p99 ≤ 20 ms)")
    for column in ("store", "backlog submit s", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms",
                   "of which submit() p50/p99 ms", "backlog left", "load"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["store"]), f"{row['submit_s']:.1f}", f"{row['samples']}/{row['asked']}",
                      f"{row['p50']:.1f}", f"{row['p90']:.1f}", f"{row['p99']:.1f}", f"{row['max']:.1f}",
                      f"{row['submit_p50']:.1f} / {row['submit_p99']:.1f}",
                      f"{row['queued_at_end']:,}", f"{row['load']:.2f}")
    Console(width=200).print(table)
    return 0 if all(row["samples"] == row["asked"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
