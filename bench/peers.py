"""jobd against Celery, RQ, Huey and Dramatiq: the same workloads, side by side, in one run.

Each system runs 2 worker processes on this host, against its usual broker
(jobd: its SQLite or MariaDB store; the peers: Redis on 127.0.0.1:6379 in a
database of their own). Workloads:

* throughput — N no-op jobs enqueued in bulk, then the workers are started;
  jobs/s from the first task start to the moment all are done (jobd: the
  store counts them ``succeeded``);
* durability cost — the same with tasks that sleep 10 ms (fewer jobs: with
  2 workers the ideal is 200 jobs/s, so the efficiency is shown);
* submit loop — jobs submitted one at a time, as an application does
  (``jobd.submit``; the peers' own enqueue call), with no worker running:
  what one submit costs the application. With jobd-mariadb in the run, each
  round also times MariaDB alone committing one-row INSERTs in a loop, and
  the table is followed by that floor and every submit loop's ratio to it:
  no loop of submits that are durable when they return goes faster on
  that server;
* latency — jobs submitted one at a time at a steady rate on an idle
  system; submit→start and submit→finish p50/p99 from timestamps the task
  records;
* memory — RSS of the supervisor side (the process started plus its
  non-worker helpers; brokers are not counted) and of each worker, at rest
  (idle, warmed up) and after the throughput run.

Rounds are repeated (systems in a rotated order each round) and medians
printed, with ratios to jobd on SQLite. Every wait has a deadline; every
process is started in its own session and killed by process group;
every namespace (SQLite file, MariaDB database, Redis key prefix) is
created for one run and removed after it.

    python bench/peers.py                   # full run, 3 rounds (~15 min)
    python bench/peers.py --quick           # about a minute
    python bench/peers.py --only jobd-sqlite,celery --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "adapters"))

import processes  # noqa: E402
import stamps  # noqa: E402
from base import WORKERS, Adapter  # noqa: E402

SYSTEMS = {  # name → (module, class); each module reads alone
    "jobd-sqlite": ("jobd_adapter", "JobdAdapter"),
    "jobd-mariadb": ("jobd_adapter", "JobdMariaDBAdapter"),
    "celery": ("celery_adapter", "CeleryAdapter"),
    "rq": ("rq_adapter", "RQAdapter"),
    "huey": ("huey_adapter", "HueyAdapter"),
    "dramatiq": ("dramatiq_adapter", "DramatiqAdapter"),
}
REFERENCE = "jobd-sqlite"
SLEEP_SECONDS = 0.010
WARM_UP_JOBS = 5


@dataclass(frozen=True)
class Sizes:
    throughput_jobs: int
    sleep_jobs: int
    latency_jobs: int
    latency_rate: float  # submits per second
    submit_jobs: int  # submits in the submit loop
    run_deadline: float  # seconds a throughput run may take before it is cut (and marked partial)
    rounds: int


FULL = Sizes(throughput_jobs=20_000, sleep_jobs=2_000, latency_jobs=500, latency_rate=50, submit_jobs=5_000, run_deadline=60, rounds=3)
QUICK = Sizes(throughput_jobs=1_000, sleep_jobs=100, latency_jobs=50, latency_rate=50, submit_jobs=300, run_deadline=15, rounds=1)


@dataclass
class Measured:
    """One system's results in one round; None where the workload did not run."""

    throughput: float | None = None
    throughput_partial: bool = False
    enqueue_rate: float | None = None
    submit_rate: float | None = None  # one submit at a time, no worker running
    sleep_throughput: float | None = None
    sleep_partial: bool = False
    start_p50: float | None = None  # milliseconds
    start_p99: float | None = None
    finish_p50: float | None = None
    finish_p99: float | None = None
    latency_lost: int = 0
    supervisor_rss_rest: float | None = None  # MiB
    worker_rss_rest: float | None = None
    supervisor_rss_after: float | None = None
    worker_rss_after: float | None = None
    errors: list[str] = field(default_factory=list)


# -- measuring one system -------------------------------------------------------


def wait_for(condition: Any, deadline: float, interval: float = 0.02) -> bool:
    """Poll ``condition`` until true or the monotonic ``deadline``; return whether it held."""
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def memory(adapter: Adapter) -> tuple[float | None, float | None]:
    """(supervisor-side RSS summed, mean RSS per worker) in MiB."""
    supervisor, workers = adapter.roles()
    supervisor_rss = [rss for rss in map(processes.rss_mb, supervisor) if rss is not None]
    worker_rss = [rss for rss in map(processes.rss_mb, workers) if rss is not None]
    return (
        sum(supervisor_rss) if supervisor_rss else None,
        statistics.mean(worker_rss) if worker_rss else None,
    )


def run_throughput(adapter: Adapter, count: int, seconds: float, deadline_seconds: float) -> tuple[float, bool, float, tuple]:
    """Bulk enqueue, start workers, wait for all; (jobs/s, partial?, enqueue jobs/s, memory after)."""
    began = time.perf_counter()
    adapter.enqueue_bulk(count, seconds)
    enqueue_rate = count / (time.perf_counter() - began)
    adapter.start_workers()
    deadline = time.monotonic() + deadline_seconds
    done = wait_for(lambda: stamps.count(adapter.stamps) >= count, deadline)
    done = done and wait_for(lambda: adapter.finished_by_own_account(count), deadline, interval=0.02)
    ended = time.time()
    lines = stamps.read(adapter.stamps)
    after = memory(adapter)
    if not lines:
        raise RuntimeError(f"no job ran within {deadline_seconds:.0f}s (see {adapter.workdir}/workers.log)")
    first_start = min(started for _submitted, started, _ended in lines)
    return len(lines) / (ended - first_start), not done, enqueue_rate, after


def run_submit_loop(adapter: Adapter, count: int) -> float:
    """Submit ``count`` jobs one at a time, the way an application does, with no worker running; submits/s."""
    began = time.perf_counter()
    for _ in range(count):
        adapter.submit(0.0)
    return count / (time.perf_counter() - began)


def run_latency(adapter: Adapter, count: int, rate: float) -> tuple[list[float], list[float], int, tuple]:
    """Start workers, warm up, then submit one job every 1/rate s; (start ms, finish ms, lost, memory at rest)."""
    adapter.start_workers()
    for _ in range(WARM_UP_JOBS):
        adapter.submit(0.0)
    if not wait_for(lambda: stamps.count(adapter.stamps) >= WARM_UP_JOBS, time.monotonic() + 60, 0.05):
        raise RuntimeError(f"workers did not run the warm-up jobs in 60s (see {adapter.workdir}/workers.log)")
    wait_for(lambda: len(adapter.roles()[1]) >= WORKERS, time.monotonic() + 10, 0.1)
    time.sleep(1.0)  # idle: every worker settled
    at_rest = memory(adapter)
    interval = 1.0 / rate
    next_at = time.perf_counter()
    for _ in range(count):
        while (pause := next_at - time.perf_counter()) > 0:
            time.sleep(pause)
        adapter.submit(time.time())
        next_at += interval
    total = WARM_UP_JOBS + count
    wait_for(lambda: stamps.count(adapter.stamps) >= total, time.monotonic() + 30, 0.05)
    measured = [line for line in stamps.read(adapter.stamps) if line[0] > 0]
    to_start = [(started - submitted) * 1000 for submitted, started, _ in measured]
    to_finish = [(ended - submitted) * 1000 for submitted, _, ended in measured]
    return to_start, to_finish, count - len(measured), at_rest


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def one_run(cls: type[Adapter], workload: str, sizes: Sizes, redis_url: str, root: Path, result: Measured) -> None:
    """One workload on one system in a fresh namespace; always stops what it started."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{cls.name[:6]}-", dir=root))
    adapter = cls(workdir, redis_url)
    try:
        adapter.setup()
        if workload == "latency":
            to_start, to_finish, lost, rest = run_latency(adapter, sizes.latency_jobs, sizes.latency_rate)
            if to_start:
                result.start_p50, result.start_p99 = percentile(to_start, 0.5), percentile(to_start, 0.99)
                result.finish_p50, result.finish_p99 = percentile(to_finish, 0.5), percentile(to_finish, 0.99)
            result.latency_lost = lost
            result.supervisor_rss_rest, result.worker_rss_rest = rest
        elif workload == "submit":
            result.submit_rate = run_submit_loop(adapter, sizes.submit_jobs)
        elif workload == "throughput":
            rate, partial, enqueue_rate, after = run_throughput(adapter, sizes.throughput_jobs, 0.0, sizes.run_deadline)
            result.throughput, result.throughput_partial, result.enqueue_rate = rate, partial, enqueue_rate
            result.supervisor_rss_after, result.worker_rss_after = after
        else:
            rate, partial, _, _ = run_throughput(adapter, sizes.sleep_jobs, SLEEP_SECONDS, sizes.run_deadline)
            result.sleep_throughput, result.sleep_partial = rate, partial
    except Exception as error:  # one system failing must not hide the others' results
        result.errors.append(f"{workload}: {type(error).__name__}: {error}")
    finally:
        try:
            adapter.stop_workers()
        finally:
            adapter.teardown()
            if not result.errors:
                shutil.rmtree(workdir, ignore_errors=True)


# -- the run ----------------------------------------------------------------------


def load_systems(names: list[str]) -> tuple[dict[str, type[Adapter]], dict[str, str]]:
    """The adapter classes that can run here, and why the others cannot."""
    available: dict[str, type[Adapter]] = {}
    skipped: dict[str, str] = {}
    for name in names:
        module_name, class_name = SYSTEMS[name]
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except ImportError as error:
            skipped[name] = str(error)
            continue
        problem = cls.missing()
        if problem:
            skipped[name] = problem
        else:
            available[name] = cls
    return available, skipped


def pick_redis_database(host: str, port: int, wanted: int | None) -> int | None:
    """An empty Redis database to hold the peers' keys (RQ's cannot be prefixed), or None without Redis."""
    try:
        import redis
    except ImportError:
        return None
    candidates = [wanted] if wanted is not None else list(range(15, 7, -1))
    for db in candidates:
        client = redis.Redis(host=host, port=port, db=db, socket_connect_timeout=2)
        try:
            if client.dbsize() == 0:
                return db
        except redis.RedisError:
            return None
        finally:
            client.close()
    return None


def versions(systems: dict[str, type[Adapter]], redis_url: str | None) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for cls in systems.values():
        try:
            found.update(cls.versions())
        except Exception as error:  # a version we cannot read is not a reason to stop
            found[cls.name] = f"? ({error})"
    if redis_url and any(name not in ("jobd-sqlite", "jobd-mariadb") for name in systems):
        import redis

        client = redis.Redis.from_url(redis_url)
        found["redis server"] = str(client.info("server")["redis_version"])
        client.close()
    return found


def machine() -> dict[str, str]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"cpus": str(os.cpu_count()), "cpu model": model, "memory": f"{memory_kb / 1024 / 1024:.1f} GiB",
            "kernel": platform.release(), "load average": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def commit_floor_line(floor: float, results: dict[str, Measured]) -> str:
    """MariaDB's own commit rate beside the submit loops: what no durable one-at-a-time loop on it can pass."""
    compared = ", ".join(
        f"{name} {result.submit_rate / floor:.2f}×" for name, result in results.items() if result.submit_rate is not None
    )
    return (f"MariaDB alone, same run: {floor:,.0f} one-row autocommit INSERTs/s ({1e6 / floor:.0f} µs each), the most a loop "
            f"of submits durable on return can reach on this server; submit loops against it: {compared}")


def median_of(rounds: list[Measured]) -> Measured:
    merged = Measured()
    for name in Measured.__dataclass_fields__:
        values = [getattr(r, name) for r in rounds]
        if name == "errors":
            merged.errors = [error for r in rounds for error in r.errors]
        elif name.endswith("partial"):
            setattr(merged, name, any(values))
        elif name == "latency_lost":
            merged.latency_lost = sum(values)
        else:
            present = [value for value in values if value is not None]
            setattr(merged, name, statistics.median(present) if present else None)
    return merged


# -- the table ----------------------------------------------------------------------

COLUMNS = [  # header, field, format, higher is better?
    ("no-op jobs/s", "throughput", "{:,.0f}", True),
    ("10ms jobs/s", "sleep_throughput", "{:,.0f}", True),
    ("enqueue/s", "enqueue_rate", "{:,.0f}", True),
    ("submit loop/s", "submit_rate", "{:,.0f}", True),
    ("start p50 ms", "start_p50", "{:.1f}", False),
    ("start p99 ms", "start_p99", "{:.1f}", False),
    ("finish p50 ms", "finish_p50", "{:.1f}", False),
    ("finish p99 ms", "finish_p99", "{:.1f}", False),
    ("sup. RSS rest/after MiB", ("supervisor_rss_rest", "supervisor_rss_after"), "{:.0f}", False),
    ("worker RSS rest/after MiB", ("worker_rss_rest", "worker_rss_after"), "{:.0f}", False),
]


def cell(result: Measured, reference: Measured | None, column: tuple) -> str:
    _header, fields, fmt, _better = column
    if isinstance(fields, tuple):
        values = [getattr(result, f) for f in fields]
        return "/".join("-" if v is None else fmt.format(v) for v in values)
    value = getattr(result, fields)
    if value is None:
        return "-"
    text = fmt.format(value)
    if fields == "throughput" and result.throughput_partial or fields == "sleep_throughput" and result.sleep_partial:
        text += "*"
    if reference is not None and result is not reference and getattr(reference, fields):
        text += f" ({value / getattr(reference, fields):.2f}×)"
    return text


def table(results: dict[str, Measured]) -> str:
    reference = results.get(REFERENCE)
    headers = ["system"] + [column[0] for column in COLUMNS]
    rows = [[name] + [cell(result, reference, column) for column in COLUMNS] for name, result in results.items()]
    return markdown_table(headers, rows)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table with columns padded to their widest cell (bench/RESULTS.md takes it as printed)."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one round: about a minute")
    parser.add_argument("--only", default="", help=f"comma-separated systems (default: all of {', '.join(SYSTEMS)})")
    parser.add_argument("--rounds", type=int, help="repeat every workload on every system this many times")
    parser.add_argument("--workloads", default="latency,throughput,sleep,submit", help="comma-separated: latency,throughput,sleep,submit")
    parser.add_argument("--throughput-jobs", type=int)
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port of the peers' Redis (loopback)")
    parser.add_argument("--redis-db", type=int, help="Redis database for the peers (default: an empty one of 15..8)")
    parser.add_argument("--json", type=Path, help="also write the raw per-round results here")
    options = parser.parse_args()

    sizes = QUICK if options.quick else FULL
    if options.rounds or options.throughput_jobs:
        sizes = Sizes(**{**asdict(sizes), "rounds": options.rounds or sizes.rounds,
                         "throughput_jobs": options.throughput_jobs or sizes.throughput_jobs})
    names = [n.strip() for n in options.only.split(",") if n.strip()] or list(SYSTEMS)
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    workloads = [w.strip() for w in options.workloads.split(",") if w.strip()]

    systems, skipped = load_systems(names)
    host, _, port = options.redis.partition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--redis must be a loopback address")
    redis_url = ""
    if any(name not in ("jobd-sqlite", "jobd-mariadb") for name in systems):
        db = pick_redis_database(host, int(port or 6379), options.redis_db)
        if db is None:
            for name in [n for n in systems if not n.startswith("jobd")]:
                skipped[name] = f"no empty Redis database reachable at {options.redis}"
                del systems[name]
        else:
            redis_url = f"redis://{host}:{port or 6379}/{db}"
    if REFERENCE not in systems and REFERENCE in names:
        print(f"error: {REFERENCE} cannot run: {skipped.get(REFERENCE)}", file=sys.stderr)
        return 1
    for name, why in skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)

    # SIGTERM (a CI timeout) unwinds through the finally blocks that stop every process.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    root = Path(tempfile.mkdtemp(prefix="jobd-peers-", dir="/tmp"))
    per_round: dict[str, list[Measured]] = {name: [] for name in systems}
    floor_rates: list[float] = []  # MariaDB's own one-row commit loop, once a round
    started = time.monotonic()
    try:
        order = list(systems)
        for round_number in range(sizes.rounds):
            for name in order:
                result = Measured()
                for workload in workloads:
                    print(f"round {round_number + 1}/{sizes.rounds}: {name} {workload} …", file=sys.stderr, flush=True)
                    one_run(systems[name], workload, sizes, redis_url, root, result)
                per_round[name].append(result)
                for error in result.errors:
                    print(f"  {name}: {error}", file=sys.stderr)
            if "submit" in workloads and "jobd-mariadb" in systems:
                floor_rates.append(systems["jobd-mariadb"].commit_floor(sizes.submit_jobs))  # type: ignore[attr-defined]
            order = order[1:] + order[:1]  # nobody always runs first (or last) on a noisy machine
    finally:
        if not any(r.errors for rs in per_round.values() for r in rs):
            shutil.rmtree(root, ignore_errors=True)

    results = {name: median_of(rounds) for name, rounds in per_round.items() if rounds}
    print()
    print(f"jobd vs peers — {time.strftime('%Y-%m-%d %H:%M')}, {sizes.rounds} round(s), medians; "
          f"{WORKERS} worker processes each; took {time.monotonic() - started:.0f}s")
    print(f"throughput: {sizes.throughput_jobs:,} no-op jobs; durability cost: {sizes.sleep_jobs:,} jobs of "
          f"{SLEEP_SECONDS * 1000:.0f} ms (ideal {WORKERS / SLEEP_SECONDS:.0f}/s); submit loop: {sizes.submit_jobs:,} jobs; latency: {sizes.latency_jobs} jobs "
          f"at {sizes.latency_rate:.0f}/s; ratios (×) are to {REFERENCE}; * = cut at the {sizes.run_deadline:.0f}s deadline")
    print()
    print(table(results))
    print()
    if floor_rates:
        print(commit_floor_line(statistics.median(floor_rates), results))
        print()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions(systems, redis_url).items()))
    for name, result in results.items():
        if result.latency_lost:
            print(f"{name}: {result.latency_lost} latency job(s) did not finish in time")
    if options.json:
        options.json.write_text(json.dumps(
            {"sizes": asdict(sizes), "machine": machine(), "versions": versions(systems, redis_url),
             "rounds": {name: [asdict(r) for r in rounds] for name, rounds in per_round.items()},
             "medians": {name: asdict(r) for name, r in results.items()}}, indent=2))
    failed = [f"{name}: {error}" for name, result in results.items() for error in result.errors]
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
