"""A worker's session: every process a worker started, found and killed through ``/proc``.

Each worker leads its own session (``setsid`` at start), so whatever a task
starts — a ``subprocess.Popen`` it forgot, a shell task's process group —
shares the worker's session id, even after its parent died and it was
re-parented. Killing "the worker and all it started" is then killing every
process whose session id is the worker's pid. Linux never hands out a pid as
long as a session or process group of that number exists, so the session id
cannot name an unrelated process while any member is alive.

Reading ``/proc`` is Linux-only; elsewhere these helpers find nothing and the
worker's own death (its lifeline) is all that is left.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

PROC = "/proc"
KILL_ROUNDS = 20  # a member may fork while we kill: scan again until none is left
ROUND_PAUSE_SECONDS = 0.005


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` jobd needs."""

    pid: int
    state: str  # "Z": a zombie, which runs nothing
    parent: int
    session: int
    start_time: int  # field 22: clock ticks after boot; with the pid, names one process for ever (until reboot)

    @property
    def running(self) -> bool:
        return self.state != "Z"


def parse_stat(pid: int, text: bytes) -> ProcStat | None:
    """``/proc/PID/stat`` parsed; None if it is not in the expected shape.

    The command name (field 2) is in parentheses and may itself hold spaces
    and parentheses: the fields are counted from the last ``)``.
    """
    tail = text[text.rfind(b")") + 2:].split()
    if len(tail) < 20:
        return None
    try:
        # tail[0] is field 3 (state), so field N is tail[N - 3].
        return ProcStat(
            pid=pid, state=tail[0].decode("ascii", "replace"), parent=int(tail[1]), session=int(tail[3]), start_time=int(tail[19]),
        )
    except ValueError:
        return None


def read_stat(pid: int, proc: str = PROC) -> ProcStat | None:
    """The process ``pid`` as ``/proc`` shows it now, or None if there is none."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            return parse_stat(pid, handle.read())
    except OSError:
        return None


def start_time(pid: int, proc: str = PROC) -> int | None:
    """When ``pid`` started (clock ticks after boot), or None if it does not run."""
    stat = read_stat(pid, proc)
    return stat.start_time if stat is not None and stat.running else None


def all_processes(proc: str = PROC) -> list[ProcStat]:
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    found = []
    for name in names:
        if name.isdigit():
            stat = read_stat(int(name), proc)
            if stat is not None:
                found.append(stat)
    return found


def session_members(session: int, *, started_since: int = 0, proc: str = PROC) -> list[int]:
    """Running processes of ``session`` that started at or after ``started_since`` (clock ticks)."""
    return [
        stat.pid for stat in all_processes(proc)
        if stat.session == session and stat.running and stat.start_time >= started_since
    ]


def children(parent: int, proc: str = PROC) -> list[ProcStat]:
    """The running processes whose parent is ``parent``."""
    return [stat for stat in all_processes(proc) if stat.parent == parent and stat.running]


def kill_session(session: int, *, spare: int | None = None, started_since: int = 0) -> int:
    """SIGKILL every running process of ``session`` but ``spare``; return how many were signalled.

    A member may be forking while it is killed, so the scan is repeated (a
    few rounds at most) until none but ``spare`` is left.
    """
    if session <= 1:
        return 0  # never the init session, whatever a caller passes
    signalled = 0
    for _ in range(KILL_ROUNDS):
        members = [pid for pid in session_members(session, started_since=started_since) if pid != spare]
        if not members:
            break
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
                signalled += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(ROUND_PAUSE_SECONDS)
    return signalled
