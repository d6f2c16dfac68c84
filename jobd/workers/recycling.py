"""When a healthy worker is replaced on purpose: its share of jobs done, or its memory grown.

Between jobs a worker that did ``max_tasks_per_worker`` jobs or passed
``max_memory_mb`` is outdated (retired once it holds nothing; no job is
interrupted). During a job a worker past ``max_memory_hard_mb`` is killed
and its job retried like after a crash (see ``memory`` for why both).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import defaults
from ..config import DaemonConfig
from . import memory
from .memory import Recycle
from .processes import ProcessLauncher
from .supervised import Worker

log = logging.getLogger("jobd.pool")


class Recycling:
    """One pool's recycling decisions and their counts (a metric)."""

    def __init__(self, daemon: str, launcher: ProcessLauncher, clock: Callable[[], float]) -> None:
        self.daemon = daemon
        self.launcher = launcher
        self.clock = clock
        self.counts: dict[Recycle, int] = {reason: 0 for reason in Recycle}
        self.next_memory_check_at = 0.0

    def between_jobs(self, worker: Worker, settings: DaemonConfig) -> None:
        """Stop handing jobs to a worker that did its share or grew; it is retired once it holds none."""
        if worker.outdated:
            return
        limit = settings.max_tasks_per_worker
        if limit and worker.jobs_done >= limit:
            log.info("daemon %s: recycling worker %s after %s jobs", self.daemon, worker.pid, worker.jobs_done)
            self.counts[Recycle.MAX_TASKS] += 1
            worker.outdate()
        elif self._grown(worker, settings.max_memory_mb):
            self.counts[Recycle.MAX_MEMORY] += 1
            worker.outdate()

    def _grown(self, worker: Worker, limit_mb: int) -> bool:
        if not limit_mb:
            return False
        worker.rss_bytes = self.launcher.rss_bytes(worker.pid)
        if not memory.over_limit(worker.rss_bytes, limit_mb):
            return False
        assert worker.rss_bytes is not None
        log.warning(
            "daemon %s: recycling worker %s after %s jobs: %s", self.daemon, worker.pid, worker.jobs_done,
            memory.describe(worker.rss_bytes, limit_mb, "max_memory_mb"),
        )
        return True

    def over_hard_limit(self, busy: list[Worker], limit_mb: int) -> list[tuple[Worker, str]]:
        """The busy workers past ``max_memory_hard_mb``, each with the reason to kill it (measured at most so often)."""
        now = self.clock()
        if not limit_mb or now < self.next_memory_check_at:
            return []
        self.next_memory_check_at = now + defaults.MEMORY_CHECK_INTERVAL_SECONDS
        found = []
        for worker in busy:
            worker.rss_bytes = self.launcher.rss_bytes(worker.pid)
            if memory.over_limit(worker.rss_bytes, limit_mb):
                assert worker.rss_bytes is not None
                reason = f"killed: {memory.describe(worker.rss_bytes, limit_mb, 'max_memory_hard_mb')}"
                job_id = worker.assignment.job.id if worker.assignment else None
                log.warning("daemon %s: worker %s running job %s %s", self.daemon, worker.pid, job_id, reason)
                self.counts[Recycle.MEMORY_HARD_LIMIT] += 1
                found.append((worker, reason))
        return found
