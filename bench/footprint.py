"""What jobd's processes cost the host, beside Huey's: RSS, USS and PSS of each process after a run.

jobd runs beside the application it serves, so its memory is the
application's loss. Each system runs 2 worker processes and the same no-op
jobs (10,000, enqueued in bulk, then the workers are started); when all are
done and the processes have settled, every process of the system is
measured with psutil:

* RSS — resident memory, counting shared pages fully;
* USS — memory only this process holds (freed if it ended);
* PSS — its share of everything it maps: summed over processes, the host's
  real cost of the system.

jobd (SQLite): the master, its fork server, multiprocessing's resource
tracker, each worker; once as configured for on-demand jobs only, and once
(``jobd-sqlite+schedule``) with a schedule of ten entries that do not come due
during the run, as a cron replacement runs: its master then holds
APScheduler's triggers, which a master with no schedule never loads. Huey (Redis, ``-k process -w 2``): the consumer, its
scheduler process, each worker. Medians of 3 runs (``--quick``: 1 run of
1,000 jobs, for a smoke test), then the ratios against issue 19's goals:
total PSS ≤ 1.5× Huey's, each worker's USS ≤ Huey's worker's + 2 MiB, the
master's USS ≤ 30 MiB.

Huey needs the bench extras (``pip install -e '.[bench]'``) and a Redis: the
one at ``--redis`` if it answers, else a ``redis-server`` started for the run
on a free loopback port and stopped after it; without them Huey is skipped.

    python bench/footprint.py            # 3 runs of 10,000 jobs (about 2 minutes)
    python bench/footprint.py --quick    # one small run
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent / "adapters"))

import processes  # noqa: E402
import stamps  # noqa: E402
from base import Adapter  # noqa: E402

MIB = 1024 * 1024
SETTLE_SECONDS = 1.0
GOAL_TOTAL_PSS_RATIO = 1.5
GOAL_WORKER_USS_MARGIN_MIB = 2.0
GOAL_MASTER_USS_MIB = 30.0


@dataclass(frozen=True)
class Usage:
    rss: float  # MiB
    uss: float
    pss: float


def usage(pid: int) -> Usage | None:
    try:
        info = psutil.Process(pid).memory_full_info()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return Usage(info.rss / MIB, info.uss / MIB, info.pss / MIB)


# -- which process is which ------------------------------------------------------


def jobd_roles(adapter: Any) -> dict[str, int]:
    """Role → pid: the master (the process started), its fork server, the resource tracker, each worker."""
    supervisor, workers = adapter.roles()
    roles: dict[str, int] = {}
    for pid in supervisor:
        command = processes.cmdline(pid)
        if pid == adapter.process.pid:
            roles["master"] = pid
        elif "forkserver" in command:
            roles["fork server"] = pid
        elif "resource_tracker" in command:
            roles["resource tracker"] = pid
        else:
            roles[f"other ({pid})"] = pid
    for index, pid in enumerate(sorted(workers), start=1):
        roles[f"worker {index}"] = pid
    return roles


def huey_roles(adapter: Any) -> dict[str, int]:
    """The consumer (the process started), its scheduler (the first child it starts) and each worker."""
    consumer = adapter.process.pid
    children = sorted(psutil.Process(consumer).children(), key=lambda child: (child.create_time(), child.pid))
    roles = {"consumer": consumer}
    if children:
        roles["scheduler"] = children[0].pid
    for index, child in enumerate(children[1:], start=1):
        roles[f"worker {index}"] = child.pid
    return roles


#: The schedule of ``jobd-sqlite+schedule``: entries of every kind, none due during a run (yearly, at
#: 30-day steps from the epoch, once in 2099).
SCHEDULE = "".join(
    f'[entries.yearly-{minute}]\ndaemon = "bench"\ntask = "bench.work"\ncron = "{minute} 4 1 1 *"\n' for minute in range(8)
) + (
    '[entries.monthly]\ndaemon = "bench"\ntask = "bench.work"\nevery = "30d"\n'
    '[entries.once]\ndaemon = "bench"\ntask = "bench.work"\nat = "2099-01-01T00:00:00"\n'
)


def scheduled_jobd() -> type[Adapter]:
    """jobd's adapter with ``SCHEDULE`` beside its config (read by the master it starts)."""
    from jobd_adapter import JobdAdapter

    class ScheduledJobd(JobdAdapter):
        name = "jobd-sqlite+schedule"

        def setup(self) -> None:
            folder = self.workdir / "schedules"
            folder.mkdir(exist_ok=True)
            (folder / "bench.toml").write_text(SCHEDULE)
            super().setup()

    return ScheduledJobd


def adapter(module: str, name: str) -> Callable[[], type[Adapter]]:
    """The adapter class ``name`` of ``module``, imported when asked for (ImportError: the system is skipped)."""
    return lambda: getattr(importlib.import_module(module), name)


SYSTEMS: dict[str, tuple[Callable[[], type[Adapter]], Callable[[Any], dict[str, int]]]] = {  # name → (its adapter, its roles)
    "jobd-sqlite": (adapter("jobd_adapter", "JobdAdapter"), jobd_roles),
    "jobd-sqlite+schedule": (scheduled_jobd, jobd_roles),
    "huey": (adapter("huey_adapter", "HueyAdapter"), huey_roles),
}


# -- one run -----------------------------------------------------------------------


def wait_for(condition: Any, seconds: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def one_run(cls: type[Adapter], roles_of: Any, jobs: int, redis_url: str, root: Path) -> dict[str, Usage]:
    """Run ``jobs`` no-op jobs on 2 workers, let the processes settle, measure each; always stops what it started."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{cls.name[:6]}-", dir=root))
    adapter = cls(workdir, redis_url)
    try:
        adapter.setup()
        adapter.enqueue_bulk(jobs, 0.0)
        adapter.start_workers()
        if not wait_for(lambda: stamps.count(adapter.stamps) >= jobs, 120):
            raise RuntimeError(f"{cls.name}: only {stamps.count(adapter.stamps)} of {jobs} jobs ran in 120 s (see {workdir})")
        wait_for(lambda: adapter.finished_by_own_account(jobs), 30)
        time.sleep(SETTLE_SECONDS)
        measured = {role: usage(pid) for role, pid in roles_of(adapter).items()}
        return {role: value for role, value in measured.items() if value is not None}
    finally:
        try:
            adapter.stop_workers()
        finally:
            adapter.teardown()
            shutil.rmtree(workdir, ignore_errors=True)


def medians(runs: list[dict[str, Usage]]) -> dict[str, Usage]:
    roles = [role for role in runs[0] if all(role in run for run in runs)]
    return {
        role: Usage(*(statistics.median(getattr(run[role], field) for run in runs) for field in ("rss", "uss", "pss")))
        for role in roles
    }


# -- Redis for Huey -------------------------------------------------------------------


def redis_answers(host: str, port: int) -> bool:
    try:
        import redis
    except ImportError:
        return False
    client = redis.Redis(host=host, port=port, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_redis(root: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    """A throwaway redis-server on a free loopback port (no persistence), or None if there is none to start."""
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = processes.start(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(root)],
        env=dict(os.environ), cwd=root, log=root / "redis.log",
    )
    if not wait_for(lambda: redis_answers("127.0.0.1", port), 10, 0.1):
        processes.stop(server)
        return None
    return server, port


# -- the table -------------------------------------------------------------------------


def table(results: dict[str, dict[str, Usage]]) -> str:
    rows = [["system", "process", "RSS MiB", "USS MiB", "PSS MiB"]]
    for system, roles in results.items():
        for role, value in roles.items():
            rows.append([system, role, f"{value.rss:.1f}", f"{value.uss:.1f}", f"{value.pss:.1f}"])
        rows.append([system, "**total**", f"{sum(v.rss for v in roles.values()):.1f}",
                     f"{sum(v.uss for v in roles.values()):.1f}", f"{sum(v.pss for v in roles.values()):.1f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(rows[0], widths)) + " |"]
    lines.append("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    lines += ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |" for row in rows[1:]]
    return "\n".join(lines)


def goals(results: dict[str, dict[str, Usage]]) -> str:
    lines = ["| jobd | goal | measured | met |", "|---|---|---|---|"]
    for name in (name for name in SYSTEMS if name.startswith("jobd") and name in results):
        lines += [f"| {name} {line}" for line in goals_of(results[name], results.get("huey", {}))]
    return "\n".join(lines)


def goals_of(jobd: dict[str, Usage], huey: dict[str, Usage]) -> list[str]:
    """Issue 19's goal 1 for one jobd system: rows of ``| goal | measured | met |``."""
    lines = []
    master = jobd.get("master")
    if master is not None:
        lines.append(f"| master USS ≤ {GOAL_MASTER_USS_MIB:.0f} MiB | {master.uss:.1f} MiB | "
                     f"{'yes' if master.uss <= GOAL_MASTER_USS_MIB else 'no'} |")
    jobd_workers = [value for role, value in jobd.items() if role.startswith("worker")]
    huey_workers = [value for role, value in huey.items() if role.startswith("worker")]
    if jobd and huey:
        ratio = sum(v.pss for v in jobd.values()) / sum(v.pss for v in huey.values())
        lines.append(f"| total PSS ≤ {GOAL_TOTAL_PSS_RATIO}× Huey's | {ratio:.2f}× "
                     f"({sum(v.pss for v in jobd.values()):.1f} vs {sum(v.pss for v in huey.values()):.1f} MiB) | "
                     f"{'yes' if ratio <= GOAL_TOTAL_PSS_RATIO else 'no'} |")
    if jobd_workers and huey_workers:
        worst = max(v.uss for v in jobd_workers)
        limit = statistics.median(v.uss for v in huey_workers) + GOAL_WORKER_USS_MARGIN_MIB
        lines.append(f"| each worker's USS ≤ Huey's worker's + {GOAL_WORKER_USS_MARGIN_MIB:.0f} MiB | "
                     f"largest {worst:.1f} MiB vs limit {limit:.1f} MiB | {'yes' if worst <= limit else 'no'} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of 1,000 jobs (a smoke test)")
    parser.add_argument("--jobs", type=int, help="no-op jobs per run (default 10,000; --quick: 1,000)")
    parser.add_argument("--runs", type=int, help="runs per system, medians reported (default 3; --quick: 1)")
    parser.add_argument("--only", default=",".join(SYSTEMS), help=f"comma-separated systems of {', '.join(SYSTEMS)}")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port of a loopback Redis for Huey")
    options = parser.parse_args()
    jobs = options.jobs or (1_000 if options.quick else 10_000)
    runs = options.runs or (1 if options.quick else 3)
    names = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    host, _, port = options.redis.partition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--redis must be a loopback address")

    root = Path(tempfile.mkdtemp(prefix="jobd-footprint-", dir="/tmp"))
    redis_server: subprocess.Popen[bytes] | None = None
    results: dict[str, dict[str, Usage]] = {}
    started = time.monotonic()
    try:
        available: dict[str, tuple[type[Adapter], Any]] = {}
        for name in names:
            load, roles_of = SYSTEMS[name]
            try:
                cls = load()
            except ImportError as error:
                print(f"skipped {name}: {error}", file=sys.stderr)
                continue
            problem = cls.missing()
            if problem:
                print(f"skipped {name}: {problem}", file=sys.stderr)
                continue
            available[name] = (cls, roles_of)
        redis_url = ""
        if "huey" in available:
            if redis_answers(host, int(port or 6379)):
                redis_url = f"redis://{host}:{port or 6379}/14"
            elif (started_redis := start_redis(root)) is not None:
                redis_server, redis_port = started_redis
                redis_url = f"redis://127.0.0.1:{redis_port}/0"
            else:
                print(f"skipped huey: no Redis at {options.redis} and no redis-server to start", file=sys.stderr)
                del available["huey"]
        per_run: dict[str, list[dict[str, Usage]]] = {name: [] for name in available}
        for run in range(runs):
            for name, (cls, roles_of) in available.items():
                print(f"run {run + 1}/{runs}: {name} …", file=sys.stderr, flush=True)
                per_run[name].append(one_run(cls, roles_of, jobs, redis_url, root))
        results = {name: medians(measured) for name, measured in per_run.items() if measured}
    finally:
        if redis_server is not None:
            processes.stop(redis_server)
        shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"footprint — {time.strftime('%Y-%m-%d %H:%M')}, {jobs:,} no-op jobs on 2 workers, medians of {runs} run(s), "
          f"measured {SETTLE_SECONDS:.0f} s after the last job; took {time.monotonic() - started:.0f}s")
    print()
    print(table(results))
    print()
    print(goals(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
