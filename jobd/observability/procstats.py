"""CPU and memory of a worker process, read from /proc by the master (Linux).

``cpu_percent`` is over the interval since the previous sample of the same
process (like ``top``), or over the process's whole life for the first one.
Parsing is pure; ``sample`` is the only function that reads files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class ProcessSample:
    cpu_seconds: float  # user + system time used so far
    rss_bytes: int
    taken_at: float  # monotonic


def parse_cpu_seconds(stat_text: str, clock_ticks: int = CLOCK_TICKS) -> float:
    """utime + stime from the text of /proc/PID/stat.

    The command name (field 2) is in parentheses and may itself contain
    spaces or parentheses, so fields are counted after the *last* ")".
    """
    fields = stat_text.rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / clock_ticks


def parse_rss_bytes(statm_text: str, page_size: int = PAGE_SIZE) -> int:
    """Resident set size from the text of /proc/PID/statm (second field, in pages)."""
    return int(statm_text.split()[1]) * page_size


def cpu_percent(previous: ProcessSample | None, current: ProcessSample, lifetime: float) -> float:
    """CPU use in percent of one core since ``previous``, or over ``lifetime`` seconds without one."""
    if previous is not None and current.taken_at > previous.taken_at:
        used, elapsed = current.cpu_seconds - previous.cpu_seconds, current.taken_at - previous.taken_at
    else:
        used, elapsed = current.cpu_seconds, lifetime
    return round(100.0 * max(0.0, used) / elapsed, 1) if elapsed > 0 else 0.0


def sample(pid: int, now: float) -> ProcessSample | None:
    """Read one sample of ``pid``; None when the process is gone or /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            cpu = parse_cpu_seconds(stat.read())
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            rss = parse_rss_bytes(statm.read())
    except (OSError, ValueError, IndexError):
        return None
    return ProcessSample(cpu_seconds=cpu, rss_bytes=rss, taken_at=now)
