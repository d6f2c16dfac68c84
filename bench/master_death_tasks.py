"""The task of bench/master_death.py: a job that leaves a grandchild running, and says which.

Its line in the run's log (``$CHAOS_EXEC_LOG``, set by the bench on the
master, inherited by its workers) is ``grandchild WORKER_PID CHILD_PID``,
one ``write()`` on an ``O_APPEND`` descriptor. The bench's shell task writes
``shell PID`` lines to the same log.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import jobd

LOG_ENV = "CHAOS_EXEC_LOG"


@jobd.task("death.grandchild")
def grandchild(ctx: Any, seconds: float = 300.0) -> str:
    """Start ``sleep 300`` and wait ``seconds``: a worker busy with a job that has a child of its own."""
    child = subprocess.Popen(["sleep", "300"])  # noqa: S607 - the bench's own fixture
    descriptor = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, f"grandchild {os.getpid()} {child.pid}\n".encode())
    finally:
        os.close(descriptor)
    time.sleep(seconds)
    return "left a child"
