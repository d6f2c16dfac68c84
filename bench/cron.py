"""What jobd saves against cron: a fresh interpreter per run vs dispatch to a warm worker.

cron starts ``/bin/sh -c "python -m cron_task"`` for every run: a new
interpreter that imports the job's module (SQLAlchemy, PyMySQL, pydantic,
the HTTP client stack; see ``cron_task.py``) before doing a token amount of
work. jobd imports that module once per worker and then only dispatches.
Measured on this host, in this run:

* per job — one run at a time: cron's wall time from fork to exit; jobd's
  from ``jobd.submit`` to the store saying ``succeeded`` (durable outcome);
* per 1,000 jobs — cron: runs 2 at a time (like 2 workers), scaled to
  1,000; jobd: 1,000 jobs bulk inserted, until all ``succeeded``, 2 workers;
* CPU — user+system seconds of cron's children; of jobd's master, fork
  server and workers (its whole process session).

    python bench/cron.py            # ~1 minute
    python bench/cron.py --tiny     # a few seconds (the smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "adapters"))

import processes  # noqa: E402

DAEMON = "cron"
TASK = "cron.run"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cron_run(env: dict[str, str]) -> float:
    """One cron-style run; its wall time in seconds."""
    began = time.perf_counter()
    subprocess.run(["/bin/sh", "-c", f"{sys.executable} -m cron_task"], env=env, cwd=HERE, check=True, timeout=60)
    return time.perf_counter() - began


def measure_cron(sequential: int, batch: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    cron_run(env)  # the first run warms the page cache, as every later cron run finds it
    cpu_before = children_cpu()
    walls = [cron_run(env) for _ in range(sequential)]
    cpu_per_job = (children_cpu() - cpu_before) / sequential
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: cron_run(env), range(batch)))
    batch_wall = time.perf_counter() - began
    return {"job_wall_ms": statistics.median(walls) * 1000, "job_cpu_ms": cpu_per_job * 1000,
            "thousand_wall_s": batch_wall * 1000 / batch, "thousand_cpu_s": cpu_per_job * 1000}


def measure_jobd(sequential: int, batch: int) -> dict[str, float]:
    import jobd
    from jobd.api import wake_master
    from jobd.control import client
    from jobd.errors import JobdError
    from jobd.states import FINAL
    from jobd.store import NewJob, open_store

    root = Path(tempfile.mkdtemp(prefix="jobd-cron-", dir="/tmp"))
    config = root / "jobd.toml"
    url = f"sqlite:///{root / 'jobd.db'}"
    config.write_text(
        f'store = {json.dumps(url)}\nsocket = "jobd.sock"\npid_file = "jobd.pid"\nlog_file = "jobd.log"\n'
        f'log_level = "WARNING"\npython_path = [{json.dumps(str(HERE))}]\n'
        f'[daemons.{DAEMON}]\nworkers = 2\nmodules = []\ntasks = {{ {json.dumps(TASK)} = "cron_task:run_job" }}\n'
    )
    master = processes.start(
        [sys.executable, "-m", "jobd.cli.app", "start", "--foreground", "-c", str(config)],
        env=dict(os.environ), cwd=root, log=root / "master.out",
    )
    store = open_store(url)

    def idle_workers() -> int:
        try:
            workers = client.call(root / "jobd.sock", "status", timeout=5)["daemons"][DAEMON]["workers"]
        except (JobdError, OSError):
            return 0
        return sum(1 for worker in workers if worker["state"] == "idle")

    def wait(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline or master.poll() is not None:
                raise RuntimeError(f"jobd: {what} not within {seconds:.0f}s (see {root}/jobd.log, master.out)")
            time.sleep(0.001)

    try:
        wait(lambda: idle_workers() == 2, 60, "2 idle workers")
        jobd.submit(DAEMON, TASK, {}, config=str(config))  # warm the submit path, as a running app has it
        wait(lambda: store.jobs.counts().get(DAEMON, {}).get("succeeded", 0) == 1, 30, "the warm-up job")
        walls = []
        for _ in range(sequential):
            began = time.perf_counter()
            job_id = jobd.submit(DAEMON, TASK, {}, config=str(config))
            wait(lambda: store.jobs.get(job_id).state in FINAL, 30, f"job {job_id}")
            walls.append(time.perf_counter() - began)
        done_before = store.jobs.counts()[DAEMON].get("succeeded", 0)
        session = processes.session_pids(master.pid)
        cpu_before = sum(map(processes.cpu_seconds, session))
        began = time.perf_counter()
        store.jobs.insert_many([NewJob(DAEMON, TASK, {}) for _ in range(batch)])
        wake_master(root / "jobd.sock")
        wait(lambda: store.jobs.counts()[DAEMON].get("succeeded", 0) >= done_before + batch, 300, f"{batch} jobs")
        batch_wall = time.perf_counter() - began
        cpu = sum(map(processes.cpu_seconds, processes.session_pids(master.pid))) - cpu_before
    finally:
        processes.stop(master)
        store.dispose()
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    return {"job_wall_ms": statistics.median(walls) * 1000, "job_cpu_ms": cpu / batch * 1000,
            "thousand_wall_s": batch_wall * 1000 / batch, "thousand_cpu_s": cpu * 1000 / batch}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few runs only (seconds): for the smoke test")
    parser.add_argument("--runs", type=int, help="sequential runs for the per-job numbers (default 20; tiny 3)")
    parser.add_argument("--batch", type=int, help="jobs in the batch scaled to 1,000 (default: cron 100, jobd 1,000)")
    options = parser.parse_args()
    runs = options.runs or (3 if options.tiny else 20)
    cron_batch = options.batch or (4 if options.tiny else 100)
    jobd_batch = options.batch or (50 if options.tiny else 1000)

    cron = measure_cron(runs, cron_batch)
    warm = measure_jobd(runs, jobd_batch)
    rows = [("cron: fresh interpreter", cron), ("jobd: warm worker (SQLite)", warm)]
    headers = ("", "per job wall ms", "per job CPU ms", "1,000 jobs wall s", "1,000 jobs CPU s")
    keys = ("job_wall_ms", "job_cpu_ms", "thousand_wall_s", "thousand_cpu_s")
    body = [[name] + [f"{values[key]:,.1f}" for key in keys] for name, values in rows]
    body.append(["cron ÷ jobd"] + [f"{cron[key] / warm[key]:.1f}×" if warm[key] else "-" for key in keys])
    widths = [max(len(str(row[i])) for row in [headers, *body]) for i in range(len(headers))]
    print(f"cron vs jobd — {time.strftime('%Y-%m-%d %H:%M')}; per job: median of {runs} sequential runs; "
          f"1,000 jobs: cron {cron_batch} runs 2 at a time, jobd {jobd_batch} jobs on 2 workers, scaled to 1,000")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in body:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
