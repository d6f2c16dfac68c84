"""The chaos soak's masters: real ``jobd start --foreground`` processes, killed and restarted by pid.

Each master has its own folder (config, control socket, pid file, log); all
share one store. Every process a master starts inherits ``$CHAOS_TOKEN``
(the soak's run id) and ``$CHAOS_MASTER`` (the master's incarnation, e.g.
``m1.3``), so the soak can find every process of its masters in /proc —
workers, fork servers — also after their master died, and report any left
behind. Nothing here signals a process group: a fault is one pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobd.control import client

TOKEN_ENV = "CHAOS_TOKEN"
MASTER_ENV = "CHAOS_MASTER"
LOG_ENV = "CHAOS_EXEC_LOG"


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    master: str  # the incarnation whose environment it carries
    command: str

    @property
    def role(self) -> str:
        if "resource_tracker" in self.command:
            return "resource tracker"
        if "forkserver" in self.command:
            return "worker or fork server"
        if "jobd.cli.app" in self.command:
            return "master"
        return "other"


def processes_of(token: str) -> list[ProcessInfo]:
    """Every live process whose environment carries ``CHAOS_TOKEN=token`` (zombies excluded)."""
    found = []
    marker = f"{TOKEN_ENV}={token}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if marker not in environ:
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] == "Z":
            continue
        master = next((item.split(b"=", 1)[1].decode() for item in environ if item.startswith(f"{MASTER_ENV}=".encode())), "?")
        found.append(ProcessInfo(pid, int(fields[1]), master, command))
    return found


def write_config(folder: Path, store_url: str, tasks_dir: Path, *, workers: int, heartbeat_lease: float) -> Path:
    """A master's jobd.toml: daemons ``work`` (with the 1-second schedule entry) and ``poison``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""\
store = {json.dumps(store_url)}
socket = "jobd.sock"
pid_file = "jobd.pid"
log_file = "jobd.log"
python_path = [{json.dumps(str(tasks_dir))}]
heartbeat_interval = 1
heartbeat_lease = {heartbeat_lease:g}
poll_interval = 0.2
drain_timeout = 5

[daemons.work]
workers = {workers}
modules = ["chaos_tasks"]
timeout = 60
max_attempts = 25
backoff_base = 1
backoff_max = 4

[daemons.poison]
workers = 1
modules = ["chaos_tasks"]
timeout = 60
max_attempts = 2
backoff_base = 1
backoff_max = 2

[schedules.entries.chaos-tick]
daemon = "work"
task = "chaos.tick"
every = "1s"
misfire = "catch_up"
max_catch_up = 1000
overlap = "allow"
"""
    path = folder / "jobd.toml"
    path.write_text(text)
    return path


@dataclass
class Master:
    """One master "host" of the soak: its folder, and its current process (if any)."""

    name: str
    folder: Path
    daemons: str  # $JOBD_RUN_DAEMONS
    token: str
    execution_log: Path
    process: subprocess.Popen[bytes] | None = None
    incarnation: int = 0
    restart_at: float | None = None  # monotonic time of a pending restart
    killed_by_us: bool = False
    exits: list[int] = field(default_factory=list)  # exit codes of exits the soak did not cause
    pid_labels: dict[int, str] = field(default_factory=dict)  # pid of each incarnation → its label

    @property
    def config(self) -> Path:
        return self.folder / "jobd.toml"

    @property
    def socket(self) -> Path:
        return self.folder / "jobd.sock"

    @property
    def label(self) -> str:
        return f"{self.name}.{self.incarnation}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start a new incarnation (its own session: a terminal's signals never reach it)."""
        self.incarnation += 1
        self.restart_at = None
        self.killed_by_us = False
        env = {
            **os.environ, "JOBD_CONFIG": str(self.config), "JOBD_RUN_DAEMONS": self.daemons,
            TOKEN_ENV: self.token, MASTER_ENV: self.label, LOG_ENV: str(self.execution_log),
        }
        with open(self.folder / "master.out", "ab") as output:
            output.write(f"--- {self.label} started at {time.time():.3f}\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jobd.cli.app", "start", "--foreground"],
                env=env, cwd=self.folder, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.pid_labels[self.process.pid] = self.label

    def kill_9(self) -> int | None:
        """``kill -9 PID`` of the master alone (never its group); reaps it. Returns the pid."""
        if not self.running():
            return None
        assert self.process is not None
        self.killed_by_us = True
        os.kill(self.process.pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a SIGKILLed process in D state: reap it later
            pass
        return self.process.pid

    def answers(self, timeout: float = 2.0) -> bool:
        try:
            client.call(self.socket, "ping", timeout=timeout)
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False
        return True

    def worker_pids(self, timeout: float = 2.0) -> list[tuple[int, str]]:
        """(pid, state) of this master's workers, as it reports them; [] when it does not answer."""
        try:
            status: dict[str, Any] = client.call(self.socket, "status", timeout=timeout)
        except Exception:  # noqa: BLE001
            return []
        return [
            (int(worker["pid"]), str(worker.get("state")))
            for daemon in status.get("daemons", {}).values()
            for worker in daemon.get("workers", [])
            if worker.get("pid")
        ]

    def note_exit(self) -> int | None:
        """If the process ended on its own since last asked, record and return its exit code."""
        if self.process is None or self.process.poll() is None or self.killed_by_us:
            return None
        code = self.process.returncode
        self.exits.append(code)
        self.killed_by_us = True  # recorded once
        return code


def stop_all(masters: list[Master], timeout: float) -> dict[str, str]:
    """SIGTERM every running master (its pid), wait up to ``timeout`` together, SIGKILL the rest.

    Returns how each ended: "stopped (exit N)", "killed: ignored SIGTERM for Ns", or "not running".
    """
    outcome: dict[str, str] = {}
    for master in masters:
        if master.running():
            assert master.process is not None
            master.killed_by_us = True
            os.kill(master.process.pid, signal.SIGTERM)
        else:
            outcome[master.name] = "not running"
    deadline = time.monotonic() + timeout
    for master in masters:
        if master.name in outcome or master.process is None:
            continue
        try:
            code = master.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            outcome[master.name] = f"stopped (exit {code})"
        except subprocess.TimeoutExpired:
            os.kill(master.process.pid, signal.SIGKILL)
            master.process.wait(timeout=10)
            outcome[master.name] = f"killed: ignored SIGTERM for {timeout:.0f}s"
    return outcome


def kill_leftovers(token: str, grace: float) -> list[ProcessInfo]:
    """Processes of the soak's masters still alive ``grace`` seconds from now; each is SIGKILLed by pid."""
    deadline = time.monotonic() + grace
    left = processes_of(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_of(token)
    for process in left:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left
