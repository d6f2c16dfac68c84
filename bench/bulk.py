"""Bulk submit: jobd.submit_many against a jobd.submit loop and the peers' bulk APIs, in one run.

For each system a master (or the peer's workers: 2 processes each, as in
bench/peers.py) is started and warmed up first; then the jobs are submitted
in bulk while it runs, and two rates are measured:

* insert rate — jobs / seconds spent in the bulk call (jobd: committed to
  the store; peers: pushed to Redis);
* end-to-end rate — jobs / seconds from the start of the bulk call until
  every job ran (the no-op task's stamps; jobd: and the store counts them
  ``succeeded``).

Rows:

* jobd-sqlite / jobd-mariadb ``submit_many`` — N jobs (500,000; 20,000 with --quick);
* jobd-sqlite / jobd-mariadb ``submit`` loop — a smaller sample (10,000; 1,000), rates measured on it;
* celery ``group(...).apply_async()``, rq ``Queue.enqueue_many`` (one call),
  huey ``task.map`` (Huey has no bulk enqueue: ``map`` enqueues one by one),
  dramatiq ``group(...).run()`` — a sample of P jobs (50,000; 5,000): their
  workers run far fewer jobs a second than jobd's, and an end-to-end run cut
  at the deadline is reported with the jobs done so far (marked *).

    python bench/bulk.py                 # full run (~10 min)
    python bench/bulk.py --quick         # about a minute; jobd and whichever peers are installed
    python bench/bulk.py --quick --only jobd-sqlite
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent / "adapters"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import stamps  # noqa: E402
from base import Adapter  # noqa: E402
from peers import load_systems, machine, markdown_table, pick_redis_database, versions, wait_for  # noqa: E402

JOBD = ("jobd-sqlite", "jobd-mariadb")
PEERS = ("celery", "rq", "huey", "dramatiq")


@dataclass(frozen=True)
class Sizes:
    bulk_jobs: int  # jobd submit_many
    loop_jobs: int  # jobd submit loop
    peer_jobs: int  # each peer's bulk API
    deadline: float  # seconds an end-to-end run may take before it is cut
    rounds: int


FULL = Sizes(bulk_jobs=500_000, loop_jobs=10_000, peer_jobs=50_000, deadline=600, rounds=1)
QUICK = Sizes(bulk_jobs=20_000, loop_jobs=1_000, peer_jobs=5_000, deadline=60, rounds=1)


@dataclass
class Measured:
    system: str
    api: str
    jobs: int
    insert_rates: list[float] = field(default_factory=list)
    end_to_end_rates: list[float] = field(default_factory=list)
    partial: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def insert_rate(self) -> float | None:
        return statistics.median(self.insert_rates) if self.insert_rates else None

    @property
    def end_to_end_rate(self) -> float | None:
        return statistics.median(self.end_to_end_rates) if self.end_to_end_rates else None


# -- the bulk APIs ------------------------------------------------------------------


def jobd_submit_many(adapter: Any, count: int) -> None:
    import jobd
    from jobd_adapter import DAEMON, TASK

    result = jobd.submit_many(DAEMON, TASK, [{} for _ in range(count)], config=str(adapter.config))
    assert result.submitted == count


def jobd_submit_loop(adapter: Any, count: int) -> None:
    import jobd
    from jobd_adapter import DAEMON, TASK

    config = str(adapter.config)
    for _ in range(count):
        jobd.submit(DAEMON, TASK, {}, config=config)


def celery_group(adapter: Any, count: int) -> None:
    from celery import group

    group(adapter.work.s() for _ in range(count)).apply_async()


def rq_enqueue_many(adapter: Any, count: int) -> None:
    from rq import Queue

    import rq_adapter

    adapter.queue.enqueue_many([Queue.prepare_data(rq_adapter.work) for _ in range(count)])


def huey_map(adapter: Any, count: int) -> None:
    adapter.work.map([() for _ in range(count)])


def dramatiq_group(adapter: Any, count: int) -> None:
    from dramatiq import group

    group(adapter.work.message() for _ in range(count)).run()


BulkCall = Callable[[Any, int], None]
RUNS: dict[str, list[tuple[str, BulkCall, str]]] = {  # system → (api label, call, which size)
    "jobd-sqlite": [("submit_many", jobd_submit_many, "bulk_jobs"), ("submit loop", jobd_submit_loop, "loop_jobs")],
    "jobd-mariadb": [("submit_many", jobd_submit_many, "bulk_jobs"), ("submit loop", jobd_submit_loop, "loop_jobs")],
    "celery": [("group().apply_async()", celery_group, "peer_jobs")],
    "rq": [("Queue.enqueue_many", rq_enqueue_many, "peer_jobs")],
    "huey": [("task.map", huey_map, "peer_jobs")],
    "dramatiq": [("group().run()", dramatiq_group, "peer_jobs")],
}


# -- one measured run ------------------------------------------------------------------


def one_run(cls: type[Adapter], call: BulkCall, count: int, deadline: float, redis_url: str, root: Path, result: Measured) -> None:
    """Start and warm up the system, submit ``count`` jobs in bulk, wait until all ran; always stops what it started."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{cls.name[:6]}-", dir=root))
    adapter = cls(workdir, redis_url)
    failed = False
    try:
        adapter.setup()
        adapter.start_workers()
        adapter.submit(0.0)  # warm-up: the workers have imported the task and run one job
        if not wait_for(lambda: stamps.count(adapter.stamps) >= 1, time.monotonic() + 60, 0.05):
            raise RuntimeError(f"the warm-up job did not run in 60s (see {workdir}/workers.log)")
        total = count + 1
        began = time.perf_counter()
        call(adapter, count)
        inserted = time.perf_counter()
        cut = time.monotonic() + deadline
        done = wait_for(lambda: stamps.count(adapter.stamps) >= total, cut, 0.02)
        done = done and wait_for(lambda: adapter.finished_by_own_account(total), cut, 0.05)
        ended = time.perf_counter()
        ran = stamps.count(adapter.stamps) - 1
        result.insert_rates.append(count / (inserted - began))
        result.end_to_end_rates.append(ran / (ended - began))
        result.partial = result.partial or not done
    except Exception as error:  # one system failing must not hide the others' results
        failed = True
        result.errors.append(f"{type(error).__name__}: {error}")
    finally:
        try:
            adapter.stop_workers()
        finally:
            adapter.teardown()
            if not failed:
                shutil.rmtree(workdir, ignore_errors=True)


# -- the table ----------------------------------------------------------------------


def rate(value: float | None, partial: bool = False) -> str:
    return "-" if value is None else f"{value:,.0f}" + ("*" if partial else "")


def ratio(numerator: float | None, denominator: float | None) -> str:
    return "-" if not numerator or not denominator else f"{numerator / denominator:.1f}×"


def table(results: list[Measured]) -> str:
    by_key = {(r.system, r.api): r for r in results}
    headers = ["system", "bulk API", "jobs", "insert jobs/s", "end-to-end jobs/s",
               "submit_many ÷ this (insert)", "submit_many ÷ this (end-to-end)"]
    rows = []
    for r in results:
        if r.system in JOBD:
            reference = by_key.get((r.system, "submit_many"))
        else:  # a peer against jobd's slower store's submit_many: the harder comparison
            candidates = [by_key[(name, "submit_many")] for name in JOBD if (name, "submit_many") in by_key]
            reference = min(candidates, key=lambda m: m.insert_rate or 0.0) if candidates else None
        mine = reference is not None and reference is r
        rows.append([
            r.system, r.api, f"{r.jobs:,}", rate(r.insert_rate), rate(r.end_to_end_rate, r.partial),
            "1.0× (reference)" if mine else ratio(reference.insert_rate if reference else None, r.insert_rate),
            "" if mine else ratio(reference.end_to_end_rate if reference else None, r.end_to_end_rate),
        ])
    return markdown_table(headers, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: about a minute")
    parser.add_argument("--only", default="", help=f"comma-separated systems (default: all of {', '.join(RUNS)})")
    parser.add_argument("--rounds", type=int, help="repeat every run this many times (medians are printed)")
    parser.add_argument("--bulk-jobs", type=int, help="jobs per submit_many run")
    parser.add_argument("--loop-jobs", type=int, help="jobs per submit loop run")
    parser.add_argument("--peer-jobs", type=int, help="jobs per peer run")
    parser.add_argument("--deadline", type=float, help="seconds an end-to-end run may take before it is cut")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="host:port of the peers' Redis (loopback)")
    options = parser.parse_args()

    sizes = QUICK if options.quick else FULL
    sizes = Sizes(options.bulk_jobs or sizes.bulk_jobs, options.loop_jobs or sizes.loop_jobs,
                  options.peer_jobs or sizes.peer_jobs, options.deadline or sizes.deadline, options.rounds or sizes.rounds)
    names = [n.strip() for n in options.only.split(",") if n.strip()] or list(RUNS)
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; known: {', '.join(RUNS)}")
    systems, skipped = load_systems(names)
    host, _, port = options.redis.partition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--redis must be a loopback address")
    redis_url = ""
    if any(name in PEERS for name in systems):
        db = pick_redis_database(host, int(port or 6379), None)
        if db is None:
            for name in [n for n in systems if n in PEERS]:
                skipped[name] = f"no empty Redis database reachable at {options.redis}"
                del systems[name]
        else:
            redis_url = f"redis://{host}:{port or 6379}/{db}"
    for name, why in skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    if not systems:
        print("error: no system can run here", file=sys.stderr)
        return 1

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    root = Path(tempfile.mkdtemp(prefix="jobd-bulk-", dir="/tmp"))
    results = [
        Measured(name, api, getattr(sizes, size)) for name in systems for api, _call, size in RUNS[name]
    ]
    started = time.monotonic()
    try:
        for round_number in range(sizes.rounds):
            for result in results:
                call = next(c for api, c, _ in RUNS[result.system] if api == result.api)
                print(f"round {round_number + 1}/{sizes.rounds}: {result.system} {result.api} ({result.jobs:,} jobs) …",
                      file=sys.stderr, flush=True)
                one_run(systems[result.system], call, result.jobs, sizes.deadline, redis_url, root, result)
                for error in result.errors:
                    print(f"  {result.system}: {error}", file=sys.stderr)
    finally:
        if not any(r.errors for r in results):
            shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"bulk submit — {time.strftime('%Y-%m-%d %H:%M')}, {sizes.rounds} round(s), medians; 2 worker processes each, "
          f"running during the submit; no-op task; took {time.monotonic() - started:.0f}s")
    print(f"insert: jobs / seconds in the bulk call; end-to-end: jobs / seconds from the call's start until every job ran; "
          f"loops and peers are measured on a sample of the size shown; * = cut at the {sizes.deadline:.0f}s deadline "
          f"(rate of the jobs done by then)")
    print()
    print(table(results))
    print()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine().items()))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions(systems, redis_url).items()))
    failed = [f"{r.system} {r.api}: {error}" for r in results for error in r.errors]
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
