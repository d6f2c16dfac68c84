"""The chaos soak's tasks: each run appends its life to an execution log.

Every run writes a ``S`` (start) line, a ``B`` (beat) line every 0.1 s while
it works, and an ``E`` (ended) or ``F`` (raised) line at its end. Each line
is one ``write()`` on an ``O_APPEND`` descriptor, so lines of concurrent
processes never interleave, and nothing is buffered in the process: a run
killed by SIGKILL leaves its start and its last beat behind. That lets the
soak see two runs of one job overlapping even when one of them was killed
before it could finish (its interval ends at its last beat: a lower bound,
so an overlap found is real).

Line format (space-separated)::

    KIND JOB_ID ATTEMPT PID MASTER RUN_TOKEN EPOCH_SECONDS

``MASTER`` is the incarnation of the master whose worker ran the task
(``$CHAOS_MASTER``, set by the soak when it starts a master); ``RUN_TOKEN``
ties a run's lines together.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import jobd

LOG_ENV = "CHAOS_EXEC_LOG"
MASTER_ENV = "CHAOS_MASTER"
BEAT_SECONDS = 0.1
POISON_MESSAGE_BYTES = 100_000


class _Run:
    """One run of a task, writing its lines to the execution log."""

    def __init__(self, ctx: Any) -> None:
        self.prefix = f"{ctx.job_id} {ctx.attempt} {os.getpid()} {os.environ.get(MASTER_ENV, '?')} {uuid.uuid4().hex[:12]}"
        self.path = os.environ[LOG_ENV]
        self.write("S")

    def write(self, kind: str) -> None:
        line = f"{kind} {self.prefix} {time.time():.6f}\n".encode()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)

    def work(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(BEAT_SECONDS, left))
            self.write("B")


@jobd.task("chaos.work")
def work(ctx: Any, seconds: float = 0.2) -> None:
    run = _Run(ctx)
    run.work(seconds)
    run.write("E")


@jobd.task("chaos.tick")
def tick(ctx: Any) -> None:
    run = _Run(ctx)
    run.work(0.05)
    run.write("E")


@jobd.task("chaos.poison")
def poison(ctx: Any) -> None:
    """Fails with a 100 KB message: more than a MariaDB TEXT column holds."""
    run = _Run(ctx)
    run.write("F")
    raise ValueError("E" * POISON_MESSAGE_BYTES)
