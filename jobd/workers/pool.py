"""A daemon's pool of long-running workers, supervised by the master.

The pool keeps ``size`` workers alive, hands jobs to idle ones, notices
workers that exit or hang, restarts them with backoff (so a crash-looping
task cannot spin the CPU), and recycles workers after a number of jobs. It
knows nothing of the store: it reports what happened to the master, which
records outcomes.
"""

from __future__ import annotations

import logging
from collections import deque
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from .. import defaults
from ..backoff import backoff_delay
from ..config import DaemonConfig
from ..job import Job
from . import memory, protocol
from .memory import Recycle
from .processes import ProcessLauncher, SpawnedProcess
from .states import WorkerState, change_worker_state
from .worker import WorkerSpec

log = logging.getLogger("jobd.pool")


@dataclass
class Assignment:
    """A job attempt handed to a worker."""

    job: Job
    timeout: float
    started_at: float  # monotonic
    cancel_sent_at: float | None = None

    @property
    def attempt(self) -> int:
        return self.job.attempts


@dataclass
class Worker:
    spawned: SpawnedProcess
    started_at: float  # monotonic
    state: WorkerState = WorkerState.STARTING
    jobs_done: int = 0
    assignment: Assignment | None = None
    terminate_sent_at: float | None = None
    exit_reason: str | None = None
    current_progress: dict[str, Any] | None = None
    outdated: bool = False  # to be replaced once its current job ends (reload, restart)
    rss_bytes: int | None = None  # last measured resident set size
    wall_started_at: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.spawned.pid

    @property
    def connection(self) -> Connection:
        return self.spawned.connection

    def move_to(self, target: WorkerState) -> None:
        self.state = change_worker_state(self.state, target)


@dataclass(frozen=True)
class WorkerExit:
    """A worker is gone; ``assignment`` is the job it was running, if any."""

    worker: Worker
    exit_code: int | None
    assignment: Assignment | None
    reason: str


class Pool:
    def __init__(
        self,
        daemon: str,
        settings: DaemonConfig,
        spec: WorkerSpec,
        launcher: ProcessLauncher,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.daemon = daemon
        self.settings = settings
        self.spec = spec
        self.launcher = launcher
        self.clock = clock
        self.size = settings.workers if settings.enabled else 0
        self.workers: list[Worker] = []
        self.crash_streak = 0
        self.next_spawn_at = 0.0
        self.restarts = 0
        self.recycles: dict[Recycle, int] = {reason: 0 for reason in Recycle}
        self.next_memory_check_at = 0.0
        self.fatal_error: str | None = None
        self.backlog: deque[Job] = deque()  # claimed ahead of free workers (see Master._dispatch)

    # -- size -------------------------------------------------------------

    def live_workers(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.state is not WorkerState.EXITED]

    def serving_workers(self) -> list[Worker]:
        """Workers that count towards the pool size (not on their way out)."""
        return [w for w in self.workers if w.state in (WorkerState.STARTING, WorkerState.IDLE, WorkerState.BUSY)]

    def idle_workers(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.state is WorkerState.IDLE]

    def busy_workers(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.state is WorkerState.BUSY]

    def maintain(self) -> None:
        """Start workers up to the pool size (respecting restart backoff); retire extras."""
        now = self.clock()
        serving = self.serving_workers()
        while len(serving) < self.size and now >= self.next_spawn_at:
            serving.append(self._spawn())
        extra = len(serving) - self.size
        for worker in sorted(serving, key=lambda w: w.state is WorkerState.BUSY):
            if extra <= 0:
                break
            if worker.state is not WorkerState.BUSY:
                self.retire(worker)
                extra -= 1

    def _spawn(self) -> Worker:
        spawned = self.launcher.spawn(self.spec, name=f"jobd-worker-{self.daemon}")
        worker = Worker(spawned=spawned, started_at=self.clock())
        self.workers.append(worker)
        log.info("daemon %s: started worker %s", self.daemon, worker.pid)
        return worker

    def retire(self, worker: Worker) -> None:
        """Ask an idle or starting worker to exit cleanly."""
        if worker.state in (WorkerState.STOPPING, WorkerState.EXITED):
            return
        worker.move_to(WorkerState.STOPPING)
        try:
            worker.connection.send(protocol.encode(protocol.StopWorker()))
        except (OSError, ValueError):
            self.launcher.kill(worker.pid)
        worker.terminate_sent_at = self.clock()

    def replace_all(self) -> None:
        """Replace every worker (new code, new settings) without interrupting a job.

        Idle workers are retired now and replaced at once; busy ones finish
        their job first.
        """
        for worker in self.live_workers():
            worker.outdated = True
            if worker.state in (WorkerState.IDLE, WorkerState.STARTING):
                self.retire(worker)
        self.maintain()

    def kill(self, worker: Worker, reason: str) -> None:
        """Stop a worker now: SIGTERM, and SIGKILL after the grace period (see ``check_timeouts``)."""
        if worker.state is WorkerState.EXITED:
            return
        if worker.state is not WorkerState.STOPPING:
            worker.move_to(WorkerState.STOPPING)
        worker.exit_reason = worker.exit_reason or reason
        worker.terminate_sent_at = self.clock()
        self.launcher.terminate(worker.pid)

    # -- jobs -------------------------------------------------------------

    def assign(self, worker: Worker, job: Job, timeout: float) -> None:
        worker.move_to(WorkerState.BUSY)
        worker.assignment = Assignment(job=job, timeout=timeout, started_at=self.clock())
        worker.current_progress = None
        worker.connection.send(
            protocol.encode(protocol.RunJob(job.id, job.attempts, job.task, job.args, job.checkpoint))
        )

    def cancel(self, job_id: int) -> bool:
        """Tell the worker running ``job_id`` to cancel (SIGUSR1 → ``ctx.cancelled``)."""
        for worker in self.busy_workers():
            assignment = worker.assignment
            if assignment and assignment.job.id == job_id and assignment.cancel_sent_at is None:
                assignment.cancel_sent_at = self.clock()
                self.launcher.send_signal(worker.pid, signal.SIGUSR1)
                return True
        return False

    def worker_for_job(self, job_id: int) -> Worker | None:
        for worker in self.busy_workers():
            if worker.assignment and worker.assignment.job.id == job_id:
                return worker
        return None

    def on_message(self, worker: Worker, message: protocol.Message) -> tuple[Assignment, protocol.JobFinished] | None:
        """Apply a worker's message; return (assignment, outcome) when a job ended."""
        if isinstance(message, protocol.WorkerReady):
            if worker.state is WorkerState.STARTING:
                worker.move_to(WorkerState.IDLE)
            return None
        if isinstance(message, protocol.WorkerFailed):
            self.fatal_error = message.error
            worker.exit_reason = message.error
            log.error("daemon %s: worker %s cannot start: %s", self.daemon, worker.pid, message.error)
            return None
        if isinstance(message, protocol.ProgressReport):
            worker.current_progress = message.progress
            return None
        if isinstance(message, protocol.JobFinished):
            assignment = worker.assignment
            worker.assignment = None
            worker.current_progress = None
            worker.jobs_done += 1
            if worker.state is WorkerState.BUSY:
                worker.move_to(WorkerState.IDLE)
                limit = self.settings.max_tasks_per_worker
                if worker.outdated:
                    self.retire(worker)
                elif limit and worker.jobs_done >= limit:
                    log.info("daemon %s: recycling worker %s after %s jobs", self.daemon, worker.pid, worker.jobs_done)
                    self.recycles[Recycle.MAX_TASKS] += 1
                    self.retire(worker)
                else:
                    self._recycle_if_grown(worker)
            if assignment is None or assignment.job.id != message.job_id:
                return None
            return assignment, message
        return None

    def _recycle_if_grown(self, worker: Worker) -> None:
        """Between jobs: retire a worker whose RSS passed ``max_memory_mb``; no job is interrupted."""
        if not self.settings.max_memory_mb:
            return
        worker.rss_bytes = self.launcher.rss_bytes(worker.pid)
        if memory.over_limit(worker.rss_bytes, self.settings.max_memory_mb):
            assert worker.rss_bytes is not None
            log.warning(
                "daemon %s: recycling worker %s after %s jobs: %s", self.daemon, worker.pid, worker.jobs_done,
                memory.describe(worker.rss_bytes, self.settings.max_memory_mb, "max_memory_mb"),
            )
            self.recycles[Recycle.MAX_MEMORY] += 1
            self.retire(worker)

    def check_memory(self) -> None:
        """During jobs: kill a worker past ``max_memory_hard_mb``; its job is retried like after a crash."""
        limit = self.settings.max_memory_hard_mb
        now = self.clock()
        if not limit or now < self.next_memory_check_at:
            return
        self.next_memory_check_at = now + defaults.MEMORY_CHECK_INTERVAL_SECONDS
        for worker in self.busy_workers():
            worker.rss_bytes = self.launcher.rss_bytes(worker.pid)
            if memory.over_limit(worker.rss_bytes, limit):
                assert worker.rss_bytes is not None
                reason = f"killed: {memory.describe(worker.rss_bytes, limit, 'max_memory_hard_mb')}"
                job_id = worker.assignment.job.id if worker.assignment else None
                log.warning("daemon %s: worker %s running job %s %s", self.daemon, worker.pid, job_id, reason)
                self.recycles[Recycle.MEMORY_HARD_LIMIT] += 1
                self.kill(worker, reason)

    # -- supervision ------------------------------------------------------

    def reap(self) -> list[WorkerExit]:
        """Collect workers whose process ended; schedule their replacement with backoff."""
        exits = []
        now = self.clock()
        for worker in self.live_workers():
            code = self.launcher.reap(worker.spawned)
            if code is None:
                continue
            expected = worker.state is WorkerState.STOPPING and worker.exit_reason is None
            assignment = worker.assignment
            worker.assignment = None
            worker.move_to(WorkerState.EXITED)
            worker.connection.close()
            reason = worker.exit_reason or _describe_exit(code)
            if not expected:
                self._note_crash(worker, now)
                log.warning("daemon %s: worker %s exited: %s", self.daemon, worker.pid, reason)
            exits.append(WorkerExit(worker, code, assignment, reason))
        self.workers = [worker for worker in self.workers if worker.state is not WorkerState.EXITED]
        return exits

    def _note_crash(self, worker: Worker, now: float) -> None:
        if now - worker.started_at >= defaults.WORKER_STABLE_AFTER_SECONDS:
            self.crash_streak = 0
        self.crash_streak += 1
        self.restarts += 1
        delay = backoff_delay(
            self.crash_streak,
            base=defaults.WORKER_RESTART_BACKOFF_BASE_SECONDS,
            maximum=defaults.WORKER_RESTART_BACKOFF_MAX_SECONDS,
        )
        self.next_spawn_at = max(self.next_spawn_at, now + delay)

    def check_timeouts(self) -> None:
        """Kill workers whose job outran its timeout, its memory or ignored a cancel; SIGKILL after the grace."""
        self.check_memory()
        now = self.clock()
        for worker in self.live_workers():
            assignment = worker.assignment
            if worker.state is WorkerState.BUSY and assignment is not None:
                if now - assignment.started_at > assignment.timeout:
                    log.warning(
                        "daemon %s: job %s exceeded its timeout of %.0fs; killing worker %s",
                        self.daemon, assignment.job.id, assignment.timeout, worker.pid,
                    )
                    self.kill(worker, f"timed out after {assignment.timeout:g}s")
                elif assignment.cancel_sent_at is not None and now - assignment.cancel_sent_at > defaults.CANCEL_GRACE_SECONDS:
                    self.kill(worker, "cancelled by an operator (did not stop in time)")
            if (
                worker.state is WorkerState.STOPPING
                and worker.terminate_sent_at is not None
                and now - worker.terminate_sent_at > defaults.TIMEOUT_KILL_GRACE_SECONDS
            ):
                self.launcher.kill(worker.pid)

    def stop_all(self, *, kill: bool) -> None:
        for worker in self.live_workers():
            if kill or worker.state is WorkerState.BUSY:
                self.kill(worker, "master stopping")
            else:
                self.retire(worker)

    def snapshot(self) -> dict[str, Any]:
        """Plain data for `jobd status`."""
        now = self.clock()
        return {
            "daemon": self.daemon,
            "size": self.size,
            "workers": [
                {
                    "pid": worker.pid,
                    "state": str(worker.state),
                    "uptime": round(now - worker.started_at, 1),
                    "jobs_done": worker.jobs_done,
                    "job_id": worker.assignment.job.id if worker.assignment else None,
                    "task": worker.assignment.job.task if worker.assignment else None,
                    "progress": worker.current_progress,
                    "running_for": round(now - worker.assignment.started_at, 1) if worker.assignment else None,
                    "rss_mb": round(worker.rss_bytes / memory.MB, 1) if worker.rss_bytes else None,
                }
                for worker in self.live_workers()
            ],
            "restarts": self.restarts,
            "recycles": {str(reason): count for reason, count in self.recycles.items()},
            "error": self.fatal_error,
        }


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker killed by {name}"
    return f"worker exited with code {code}"
