"""Where a worker's ``ctx.progress`` reports go: the master's pipe and memcached.

The pipe keeps the master's view (``jobd status``, the store's progress
column, the embedded activity store) current; memcached gets the same
report directly from the worker, so a dashboard on another host sees it
without the master relaying it. ``TaskContext`` throttles reports before
they get here (at most one per ``PROGRESS_SEND_INTERVAL_SECONDS``; the
latest report held back in a window arrives from the process's flusher
thread when the window ends, never concurrently with another), and
memcached failures are absorbed by ``MemcachedActivity``: a task never
fails or waits long because live display data could not be written.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ..context import ProgressSink
from ..output_caps import DEFAULT_CAPS, OutputCaps, cap_progress
from .base import Activity
from .recorder import progress_record


class JobProgress:
    """The progress sink of one worker process, told which job it is running."""

    def __init__(self, pipe: ProgressSink, shared: Activity | None, daemon: str, caps: OutputCaps = DEFAULT_CAPS) -> None:
        self.pipe = pipe
        self.caps = caps  # a task's progress message is capped before it goes anywhere
        self.shared = shared
        self.daemon = daemon
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._task = ""
        self._attempt = 0

    def job_started(self, job_id: int, task: str, attempt: int) -> None:
        self._task, self._attempt = task, attempt

    def report(self, job_id: int, progress: dict[str, Any]) -> None:
        progress = cap_progress(progress, self.caps)
        self.pipe.report(job_id, progress)
        if self.shared is not None:
            self.shared.set_progress(job_id, progress_record(
                job_id=job_id, daemon=self.daemon, task=self._task, attempt=self._attempt,
                progress=progress, worker_pid=self.pid, host=self.host,
            ))

    def job_ended(self, job_id: int) -> None:
        if self.shared is not None:
            self.shared.clear_progress(job_id)
