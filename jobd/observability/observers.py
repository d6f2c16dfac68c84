"""What the outside world learns of a running master: systemd, metrics, job logs, alerts.

The master calls this one object at a handful of points (started, each
loop turn, reload, drain, a job ended, workers exited, stopped) and knows
nothing of the protocols behind it. Each concern lives in its own module —
``sdnotify``, ``metrics``, ``joblogs``, ``alerts`` — and this one only
wires them to the master's events. Nothing here may stop the master: every
failure is logged and counted, never raised into the loop.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .. import defaults
from . import metrics
from .alerts import Alerter, CrashLoopWatch
from ..config import JobdConfig
from ..errors import JobdError
from .job_logs import JobLogCapture, job_extra
from ..job import Job
from .metrics import PoolState, Snapshot
from ..ops.sdnotify import SystemdNotifier
from ..throttle import Throttle
from ..workers.states import WorkerState

if TYPE_CHECKING:
    from ..master import Master
    from .prometheus import Metrics
    from ..workers.pool import Pool, WorkerExit

log = logging.getLogger("jobd.observers")


class Observers:
    def __init__(
        self,
        config: JobdConfig,
        *,
        job_logs: JobLogCapture | None = None,
        notifier: SystemdNotifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.notifier = notifier or SystemdNotifier.from_environment()
        self.job_logs = job_logs
        self.metrics: Metrics | None = None
        if config.metrics:
            from .prometheus import Metrics  # only a master that serves metrics holds prometheus-client

            self.metrics = Metrics()
        self.alerter = Alerter(config.alert_command, config.alert_timeout, clock=clock)
        self.crash_loops = CrashLoopWatch()
        self._status = Throttle(defaults.STATUS_INTERVAL_SECONDS, clock)
        self._refresh = Throttle(defaults.METRICS_REFRESH_INTERVAL_SECONDS, clock)
        self._log_flush = Throttle(defaults.JOB_LOG_FLUSH_INTERVAL_SECONDS, clock)

    # -- lifecycle --------------------------------------------------------

    def start(self, master: Master) -> None:
        """Open the metrics endpoint (part of start-up: a bad address stops the start with a reason)."""
        if self.metrics is None or not self.config.metrics:
            return
        try:
            self.metrics.serve(self.config.metrics)
        except OSError as error:
            raise JobdError(f"{self.config.source}: metrics: cannot listen on {self.config.metrics}: {error.strerror}") from None
        metrics.install(self.metrics)
        self._refresh_metrics(master)

    def ready(self, master: Master) -> None:
        """Pools are up and the master answers: tell systemd."""
        self.notifier.ready(self.status_line(master))

    def tick(self, master: Master) -> None:
        """Once per loop turn: watchdog, status, metrics snapshot, job logs, alert commands."""
        if self.notifier.watchdog_due():
            self.notifier.ping_watchdog(self.status_line(master))
        elif self.notifier.enabled and self._status.ready():
            self.notifier.status(self.status_line(master))
        if self.metrics is not None and self._refresh.ready():
            self._refresh_metrics(master)
        if self._log_flush.ready():
            self.flush_job_logs(master)
        if self.alerter.running:
            self.alerter.poll()

    def reloading(self) -> None:
        self.notifier.reloading()

    def reloaded(self, master: Master, config: JobdConfig) -> None:
        """After a reload, applied or refused: systemd must hear READY=1 either way."""
        if config is not self.config:
            self.config = config
            self.alerter.command, self.alerter.timeout = config.alert_command, config.alert_timeout
            if self.job_logs is not None:
                self.job_logs.max_lines_per_attempt = config.job_log_max_lines
                self.job_logs.max_line_bytes = config.max_log_line_bytes
        self.notifier.ready(self.status_line(master))

    def draining(self, reason: str) -> None:
        self.notifier.stopping(f"draining ({reason}): waiting for running jobs")

    def stopped(self, master: Master) -> None:
        """The master is about to exit: last job log lines, alerts given a moment, endpoint closed."""
        time.sleep(0.1)  # let the log receiver thread pass on the workers' last records
        self.flush_job_logs(master)
        self.alerter.close(wait=5.0)
        if self.metrics is not None:
            self.metrics.close()
            metrics.install(None)
        self.notifier.close()

    # -- events -----------------------------------------------------------

    def job_ended(
        self, master: Master, job: Job, state: str, duration: float | None,
        error: str | None = None, traceback: str | None = None,
    ) -> None:
        """An attempt ended and ``state`` is what the store now says; alert on ``dead``."""
        if self.metrics is not None:
            self.metrics.job_ended(job.daemon, job.task, state, duration)
        if state != "dead":
            return
        self.alerter.fire(
            "job_dead",
            {
                "host": socket.gethostname(), "master": master.id, "job_id": job.id, "daemon": job.daemon,
                "task": job.task, "args": job.args, "attempts": job.attempts, "error": error,
                "traceback": traceback, "origin": job.origin,
            },
        )

    def workers_exited(self, master: Master, pool: Pool, exits: Iterable[WorkerExit]) -> None:
        exits = list(exits)
        if not exits or not self.crash_loops.check(pool.daemon, pool.crash_streak):
            return
        last = exits[-1]
        log.error("daemon %s is crash-looping: %s worker crashes in a row; last: %s", pool.daemon, pool.crash_streak, last.reason)
        self.alerter.fire(
            "worker_crash_loop",
            {
                "host": socket.gethostname(), "master": master.id, "daemon": pool.daemon,
                "crashes_in_a_row": pool.crash_streak, "restarts": pool.restarts, "last_exit": last.reason,
                "error": pool.fatal_error,
            },
        )

    def store_error(self, operation: str) -> None:
        metrics.count_store_error(operation)

    # -- helpers ----------------------------------------------------------

    def flush_job_logs(self, master: Master) -> None:
        if self.job_logs is None:
            return
        if not master.store_health.available:
            return  # never wait on a store known to be down (a stop would): kept for the next try
        try:
            self.job_logs.flush_to(master.store.job_logs)
        except Exception:
            self.store_error("job_logs")
            log.warning("could not store job log lines (kept for the next try)", exc_info=True)

    def _refresh_metrics(self, master: Master) -> None:
        assert self.metrics is not None
        try:
            due = metrics.queue_ages(time.time(), master.store.jobs.due_stats())
        except Exception:
            self.store_error("queue_stats")
            log.warning("could not read queue depth for metrics", exc_info=True)
            due = {}
        pools = {}
        for name, pool in master.pools.items():
            depth, oldest = due.get(name, (0, 0.0))
            pools[name] = PoolState(
                workers=_count_states(pool),
                restarts=pool.restarts,
                recycles={str(reason): count for reason, count in pool.recycles.items()},
                queue_depth=depth,
                oldest_due_age=oldest,
            )
        self.metrics.refresh(Snapshot(pools=pools, draining=master.draining))

    @staticmethod
    def status_line(master: Master) -> str:
        """The one line ``systemctl status jobd`` shows."""
        busy = sum(len(pool.busy_workers()) for pool in master.pools.values())
        size = sum(pool.size for pool in master.pools.values())
        state = "draining" if master.draining else "running"
        return (
            f"{state}: {len(master.pools)} daemon(s), {busy}/{size} workers busy, "
            f"{master.jobs_finished} jobs finished, pid {os.getpid()}"
        )

    @staticmethod
    def log_extra(job: Job) -> dict[str, Any]:
        return job_extra(job.id, job.attempts, daemon=job.daemon, task=job.task)


def _count_states(pool: Pool) -> dict[str, int]:
    counts = {str(state): 0 for state in (WorkerState.STARTING, WorkerState.IDLE, WorkerState.BUSY, WorkerState.STOPPING)}
    for worker in pool.live_workers():
        counts[str(worker.state)] = counts.get(str(worker.state), 0) + 1
    return counts

