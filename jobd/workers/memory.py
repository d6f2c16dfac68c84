"""Worker memory: reading a process's resident set size, and the recycling decisions.

Long-lived workers grow: caches, fragmentation, leaks in task code or its
libraries. jobd borrows the two answers of the field. Between jobs, a worker
whose RSS passed ``max_memory_mb`` is retired and replaced (Celery's
``max_memory_per_child``): no job is interrupted. During a job, a worker
whose RSS passes ``max_memory_hard_mb`` is killed (Sidekiq Enterprise's
memory killer, the kernel's OOM killer but earlier and named): the job is
retried like after any crash, and the host keeps its memory.

RSS is read by the master from ``/proc/PID/statm`` (Linux, which is what
jobd supervises under systemd), so a worker wedged inside a C extension is
measured just the same. It counts pages shared with the fork server, so
set the limit above a fresh worker's RSS (``jobd status`` shows it).
"""

from __future__ import annotations

import os
from enum import StrEnum

MB = 1024 * 1024
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Recycle(StrEnum):
    """Why a worker was replaced although it did nothing wrong (a metric label)."""

    MAX_TASKS = "max_tasks"
    MAX_MEMORY = "max_memory"
    MEMORY_HARD_LIMIT = "memory_hard_limit"


def rss_bytes(pid: int) -> int | None:
    """The resident set size of ``pid`` in bytes, or None if it is gone (or not Linux)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            fields = statm.read().split()
    except OSError:
        return None
    try:
        return int(fields[1]) * _PAGE_SIZE
    except (IndexError, ValueError):
        return None


def over_limit(rss: int | None, limit_mb: int) -> bool:
    """Whether ``rss`` passed ``limit_mb`` (a limit of 0 means none)."""
    return bool(limit_mb) and rss is not None and rss > limit_mb * MB


def describe(rss: int, limit_mb: int, setting: str) -> str:
    return f"RSS {rss / MB:.0f} MB over {setting}={limit_mb}"
