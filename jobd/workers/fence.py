"""Fencing: a master never recovers a job while a process of the previous run may still be alive here.

The lifeline (``lifeline.py``) ends a dead master's workers within
milliseconds, but "within milliseconds" is not "before the next master
starts", and a worker whose watcher thread cannot run (a task holding the
GIL in C code) ends only through the kernel's parent-death signal. So the
master writes down, beside its control socket, every worker it starts: pid
plus start time (``/proc/PID/stat`` field 22), which together name one
process until the host reboots (the file also holds the boot id). A master
starting on the same socket first SIGKILLs every recorded process still
alive with that start time — and every process of its session, i.e. what
its task started — and waits until none runs. A pid that was recycled for
another process has another start time and is left alone.

Each worker also keeps a small ledger, ``<socket>.started-<pid>``: a ring of
the last jobs it began (job id, attempt), one ``pwrite`` to the page cache
before each task starts, no store write. A ``kill -9`` of the master leaves
both files intact, so the next master knows which of the dead master's
``running`` jobs a worker really began: the others (prefetched, waiting in a
worker's pipe, handed over by a submit) never ran, and their attempt is
given back instead of being charged for a run that never happened. After a
reboot (another boot id) nothing is known and every attempt stays charged.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import defaults
from . import sessions

log = logging.getLogger("jobd.fence")

BOOT_ID = "/proc/sys/kernel/random/boot_id"
RECORD_SUFFIX = ".fence"
LEDGER_INFIX = ".started-"
_SLOT = struct.Struct("<qq")  # job id, attempt
WAIT_INTERVAL_SECONDS = 0.01


@dataclass(frozen=True)
class WorkerRecord:
    pid: int
    start_time: int  # clock ticks after boot


@dataclass(frozen=True)
class RunRecord:
    """What a master wrote down about its run on this host: which master, which workers."""

    boot_id: str
    master_id: str
    master: WorkerRecord  # the master's own process
    workers: tuple[WorkerRecord, ...] = ()

    def to_text(self) -> str:
        return json.dumps({
            "boot_id": self.boot_id, "master": self.master_id, "master_process": [self.master.pid, self.master.start_time],
            "workers": [[worker.pid, worker.start_time] for worker in self.workers],
        }) + "\n"

    @classmethod
    def from_text(cls, text: str) -> RunRecord | None:
        """The record in ``text``, or None if it is not one (a torn or foreign file is no record)."""
        try:
            data = json.loads(text)
            workers = tuple(WorkerRecord(int(pid), int(start)) for pid, start in data["workers"])
            master_pid, master_start = data["master_process"]
            return cls(str(data["boot_id"]), str(data["master"]), WorkerRecord(int(master_pid), int(master_start)), workers)
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Fenced:
    """The outcome of fencing the previous run: its master, the jobs its workers began, who would not die."""

    master_id: str | None
    started: frozenset[tuple[int, int]] = frozenset()  # (job id, attempt) its workers began
    survivors: tuple[int, ...] = ()
    killed: int = 0
    master_alive: bool = False  # the previous master still runs: nothing was touched


def current_boot_id() -> str:
    try:
        return Path(BOOT_ID).read_text().strip()
    except OSError:
        return ""


def record_path(control_socket: Path) -> Path:
    return control_socket.with_name(control_socket.name + RECORD_SUFFIX)


def ledger_path(control_socket: Path, pid: int) -> Path:
    return control_socket.with_name(f"{control_socket.name}{LEDGER_INFIX}{pid}")


def unstarted(held: Iterable[tuple[int, int]], started: frozenset[tuple[int, int]]) -> list[int]:
    """The jobs among ``held`` (a dead master's running jobs, with their attempt) whose attempt no worker began."""
    return sorted(job_id for job_id, attempt in held if (job_id, attempt) not in started)


def targets(record: RunRecord, boot_id: str) -> list[WorkerRecord]:
    """The recorded workers that may still have processes running: all of them, if this is the same boot.

    A worker still alive with its recorded start time is one; a worker that is
    gone may have left its task's processes behind in its session. A record
    from another boot names nothing that runs now.
    """
    if not boot_id or record.boot_id != boot_id:
        return []
    return list(record.workers)


def _ours(worker: WorkerRecord, start_time_of: Callable[[int], int | None]) -> bool:
    """Whether ``worker``'s pid can still name its process or its session.

    It runs with its recorded start time, or it does not run at all (its
    session's members may: Linux does not reuse a pid while a session of that
    number has a member). A pid that runs with another start time was
    recycled, so its old session is empty: nothing there is ours.
    """
    now = start_time_of(worker.pid)
    return now is None or now == worker.start_time


def kill_run(workers: Iterable[WorkerRecord], start_time_of: Callable[[int], int | None] = sessions.start_time) -> int:
    """SIGKILL each recorded worker that still runs (same pid, same start time) and its session; return the count."""
    killed = 0
    for worker in workers:
        if not _ours(worker, start_time_of):
            continue
        if start_time_of(worker.pid) == worker.start_time:  # the worker itself (a session leader, but be sure)
            try:
                os.kill(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed += sessions.kill_session(worker.pid, spare=None, started_since=worker.start_time)
    return killed


def still_running(workers: Iterable[WorkerRecord], start_time_of: Callable[[int], int | None] = sessions.start_time) -> list[int]:
    """Pids of recorded workers, or of their sessions' members, that run now."""
    running: list[int] = []
    for worker in workers:
        if start_time_of(worker.pid) == worker.start_time:
            running.append(worker.pid)
        if _ours(worker, start_time_of):
            running.extend(pid for pid in sessions.session_members(worker.pid, started_since=worker.start_time) if pid != worker.pid)
    return running


def read_ledger(path: Path) -> set[tuple[int, int]] | None:
    """The (job id, attempt) pairs a worker's ledger says it began; None if there is no ledger (nothing known)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    found = set()
    for offset in range(0, len(data) - _SLOT.size + 1, _SLOT.size):
        job_id, attempt = _SLOT.unpack_from(data, offset)
        if job_id > 0:
            found.add((job_id, attempt))
    return found


class Ledger:
    """A worker's side: note each job just before its task starts (one pwrite, no fsync, no store write)."""

    def __init__(self, path: Path, slots: int = defaults.STARTED_LEDGER_SLOTS) -> None:
        self.slots = slots
        self.next = 0
        self.fd: int | None
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as error:
            log.warning("no ledger of started jobs at %s (%s): a dead master's unstarted jobs stay charged", path, error)
            self.fd = None

    def began(self, job_id: int, attempt: int) -> None:
        if self.fd is None:
            return
        try:
            os.pwrite(self.fd, _SLOT.pack(job_id, attempt), (self.next % self.slots) * _SLOT.size)
        except OSError:
            return
        self.next += 1


def fence_other(control_socket: Path, master_id: str, timeout: float = defaults.FENCE_TIMEOUT_SECONDS) -> Fenced | None:
    """Before another master of this host is declared dead: kill its recorded workers still running, and wait.

    Called only for a master that is silent past its lease or whose process
    is gone, so its workers are killed even if its process still exists
    (frozen): its jobs are about to run elsewhere. None if some process
    survived the wait (do not declare it dead, do not recover its jobs yet).
    ``Fenced(None)`` if its record is gone or already belongs to a later
    master on that socket (which fenced it when it started): nothing known.
    """
    record = HostFence(control_socket, master_id).previous()
    boot_id = current_boot_id()
    if record is None or record.master_id != master_id or not targets(record, boot_id):
        return Fenced(None)  # nothing of it runs here: its record is gone, a later master's, or from another boot
    workers = targets(record, boot_id)
    killed = kill_run(workers)
    deadline = time.monotonic() + timeout
    while (left := still_running(workers)) and time.monotonic() < deadline:
        kill_run(workers)
        time.sleep(WAIT_INTERVAL_SECONDS)
    if left:
        log.error("processes of master %s did not end after SIGKILL (pids %s): not recovering its jobs yet", master_id, left[:20])
        return None
    return _with_ledgers(Fenced(master_id, killed=killed), control_socket, workers)


def _with_ledgers(fenced: Fenced, control_socket: Path, workers: list[WorkerRecord]) -> Fenced:
    """``fenced`` with the jobs its workers began; with no master (nothing to refund) if a ledger is missing."""
    started: set[tuple[int, int]] = set()
    for worker in workers:
        began = read_ledger(ledger_path(control_socket, worker.pid))
        if began is None:
            log.warning("no ledger of worker %s of master %s: its jobs keep their attempts", worker.pid, fenced.master_id)
            return Fenced(None, killed=fenced.killed)
        started |= began
    return Fenced(fenced.master_id, frozenset(started), killed=fenced.killed)


@dataclass
class HostFence:
    """The master's side: the record of its own run, and the fencing of the previous run on this socket."""

    control_socket: Path
    master_id: str
    boot_id: str = field(default_factory=current_boot_id)
    workers: dict[int, WorkerRecord] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return record_path(self.control_socket)

    def previous(self) -> RunRecord | None:
        try:
            return RunRecord.from_text(self.path.read_text())
        except OSError:
            return None

    def secure(self, timeout: float = defaults.FENCE_TIMEOUT_SECONDS, clock: Callable[[], float] = time.monotonic) -> Fenced:
        """Kill the previous run's processes here and wait until none runs (or ``timeout``); then own the record.

        With survivors the caller must not recover that run's jobs (nor
        overwrite its record: a later try kills them again).
        """
        record = self.previous()
        if record is None:
            return Fenced(None)
        if record.boot_id == self.boot_id and sessions.start_time(record.master.pid) == record.master.start_time:
            return Fenced(record.master_id, master_alive=True)  # another master on this socket: never fence a live one
        workers = targets(record, self.boot_id)
        if not workers:
            return Fenced(None)  # another boot (nothing of it runs, and which jobs began is lost), or no worker
        killed = kill_run(workers)
        deadline = clock() + timeout
        while (left := still_running(workers)) and clock() < deadline:
            kill_run(workers)
            time.sleep(WAIT_INTERVAL_SECONDS)
        if left:
            return Fenced(record.master_id, survivors=tuple(left), killed=killed)
        return _with_ledgers(Fenced(record.master_id, killed=killed), self.control_socket, workers)

    def own(self) -> None:
        """Start this master's record (the previous run is fenced) and drop the previous run's ledgers."""
        record = self.previous()
        if record is not None:
            for worker in record.workers:
                ledger_path(self.control_socket, worker.pid).unlink(missing_ok=True)
        self._write()

    def add(self, pid: int) -> None:
        """Write down a worker just started (before it can run a job that matters)."""
        start = sessions.start_time(pid)
        if start is not None:
            try:  # its ledger exists from now on (the worker itself may be slower to open it)
                os.close(os.open(ledger_path(self.control_socket, pid), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            except OSError:
                pass  # then the next master knows nothing of this run's jobs, and refunds none
            self.workers[pid] = WorkerRecord(pid, start)
            self._write()

    def remove(self, pid: int) -> None:
        """Forget a worker that ended and was reaped."""
        if self.workers.pop(pid, None) is not None:
            self._write()
        ledger_path(self.control_socket, pid).unlink(missing_ok=True)

    def _write(self) -> None:
        me = WorkerRecord(os.getpid(), sessions.start_time(os.getpid()) or 0)
        record = RunRecord(self.boot_id, self.master_id, me, tuple(self.workers.values()))
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            temporary.write_text(record.to_text())
            os.replace(temporary, self.path)
        except OSError as error:
            log.warning("could not write the record of this run's workers to %s: %s", self.path, error)
