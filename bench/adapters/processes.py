"""The processes a benchmark starts: launched in their own session, measured from /proc, killed by group.

Every system under test is started with ``start_new_session=True``, so its
session id is its pid and every helper it forks (pool children, fork
servers, work horses) is found by session, read from ``/proc`` and killed
by process group — never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def session_pids(session: int) -> list[int]:
    """Live processes whose session id is ``session``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat_fields(int(entry))
        if stat is not None and int(stat[3]) == session and stat[0] != "Z":
            pids.append(int(entry))
    return sorted(pids)


def parent_of(pid: int) -> int | None:
    stat = _stat_fields(pid)
    return int(stat[1]) if stat else None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    stat = _stat_fields(pid)
    if stat is None:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    """Resident set size (VmRSS) in MiB, or None if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def start(command: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes], *, grace: float = 10.0, signum: int = signal.SIGTERM) -> None:
    """Ask the process group to stop, then SIGKILL whatever is left of the session."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 5
    while True:
        left = session_pids(process.pid)
        if not left:
            break
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in left:  # a helper that moved to another group but kept our session
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if process.poll() is None:
        process.kill()
        process.wait(5)
