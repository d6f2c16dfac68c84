"""What open `jobd web` dashboards cost the master: its CPU with 0 and with N live pages.

Starts a real master (SQLite store) whose workers run jobs that report
progress every 20 ms, measures the master's CPU time (/proc utime+stime)
over a window with no dashboard, then starts `jobd web` with N clients
reading its live event stream (what N open pages do), and measures again;
the two phases alternate --rounds times. Also reports the web process's own
CPU and the frames each page received per second. Bounded in time; cleans
up every process it started (by pid).

    python bench/web_dashboards.py --pages 20 --seconds 15 --rounds 2
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
    options = parser.parse_args()

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
        for process in (web, master):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()


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
