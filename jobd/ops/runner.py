"""Starting and stopping a master: foreground, daemonized, or by signal.

``jobd start`` validates everything (config, task imports, store) in the
terminal the operator is looking at, then detaches; it returns only when
the master says it is up, or prints why it is not.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from ..config import JobdConfig
from ..cpu_policy import master_yields_on_wakeup
from ..control import client
from ..errors import JobdError, MasterAlreadyRunning, MasterNotRunning
from ..checked_config import CheckedConfig, check_in_subprocess, encode_checked
from ..observability.job_logs import JobLogCapture
from ..observability.logs import configure_master_logging, shutdown_logging
from ..master import Master
from .pidfile import PidFile, running_pid
from ..store.errors import raised_as_unavailable
from ..store.handover import StoreHandover, handover_for

log = logging.getLogger("jobd.runner")


def preflight(config: JobdConfig) -> CheckedConfig:
    """Everything that must hold before a master starts; raises a JobdError naming the problem.

    Returns the config as a throwaway interpreter checked it, with its
    schedule and the tasks each daemon serves: what the master is given.
    """
    pid = running_pid(config.pid_file)
    if pid is not None:
        raise MasterAlreadyRunning(f"a master is already running (pid {pid}, pid file {config.pid_file})")
    from ..catalogue import publish_catalogue
    from ..store import open_store

    checked = check_in_subprocess(config.source)
    with raised_as_unavailable():
        store = open_store(checked.config.store)
        try:
            store.initialise()
            publish_catalogue(store, checked.config, checked.inventory)  # what submits check intents against from now on
        finally:
            store.dispose()
    return checked


def exec_master(checked: CheckedConfig, *, ready_fd: int | None = None) -> NoReturn:
    """Become the master: replace this process with ``jobd.ops.master_main`` for ``checked``.

    The same pid goes on (systemd's main process, the caller's child), in an
    interpreter that never imported the CLI. The checked config goes with it
    in an anonymous file (``jobd.checked_config``), so neither the config's
    validation (pydantic) nor task code is loaded again; the store's driver
    arguments go in another (``store.handover``), so the master never loads
    SQLAlchemy.
    """
    config = checked.config
    with raised_as_unavailable():
        handover = handover_for(config.store)
    checked_fd = _anonymous_file("jobd-config", encode_checked(checked))
    store_fd = _anonymous_file("jobd-store", handover.encode())
    arguments = [
        sys.executable, "-m", "jobd.ops.master_main", str(config.source),
        "--checked-fd", str(checked_fd), "--store-fd", str(store_fd),
    ]
    if ready_fd is not None:
        os.set_inheritable(ready_fd, True)
        arguments += ["--ready-fd", str(ready_fd)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, arguments)


def _anonymous_file(name: str, text: str) -> int:
    """A file in memory holding ``text``, open on a descriptor the exec'd master inherits."""
    fd = os.memfd_create(name, 0)  # inheritable: no MFD_CLOEXEC
    unwritten = memoryview(text.encode())
    while unwritten:
        unwritten = unwritten[os.write(fd, unwritten):]
    return fd


def run_foreground(checked: CheckedConfig, *, ready_fd: int | None = None, store: StoreHandover | None = None) -> int:
    """Run the master in this process until it stops; return its exit code.

    ``store``: how to reach the store (``jobd start`` works it out); without
    it the master works it out itself, loading SQLAlchemy to do so.
    """
    config = checked.config
    pid_file = PidFile(config.pid_file)

    def report(problem: str | None) -> None:
        if ready_fd is None:
            return
        try:
            os.write(ready_fd, (f"error: {problem}\n" if problem else "ok\n").encode())
            os.close(ready_fd)
        except OSError:
            pass

    try:
        pid_file.acquire()
    except JobdError as error:
        report(str(error))
        raise
    cpu_policy_kept = master_yields_on_wakeup()  # before its threads and the fork server start: they inherit it
    job_logs = JobLogCapture(config.job_log_max_lines, config.max_log_line_bytes)
    configure_master_logging(config, to_stderr=ready_fd is None, extra_handlers=[job_logs])
    if cpu_policy_kept:
        log.info("%s", cpu_policy_kept)
    try:
        master = Master(config, checked.inventory, schedule=checked.schedule, job_logs=job_logs, store=store)
        return master.run(ready=report)
    finally:
        pid_file.release()
        shutdown_logging()


def start_daemon(checked: CheckedConfig, *, timeout: float = 60.0) -> int:
    """Detach a master (double fork, new session); return its pid once it is ready."""
    config = checked.config
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first == 0:  # pragma: no cover - runs in the detached child
        os.close(read_fd)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        _detach_stdio(config)
        try:
            exec_master(checked, ready_fd=write_fd)
        except BaseException:
            logging.getLogger("jobd").exception("master failed")
        finally:
            os._exit(1)
    os.close(write_fd)
    os.waitpid(first, 0)
    answer = _read_answer(read_fd, timeout)
    if answer != "ok":
        raise JobdError(answer.removeprefix("error: ") or "the master exited before it was ready (see its log)")
    pid = running_pid(config.pid_file)
    return pid or 0


def _read_answer(fd: int, timeout: float) -> str:
    import select

    deadline = time.monotonic() + timeout
    chunks = b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            chunks += chunk
            if chunks.endswith(b"\n"):
                break
    finally:
        os.close(fd)
    return chunks.decode(errors="replace").strip()


def _detach_stdio(config: JobdConfig) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    if config.log_file is not None:
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(config.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    else:
        out = devnull
    os.dup2(out, 1)
    os.dup2(out, 2)


STOP_REPORT_INTERVAL_SECONDS = 2.0  # how often `jobd stop` looks at what the draining master still waits for


def stop_master(
    config: JobdConfig, *, wait: bool = True, timeout: float | None = None, report: Callable[[str], None] | None = None
) -> int:
    """Ask the master to drain and stop (SIGTERM); wait for it to exit. Returns its pid.

    ``report`` hears, whenever it changes, what the drain still waits for
    (``waiting for 2 running jobs (mailing: 2), up to 30s``), so an operator
    is not left staring at a silent command for the whole drain.
    """
    pid = running_pid(config.pid_file)
    if pid is None:
        raise MasterNotRunning(f"no master is running (pid file {config.pid_file} is not held)")
    os.kill(pid, signal.SIGTERM)
    if not wait:
        return pid
    limit = timeout if timeout is not None else max(config.drain_timeout_for(d) for d in config.daemons) + 30 if config.daemons else 60
    deadline = time.monotonic() + limit
    said: str | None = None
    look_at = time.monotonic() + 0.2  # a master with nothing running is gone before the first look
    while time.monotonic() < deadline:
        if running_pid(config.pid_file) is None:
            return pid
        if report is not None and time.monotonic() >= look_at:
            look_at = time.monotonic() + STOP_REPORT_INTERVAL_SECONDS
            line = drain_report(_status_quietly(config), config)
            if line is not None and line != said:
                report(line)
                said = line
        time.sleep(0.05)
    raise JobdError(f"master {pid} did not stop within {limit:.0f}s")


def drain_report(status: dict[str, Any] | None, config: JobdConfig) -> str | None:
    """What a draining master still waits for, in one line (None: it did not say)."""
    if status is None:
        return None
    running = {
        name: sum(1 for worker in pool.get("workers", []) if worker.get("job_id") is not None)  # busy or retiring
        for name, pool in status.get("daemons", {}).items()
    }
    running = {name: count for name, count in running.items() if count}
    if not running:
        return "waiting for the master to exit"
    total = sum(running.values())
    longest = max(config.drain_timeout_for(name) if name in config.daemons else config.drain_timeout for name in running)
    per_daemon = ", ".join(f"{name}: {count}" for name, count in sorted(running.items()))
    return f"waiting for {total} running job{'s' if total != 1 else ''} ({per_daemon}), up to {longest:g}s"


def _status_quietly(config: JobdConfig) -> dict[str, Any] | None:
    try:
        return client.call(config.socket, "status", timeout=2)
    except (JobdError, OSError):
        return None


__all__ = ["preflight", "exec_master", "run_foreground", "start_daemon", "stop_master", "Path"]
