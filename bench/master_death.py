"""How fast a master's workers, and every process their tasks started, die after ``kill -9`` of the master's PID.

The goal: all of them gone within 1 s of the kill (DESIGN.md, invariant 9,
"workers never outlive their master"). tests/faults/test_master_death.py
checks that they die at all; this measures how fast.

Each round runs jobd the way an operator does, in a fresh folder: a
``jobd.toml`` (SQLite store, daemon ``main`` of 2 workers), ``jobd start
--foreground`` in a session of its own (as under systemd), and, once it
answers, two jobs submitted with ``jobd.submit``: a Python task that starts
a grandchild ``sleep 300`` and waits (bench/master_death_tasks.py), and a
shell task ``sleep 300 & …; sleep 300`` (a process group of its own). When
both run, the bench notes every process of the deployment (they carry the
round's token in their environment), kills the master's PID alone with
SIGKILL — never its group: what the OOM killer or ``kill -9 PID`` do — and
polls each noted process every 5 ms, for at most 10 s, until it is gone.

Reported, from the kill:

* until the last worker or task process (grandchild, shell, its children) is
  gone — the goal's number;
* until the fork server and multiprocessing's resource tracker are gone too
  (they run no task; they end a little later).

Exit status 0 when every round ran, whether or not it met the goal (a busy
machine makes rounds slower: the load average is printed beside the
figures); 1 when a round could not run, or a process outlived its master by
10 s. Every process a round starts is killed by pid at its end, and the
temporary folder removed.

    python bench/master_death.py                # 10 rounds
    python bench/master_death.py --rounds 1     # a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import jobd  # noqa: E402
from chaos_cluster import Master, ProcessInfo, kill_leftovers, processes_of  # noqa: E402

DAEMON = "main"
WORKERS = 2
PYTHON_TASK = "death.grandchild"
SHELL_TASK = "death.shell"
#: The shell task logs its own pid and its background child's; its foreground ``sleep`` is found by the token.
SHELL_COMMAND = 'echo "shell $$" >> "$CHAOS_EXEC_LOG"; sleep 300 & echo "shell $!" >> "$CHAOS_EXEC_LOG"; sleep 300'
GOAL_SECONDS = 1.0
BOUND_SECONDS = 10.0
POLL_SECONDS = 0.005
START_SECONDS = 60.0
#: Between "both jobs logged their pids" and the snapshot of the processes: the shell's last ``sleep`` starts.
SETTLE_SECONDS = 0.2
HELPER_ROLES = ("fork server", "resource tracker")
TASKS_LABEL = "workers + task processes"
ALL_LABEL = "all, with fork server + tracker"


class RoundFailed(Exception):
    """A round could not be run (not a missed goal)."""


@dataclass(frozen=True)
class Tracked:
    """A process noted before the kill: its role, and its start time (a reused pid is another process)."""

    pid: int
    role: str
    start_ticks: str


@dataclass
class Round:
    tasks_seconds: float | None  # kill → last worker or task process gone; None: one outlived the bound
    all_seconds: float | None  # … and the fork server and resource tracker
    last: str  # the role of the last worker or task process to go
    processes: int
    survivors: list[str]
    load: float  # 1-minute load average at the kill


def start_ticks(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat); None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == b"Z" else fields[19].decode()


def write_config(folder: Path) -> Path:
    path = folder / "jobd.toml"
    path.write_text(
        f"store = {json.dumps('sqlite:///' + str(folder / 'jobd.db'))}\n"
        'socket = "jobd.sock"\npid_file = "jobd.pid"\nlog_file = "jobd.log"\n'
        f"python_path = [{json.dumps(str(BENCH))}]\n"
        "poll_interval = 0.2\n"
        f"[daemons.{DAEMON}]\nworkers = {WORKERS}\nmodules = [\"master_death_tasks\"]\n"
        f"[daemons.{DAEMON}.shell.{json.dumps(SHELL_TASK)}]\ncommand = {json.dumps(SHELL_COMMAND)}\n"
    )
    return path


def wait_for_both_jobs(master: Master) -> tuple[list[int], int, list[int]]:
    """(worker pids, grandchild pid, shell pids) once both jobs run; RoundFailed after START_SECONDS."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if not master.running():
            raise RoundFailed(f"the master exited: {tail(master.folder / 'master.out')}")
        lines = master.execution_log.read_text().splitlines() if master.execution_log.exists() else []
        grandchildren = [int(line.split()[2]) for line in lines if line.startswith("grandchild ")]
        shells = [int(line.split()[1]) for line in lines if line.startswith("shell ")]
        workers = [pid for pid, _state in master.worker_pids()]
        if grandchildren and len(shells) >= 2 and len(workers) == WORKERS:
            return workers, grandchildren[0], shells
        time.sleep(0.1)
    raise RoundFailed(f"the two jobs did not start within {START_SECONDS:.0f}s: {tail(master.folder / 'master.out')}")


def survivor(process: Tracked) -> str:
    """A process still running at the bound, with its parent, process group and session (which worker's it is)."""
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return f"{process.role} {process.pid}"
    return f"{process.role} {process.pid} (parent {fields[1]}, group {fields[2]}, session {fields[3]})"


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else "(no output)"


def role_of(info: ProcessInfo, workers: list[int], grandchild: int, shells: list[int]) -> str:
    if info.pid in workers:
        return "worker"
    if info.role == "resource tracker":
        return "resource tracker"
    if info.role == "worker or fork server":
        return "fork server"
    if info.pid == grandchild:
        return "grandchild"
    if info.pid in shells:
        return "shell"
    return f"task process ({info.command.split(' ', 1)[0]})"


def watch(tracked: list[Tracked], killed_at: float) -> dict[int, float]:
    """Poll every process until it is gone (at most BOUND_SECONDS): pid → seconds from the kill to its end."""
    gone: dict[int, float] = {}
    deadline = killed_at + BOUND_SECONDS
    while True:
        now = time.monotonic()
        for process in tracked:
            if process.pid not in gone and start_ticks(process.pid) != process.start_ticks:
                gone[process.pid] = now - killed_at
        if len(gone) == len(tracked) or now > deadline:
            return gone
        time.sleep(POLL_SECONDS)


def run_round(folder: Path, number: int) -> Round:
    folder.mkdir()
    config = write_config(folder)
    token = f"death-{secrets.token_hex(6)}"
    master = Master(name=f"r{number}", folder=folder, daemons=DAEMON, token=token, execution_log=folder / "pids.log")
    try:
        master.start()
        deadline = time.monotonic() + START_SECONDS
        while not master.answers() and master.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not master.answers():
            raise RoundFailed(f"the master did not answer within {START_SECONDS:.0f}s: {tail(folder / 'master.out')}")
        jobd.submit(DAEMON, PYTHON_TASK, {"seconds": 300}, config=str(config))
        jobd.submit(DAEMON, SHELL_TASK, config=str(config))
        workers, grandchild, shells = wait_for_both_jobs(master)
        time.sleep(SETTLE_SECONDS)
        tracked = []
        for info in processes_of(token):
            ticks = start_ticks(info.pid)
            if info.pid != master.pid and ticks is not None:
                tracked.append(Tracked(info.pid, role_of(info, workers, grandchild, shells), ticks))
        missing = {*workers, grandchild, *shells} - {process.pid for process in tracked}
        if missing:
            raise RoundFailed(f"processes gone before the kill: {sorted(missing)}")
        load = os.getloadavg()[0]
        killed_at = time.monotonic()
        master.kill_9()
        gone = watch(tracked, killed_at)
        survivors = [survivor(process) for process in tracked if process.pid not in gone]
    finally:
        if master.running():
            master.kill_9()
        kill_leftovers(token, grace=0)
    task_processes = [process for process in tracked if process.role not in HELPER_ROLES]
    last = max(task_processes, key=lambda process: gone.get(process.pid, math.inf))
    return Round(
        tasks_seconds=None if any(p.pid not in gone for p in task_processes) else gone[last.pid],
        all_seconds=None if survivors else max(gone.values()),
        last=last.role, processes=len(tracked), survivors=survivors, load=load,
    )


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``share`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def milliseconds(seconds: float | None) -> str:
    return f"> {BOUND_SECONDS * 1000:,.0f}" if seconds is None else f"{seconds * 1000:,.0f}"


def rounds_table(rounds: list[Round]) -> Table:
    table = Table(title="each round (ms from the kill)")
    for column in ("round", TASKS_LABEL, "last to go", ALL_LABEL, "processes", "load 1 min"):
        table.add_column(column, justify="left" if column == "last to go" else "right")
    for number, measured in enumerate(rounds, 1):
        table.add_row(str(number), milliseconds(measured.tasks_seconds), measured.last, milliseconds(measured.all_seconds),
                      str(measured.processes), f"{measured.load:.2f}")
    return table


def summary_table(rounds: list[Round]) -> Table:
    table = Table(title=f"kill -9 of the master's PID → its processes gone (goal: {GOAL_SECONDS:g} s), ms")
    for column in ("gone", "rounds", "p50", "p90", "max", f"over {GOAL_SECONDS:g} s", f"alive at {BOUND_SECONDS:g} s"):
        table.add_column(column, justify="left" if column == "gone" else "right")
    for label, values in (
        (TASKS_LABEL, [r.tasks_seconds for r in rounds]),
        (ALL_LABEL, [r.all_seconds for r in rounds]),
    ):
        timed = [math.inf if value is None else value for value in values]
        table.add_row(label, str(len(timed)), milliseconds(finite(percentile(timed, 0.5))),
                      milliseconds(finite(percentile(timed, 0.9))), milliseconds(finite(max(timed))),
                      str(sum(value > GOAL_SECONDS for value in timed)), str(sum(math.isinf(value) for value in timed)))
    return table


def finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="master kills to measure (default 10)")
    options = parser.parse_args(argv)
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    # Piped to a file or a test, the tables keep one line per row (rich would wrap them at 80 columns).
    console, progress = Console() if sys.stdout.isatty() else Console(width=120), Console(stderr=True)
    load_before = load_average()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="jobd-death-", dir="/tmp"))
    rounds: list[Round] = []
    errors: list[str] = []
    try:
        for number in range(1, options.rounds + 1):
            measured = run_round(root / f"round-{number}", number)
            rounds.append(measured)
            progress.print(f"round {number}/{options.rounds}: workers + tasks {milliseconds(measured.tasks_seconds)} ms "
                           f"(last: {measured.last}), all {milliseconds(measured.all_seconds)} ms, load {measured.load:.2f}",
                           highlight=False)
            if measured.survivors:
                errors.append(f"round {number}: alive {BOUND_SECONDS:g} s after the master's kill: {', '.join(measured.survivors)}")
    except RoundFailed as failure:
        errors.append(f"round {len(rounds) + 1}: {failure}")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    console.print(f"master death — {time.strftime('%Y-%m-%d %H:%M')}, {len(rounds)} round(s), {WORKERS} workers, SQLite store, "
                  f"polled every {POLL_SECONDS * 1000:g} ms; jobd {version('jobd')}, Python {platform.python_version()}, "
                  f"{os.cpu_count()} CPU(s), Linux {platform.release()}; took {time.monotonic() - started:.0f} s",
                  highlight=False, soft_wrap=True)
    console.print(f"load average (1, 5, 15 min): {load_before} before, {load_average()} after", highlight=False, soft_wrap=True)
    if rounds:
        console.print(rounds_table(rounds))
        console.print(summary_table(rounds))
    for error in errors:
        console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
