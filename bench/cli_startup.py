"""How long the jobd commands an operator types take, whole process, beside ``rq info``.

Issue 19's goal: ``jobd status --json``, ``jobd trigger`` and ``jobd jobs -n
20`` at most 1.2× the wall time of ``rq info`` on the same machine (median of
10). Each command runs as the user runs it — the installed console script,
a fresh interpreter every time — against a throw-away deployment (SQLite
store, one daemon, 200 jobs); ``status`` (tables and ``--json``), ``jobs``, ``job`` and
``trigger`` are timed with the master running and with it stopped (``status DAEMON``
with it running), and
``trigger`` also once the task catalogue is published (``jobd check``; a
master's start does it too), which a submit checks against instead of
importing the daemon's task code. ``rq info`` asks a Redis holding one queue of
200 jobs: a ``redis-server`` this script starts on a free loopback port
(or ``--redis HOST:PORT``, an empty database there) and stops by pid.

jobd's code is byte-compiled first, as an installed copy is (an editable
install where PYTHONDONTWRITEBYTECODE is set would compile it in every
command). Rounds alternate the commands, so a machine that gets busier mid-run slows
every row alike. The table prints medians, the fastest run and the ratio
of each median to ``rq info``'s.

    python bench/cli_startup.py               # 10 runs of each
    python bench/cli_startup.py --runs 20 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TASKS = '''import jobd


@jobd.task("bench.noop")
def noop(ctx, n: int = 0) -> None:
    pass
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"cli_startup: timed out waiting for {what}")
        time.sleep(0.05)


def run(command: list[str], cwd: Path) -> float:
    """Wall time of one command, start to exit; a command that fails stops the benchmark."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"cli_startup: {' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
    return elapsed


class Redis:
    """A redis-server of our own (no persistence) on a free loopback port, or one given with --redis."""

    def __init__(self, address: str | None, root: Path) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        if address is None:
            server = shutil.which("redis-server")
            if server is None:
                raise SystemExit("cli_startup: redis-server is not installed (or pass --redis HOST:PORT)")
            port = free_port()
            self.process = subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(root)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.url = f"redis://127.0.0.1:{port}/0"
        else:
            self.url = f"redis://{address}/14"
        import redis

        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), 10, "redis-server")
        if address is not None and client.dbsize():
            raise SystemExit(f"cli_startup: database 14 at {address} is not empty; refusing to touch it")
        from rq import Queue

        queue = Queue("bench", connection=client)
        for n in range(200):
            queue.enqueue("os.getpid", job_id=f"bench-{n}")
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        else:
            import redis

            redis.Redis.from_url(self.url).flushdb()


def _pings(client: object) -> bool:
    try:
        return bool(client.ping())  # type: ignore[attr-defined]
    except Exception:
        return False


def compiled_like_an_install() -> None:
    """Byte-compile jobd's code, as ``pip install`` does for an installed package.

    A checkout installed with ``pip install -e`` writes its bytecode on first
    import, and never where PYTHONDONTWRITEBYTECODE is set: every command
    would then compile jobd again, 0.1–0.3 s that no installed copy pays
    (rq's code, in site-packages, was compiled when it was installed).
    """
    import compileall

    import jobd.cli
    import jobd.migrations

    for package in (jobd, jobd.cli, jobd.migrations):
        compileall.compile_dir(str(Path(package.__file__).parent), quiet=1)


def deployment(root: Path) -> Path:
    """A one-daemon deployment on SQLite with 200 finished and waiting jobs; returns its jobd.toml."""
    (root / "benchtasks.py").write_text(TASKS)
    config = root / "jobd.toml"
    config.write_text(
        'store = "sqlite:///jobd.db"\nsocket = "jobd.sock"\npid_file = "jobd.pid"\nlog_file = "jobd.log"\n'
        'python_path = ["."]\n\n[daemons.main]\nworkers = 1\nmodules = ["benchtasks"]\n'
    )
    run([str(BIN / "jobd"), "init", "-c", str(config)], root)
    sys.path.insert(0, str(root))
    import jobd

    for n in range(200):
        jobd.submit("main", "bench.noop", {"n": n}, config=config)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--redis", help="HOST:PORT of a Redis to use (database 14, must be empty) instead of starting one")
    parser.add_argument("--json", type=Path, help="also write the timings here")
    options = parser.parse_args()
    compiled_like_an_install()
    root = Path(tempfile.mkdtemp(prefix="jobd-cli-startup-"))
    redis = Redis(options.redis, root)
    master_started = False
    try:
        config = deployment(root)
        jobd_command = [str(BIN / "jobd")]
        with_config = ["-c", str(config)]
        commands = {
            "rq info": [str(BIN / "rq"), "info", "--url", redis.url],
            "jobd status --json (master stopped)": [*jobd_command, "status", "--json", *with_config],
            "jobd status (master stopped)": [*jobd_command, "status", *with_config],
            "jobd jobs -n 20": [*jobd_command, "jobs", "-n", "20", *with_config],
            "jobd job ID": [*jobd_command, "job", "1", *with_config],
            "jobd trigger": [*jobd_command, "trigger", "main", "bench.noop", "--arg", "n=1", *with_config],
            "jobd --help": [*jobd_command, "--help"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(options.runs):
            for name, command in commands.items():
                times[name].append(run(command, root))
        # A store whose task catalogue is published, as after any master's start or `jobd check`: a
        # submit checks its intent against it; until then it imports the daemon's task code instead.
        run([*jobd_command, "check", *with_config], root)
        published = "jobd trigger (catalogue published)"
        times[published] = []
        for _ in range(options.runs):
            times["rq info"].append(run(commands["rq info"], root))
            times[published].append(run(commands["jobd trigger"], root))
        run([*jobd_command, "start", *with_config], root)
        master_started = True
        with_master = {  # jobs, job and status (tables, --json, one daemon) are answered by the master when one runs
            "jobd status --json (master running)": [*jobd_command, "status", "--json", *with_config],
            "jobd status (master running)": commands["jobd status (master stopped)"],
            "jobd status main (master running)": [*jobd_command, "status", "main", *with_config],
            "jobd jobs -n 20 (master running)": commands["jobd jobs -n 20"],
            "jobd job ID (master running)": commands["jobd job ID"],
            "jobd trigger (master running)": commands["jobd trigger"],
        }
        times.update({name: [] for name in with_master})
        for _ in range(options.runs):
            times["rq info"].append(run(commands["rq info"], root))
            for name, command in with_master.items():
                times[name].append(run(command, root))
    finally:
        if master_started:
            subprocess.run([str(BIN / "jobd"), "stop", "-c", str(root / "jobd.toml")], cwd=root, capture_output=True, timeout=120)
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)
    report(times, options.runs)
    if options.json:
        options.json.write_text(json.dumps({"runs": options.runs, "cpus": os.cpu_count(), "seconds": times}, indent=2))


def report(times: dict[str, list[float]], runs: int) -> None:
    baseline = statistics.median(times["rq info"])
    print(f"wall time per command, whole process (median of {runs}; rq info: median of {len(times['rq info'])})")
    print(f"{'command':<40} {'median s':>9} {'fastest s':>10} {'× rq info':>10}")
    for name, found in sorted(times.items(), key=lambda item: (item[0] != "rq info", item[0])):
        median = statistics.median(found)
        print(f"{name:<40} {median:>9.3f} {min(found):>10.3f} {median / baseline:>10.2f}")


if __name__ == "__main__":
    main()
