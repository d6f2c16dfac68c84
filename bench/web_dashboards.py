"""What open `jobd web` dashboards cost the master: its CPU with 0 and with N live pages.

Starts a real master (SQLite store) whose workers run jobs that report
progress every 20 ms, measures the master's CPU time (/proc utime+stime)
over a window with no dashboard, then starts `jobd web` with N clients
reading its live event stream (what N open pages do), and measures again;
the two phases alternate --rounds times. Also reports the web process's own
CPU and the frames each page received per second. Bounded in time; cleans
up every process it started (by pid).

    python bench/web_dashboards.py --pages 20 --seconds 15 --rounds 2

``--busy`` measures a busy master instead: a separate process submits
no-op jobs at ``--rate`` jobs/s (batches every 0.1 s, each announced on the
wake-up socket) while the workers run them, so the master claims, hands out
and finishes a few hundred jobs a second in both phases; the jobs finished
per second in each phase are reported next to the CPU figures.

    python bench/web_dashboards.py --busy --rate 300 --pages 20 --seconds 15 --rounds 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TASK_MODULE = '''
import time, jobd

@jobd.task("bench.work")
def work(ctx, steps: int = 100) -> int:
    for step in range(steps):
        time.sleep(0.02)
        ctx.progress(step + 1, steps, f"step {step + 1} of {steps}")
    return steps


@jobd.task("bench.noop")
def noop(ctx) -> None:
    return None
'''

SUBMIT_LOOP = '''
import sys, time
from pathlib import Path
from jobd.store import NewJob, open_store
from jobd.handoff.submit_side import announce

url, socket, rate, stop = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
store = open_store(url)
step, sent, started = 0.1, 0, time.monotonic()
while not stop.exists():
    due = int(rate * (time.monotonic() - started)) - sent
    if due > 0:
        store.jobs.insert_many([NewJob("busy", "bench.noop", {}) for _ in range(due)])
        announce(socket, "busy")
        sent += due
    time.sleep(step)
print(sent)
'''


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


class Page(threading.Thread):
    """One open dashboard: reads /api/v1/live and counts frames."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.frames = port, stop, 0

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        connection.request("GET", "/api/v1/live")
        response = connection.getresponse()
        while not self.stop.is_set():
            line = response.readline()
            if not line:
                break
            if line.startswith(b"event: view"):
                self.frames += 1
        connection.close()


def measure(pid: int, seconds: float) -> float:
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--busy", action="store_true", help="a steady load of short no-op jobs instead of long progress jobs")
    parser.add_argument("--rate", type=float, default=300.0, help="--busy: jobs submitted per second")
    options = parser.parse_args()
    if options.busy:
        return busy(options)

    root = Path(tempfile.mkdtemp(prefix="jobd-webbench-", dir="/tmp"))
    (root / "bench_web_tasks.py").write_text(TASK_MODULE)
    (root / "jobd.toml").write_text(
        f'store = "sqlite:///{root}/jobd.db"\nsocket = "jobd.sock"\npid_file = "jobd.pid"\nlog_file = "jobd.log"\n'
        f'python_path = ["{root}"]\n[daemons.busy]\nworkers = {options.workers}\nmodules = ["bench_web_tasks"]\n'
    )
    env = {**os.environ, "JOBD_CONFIG": str(root / "jobd.toml")}
    jobd = [sys.executable, "-m", "jobd.cli.app"]
    master = subprocess.Popen([*jobd, "start", "--foreground"], env=env, cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    web: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    try:
        wait_for(lambda: (root / "jobd.sock").exists(), 60, "the master")
        from jobd.store import NewJob, open_store

        store = open_store(f"sqlite:///{root}/jobd.db")
        total = int(options.workers * (options.seconds * 2 * options.rounds + 30) / 2) + 10
        for _ in range(total):
            store.jobs.insert(NewJob("busy", "bench.work", {"steps": 100}))
        time.sleep(3)  # workers busy
        port = free_port()
        results: dict[str, list[float]] = {"without": [], "with": [], "web": []}
        pages: list[Page] = []
        for _ in range(options.rounds):
            results["without"].append(measure(master.pid, options.seconds))
            if web is None:
                web = subprocess.Popen([*jobd, "web", "--bind", f"127.0.0.1:{port}"], env=env, cwd=root,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for(lambda: _answers(port), 30, "jobd web")
            pages = [Page(port, stop) for _ in range(options.pages)]
            for page in pages:
                page.start()
            time.sleep(1)
            web_cpu = cpu_seconds(web.pid)
            started = time.monotonic()
            results["with"].append(measure(master.pid, options.seconds))
            results["web"].append(100.0 * (cpu_seconds(web.pid) - web_cpu) / (time.monotonic() - started))
            frames = sum(page.frames for page in pages) / len(pages) / (time.monotonic() - started + 1)
            stop.set()
            for page in pages:
                page.join(timeout=10)
            stop.clear()
        without = sum(results["without"]) / len(results["without"])
        with_pages = sum(results["with"]) / len(results["with"])
        summary = {
            "pages": options.pages, "seconds": options.seconds, "rounds": options.rounds,
            "master_cpu_percent_without": round(without, 2), "master_cpu_percent_with": round(with_pages, 2),
            "increase_points": round(with_pages - without, 2),
            "increase_relative_percent": round(100 * (with_pages - without) / without, 1) if without else None,
            "web_cpu_percent": round(sum(results["web"]) / len(results["web"]), 2),
            "frames_per_page_per_second": round(frames, 2), "rounds_raw": results,
        }
        print(json.dumps(summary, indent=2))
        return 0
    finally:
        stop.set()
        _stop(web, master)


def _stop(*processes: "subprocess.Popen[bytes] | None") -> None:
    """End what the bench started, by pid: SIGTERM (a master drains), SIGKILL after a minute."""
    for process in processes:
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def finished(store_url: str) -> int:
    """Jobs that ended (the rate the master sustains is its difference over a window)."""
    import sqlalchemy as sa

    from jobd.store import open_store

    store = open_store(store_url)
    try:
        jobs = store.jobs.table
        with store.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).where(jobs.c.state.in_(["succeeded", "dead"]))).scalar() or 0)
    finally:
        store.dispose()


def busy(options: argparse.Namespace) -> int:
    """N pages on a master that runs --rate no-op jobs a second: its CPU with and without them."""
    root = Path(tempfile.mkdtemp(prefix="jobd-webbench-", dir="/tmp"))
    (root / "bench_web_tasks.py").write_text(TASK_MODULE)
    (root / "submit_loop.py").write_text(SUBMIT_LOOP)
    store_url = f"sqlite:///{root}/jobd.db"
    (root / "jobd.toml").write_text(
        f'store = "{store_url}"\nsocket = "jobd.sock"\npid_file = "jobd.pid"\nlog_file = "jobd.log"\n'
        f'python_path = ["{root}"]\npoll_interval = 0.1\n'
        f'[daemons.busy]\nworkers = {options.workers}\nmodules = ["bench_web_tasks"]\n'
    )
    env = {**os.environ, "JOBD_CONFIG": str(root / "jobd.toml")}
    jobd = [sys.executable, "-m", "jobd.cli.app"]
    master = subprocess.Popen([*jobd, "start", "--foreground"], env=env, cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    web: subprocess.Popen[bytes] | None = None
    submitter: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    stop_file = root / "stop-submitting"
    try:
        wait_for(lambda: (root / "jobd.sock").exists(), 60, "the master")
        submitter = subprocess.Popen([sys.executable, str(root / "submit_loop.py"), store_url, str(root / "jobd.sock"),
                                      str(options.rate), str(stop_file)], env=env, cwd=root, stdout=subprocess.PIPE)
        time.sleep(5)  # the load settles
        port = free_port()
        results: dict[str, list[float]] = {"without": [], "with": [], "web": [], "jobs_per_second_without": [],
                                           "jobs_per_second_with": [], "frames_per_page_per_second": []}
        for _ in range(options.rounds):
            done, started = finished(store_url), time.monotonic()
            results["without"].append(measure(master.pid, options.seconds))
            results["jobs_per_second_without"].append((finished(store_url) - done) / (time.monotonic() - started))
            if web is None:
                web = subprocess.Popen([*jobd, "web", "--bind", f"127.0.0.1:{port}"], env=env, cwd=root,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_for(lambda: _answers(port), 30, "jobd web")
            pages = [Page(port, stop) for _ in range(options.pages)]
            for page in pages:
                page.start()
            time.sleep(1)
            web_cpu, done, started = cpu_seconds(web.pid), finished(store_url), time.monotonic()
            results["with"].append(measure(master.pid, options.seconds))
            elapsed = time.monotonic() - started
            results["jobs_per_second_with"].append((finished(store_url) - done) / elapsed)
            results["web"].append(100.0 * (cpu_seconds(web.pid) - web_cpu) / elapsed)
            results["frames_per_page_per_second"].append(sum(page.frames for page in pages) / len(pages) / (elapsed + 1))
            stop.set()
            for page in pages:
                page.join(timeout=10)
            stop.clear()
        stop_file.touch()
        submitted = int((submitter.communicate(timeout=30)[0] or b"0").strip() or 0)

        def mean(key: str) -> float:
            return sum(results[key]) / len(results[key])

        without, with_pages = mean("without"), mean("with")
        summary = {
            "mode": "busy", "rate_asked": options.rate, "submitted": submitted, "pages": options.pages,
            "seconds": options.seconds, "rounds": options.rounds, "workers": options.workers,
            "jobs_per_second_without": round(mean("jobs_per_second_without"), 1),
            "jobs_per_second_with": round(mean("jobs_per_second_with"), 1),
            "master_cpu_percent_without": round(without, 2), "master_cpu_percent_with": round(with_pages, 2),
            "increase_points": round(with_pages - without, 2),
            "ratio_with_to_without": round(with_pages / without, 3) if without else None,
            "increase_relative_percent": round(100 * (with_pages - without) / without, 1) if without else None,
            "web_cpu_percent": round(mean("web"), 2),
            "frames_per_page_per_second": round(mean("frames_per_page_per_second"), 2),
            "rounds_raw": {key: [round(value, 2) for value in values] for key, values in results.items()},
        }
        print(json.dumps(summary, indent=2))
        return 0
    finally:
        stop.set()
        stop_file.touch()
        _stop(submitter, web, master)


def _answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/api/v1/openapi.json")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
