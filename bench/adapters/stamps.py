"""Task-side timing shared by every system's bench task.

A bench task calls ``stamp(submitted, started)`` when it ends. Each call
appends one fixed-width line (submitted, started, ended; epoch seconds) to
``$BENCH_STAMPS`` with O_APPEND, so any number of processes (Celery's pool
children, RQ's per-job work horses) share one file without locks, and the
harness counts finished jobs from the file size alone. Only the standard
library: worker processes of every system import this.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

LINE = b"%17.6f %17.6f %17.6f\n"
LINE_BYTES = 54

_handle: tuple[int, int] | None = None  # (pid, fd): reopened after a fork


def _fd() -> int:
    global _handle
    pid = os.getpid()
    if _handle is None or _handle[0] != pid:
        fd = os.open(os.environ["BENCH_STAMPS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _handle = (pid, fd)
    return _handle[1]


def stamp(submitted: float, started: float) -> None:
    os.write(_fd(), LINE % (submitted, started, time.time()))


def work(submitted: float = 0.0, seconds: float = 0.0) -> None:
    """The bench task body every system runs: optionally sleep, then stamp."""
    started = time.time()
    if seconds:
        time.sleep(seconds)
    stamp(submitted, started)


def count(path: Path) -> int:
    """How many jobs have stamped so far."""
    try:
        return path.stat().st_size // LINE_BYTES
    except FileNotFoundError:
        return 0


def read(path: Path) -> list[tuple[float, float, float]]:
    """All complete lines as (submitted, started, ended)."""
    data = path.read_bytes() if path.exists() else b""
    lines = data[: len(data) - len(data) % LINE_BYTES].splitlines()
    return [tuple(float(field) for field in line.split()) for line in lines]  # type: ignore[misc]
