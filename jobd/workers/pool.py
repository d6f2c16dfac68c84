"""A daemon's pool of long-running workers, supervised by the master.

The pool keeps ``size`` workers alive, hands jobs to workers with room
(short jobs several at a time, see ``pipelining``), notices workers that
exit or hang, restarts them with backoff (so a crash-looping task cannot
spin the CPU), and recycles workers after a number of jobs. It knows nothing
of the store: it reports what happened to the master, which records
outcomes.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from .. import defaults
from ..output_caps import cap_progress
from ..config import DaemonConfig
from ..job import Job
from . import memory, protocol
from ..handoff.channel import Channel, open_channel
from ..handoff.gate import DIRECT, MASTER
from .memory import Recycle
from .pipelining import MAX_UNREAD_BYTES, Pipeline
from .processes import ProcessLauncher, SpawnedProcess
from .restarts import RestartState, WorkerDeath, after_death
from .states import WorkerState, change_worker_state
from .worker import WorkerSpec

log = logging.getLogger("jobd.pool")


@dataclass
class Assignment:
    """A job attempt handed to a worker."""

    job: Job
    timeout: float
    started_at: float  # monotonic; when it became the worker's running job
    cancel_sent_at: float | None = None
    frame_bytes: int = 0  # its share of the frame that handed it over (unread while it waits: see pipelining)

    @property
    def attempt(self) -> int:
        return self.job.attempts


@dataclass
class Worker:
    spawned: SpawnedProcess
    started_at: float  # monotonic
    state: WorkerState = WorkerState.STARTING
    jobs_done: int = 0
    # Handed to the worker and not finished, in the order it runs them: the
    # first is running, the others wait in the worker's pipe.
    assignments: deque[Assignment] = field(default_factory=deque)
    terminate_sent_at: float | None = None
    kill_grace: float = defaults.TIMEOUT_KILL_GRACE_SECONDS  # SIGTERM → SIGKILL once it is told to stop
    exit_reason: str | None = None
    current_progress: dict[str, Any] | None = None
    outdated: bool = False  # to be replaced once its current job ends (reload, restart)
    rss_bytes: int | None = None  # last measured resident set size
    pipe_closed: bool = False  # the worker's end is closed: nothing more to read
    wall_started_at: float = field(default_factory=time.time)
    reader: protocol.FrameReader = field(init=False)  # the master reads this worker's frames through it
    channel: Channel | None = None  # its own hand-off socket and gate (``jobd.handoff``)

    def __post_init__(self) -> None:
        self.reader = protocol.FrameReader(self.spawned.connection.fileno())

    @property
    def pid(self) -> int:
        return self.spawned.pid

    @property
    def assignment(self) -> Assignment | None:
        """The job the worker is running now, if any."""
        return self.assignments[0] if self.assignments else None

    @property
    def connection(self) -> Connection:
        return self.spawned.connection

    def move_to(self, target: WorkerState) -> None:
        self.state = change_worker_state(self.state, target)

    def offered_socket(self) -> str | None:
        """The suffix of this worker's socket if submits may hand it jobs straight (``jobd.handoff``): not retiring."""
        if self.channel is None or self.outdated or self.state not in (WorkerState.IDLE, WorkerState.BUSY):
            return None
        return self.channel.suffix

    def outdate(self) -> None:
        """To be replaced once its current job ends: no more jobs from submits either."""
        self.outdated = True
        self.refuse_submits()

    def refuse_submits(self) -> None:
        """A submit's datagram that reaches this worker from now on goes to the master (``jobd.handoff``)."""
        if self.channel is not None:
            self.channel.gate.close()


@dataclass(frozen=True)
class WorkerExit:
    """A worker is gone; ``assignment`` is the job it was running, ``unstarted`` those it never began."""

    worker: Worker
    exit_code: int | None
    assignment: Assignment | None
    reason: str
    unstarted: tuple[Assignment, ...] = ()


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
        self.pipeline = Pipeline()

    # -- size -------------------------------------------------------------

    def live_workers(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.state is not WorkerState.EXITED]

    def serving_workers(self) -> list[Worker]:
        """Workers that count towards the pool size (not on their way out)."""
        return [w for w in self.workers if w.state in (WorkerState.STARTING, WorkerState.IDLE, WorkerState.BUSY)]

    def depth(self) -> int:
        """How many jobs one worker may hold at once (1 when prefetching is off or caps count running jobs)."""
        if self.settings.prefetch == 0 or self.settings.concurrency or self.settings.task_concurrency:
            return 1
        return self.pipeline.depth()

    def free_slots(self, worker: Worker, depth: int) -> int:
        """How many more jobs ``worker`` may be handed now (none behind a job that may be long)."""
        if worker.state not in (WorkerState.IDLE, WorkerState.BUSY) or worker.outdated:
            return 0
        if worker.channel is not None and worker.channel.gate.holder == DIRECT:
            return 0  # it runs a submit's job (the master hears of it in a moment): nothing may wait behind it
        held = worker.assignments
        slots = self.pipeline.room([held_job.job.task for held_job in held], depth) if held else depth
        limit = self.settings.max_tasks_per_worker
        if limit:
            slots = min(slots, limit - worker.jobs_done - len(held))
        return max(0, slots)

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
        channel = open_channel(self.spec.config.socket, self.launcher.context) if self.spec.config.handoff else None
        try:
            spawned = self.launcher.spawn(self.spec, name=f"jobd-worker-{self.daemon}", channel=channel)
        except BaseException:
            if channel is not None:
                channel.close()
            raise
        worker = Worker(spawned=spawned, started_at=self.clock(), channel=channel)
        self.workers.append(worker)
        log.info("daemon %s: started worker %s", self.daemon, worker.pid)
        return worker

    def retire(self, worker: Worker) -> None:
        """Ask a worker to exit cleanly: a busy one after its running job, starting none it holds."""
        if worker.state in (WorkerState.STOPPING, WorkerState.EXITED):
            return
        worker.move_to(WorkerState.STOPPING)
        worker.refuse_submits()
        if not self._write(worker, [protocol.StopWorker()]):
            self.launcher.kill(worker.pid)
        if not worker.assignments:
            worker.terminate_sent_at = self.clock()  # else: once its running job ends (see _on_finished)

    def replace_all(self) -> None:
        """Replace every worker (new code, new settings) without interrupting a job.

        Idle workers are retired now and replaced at once; busy ones finish
        their job first.
        """
        for worker in self.live_workers():
            worker.outdate()
            if worker.state in (WorkerState.IDLE, WorkerState.STARTING):
                self.retire(worker)
        self.maintain()

    def kill(self, worker: Worker, reason: str, *, grace: float = defaults.TIMEOUT_KILL_GRACE_SECONDS) -> None:
        """Stop a worker now: SIGTERM, and SIGKILL after ``grace`` seconds (see ``check_timeouts``)."""
        if worker.state is WorkerState.EXITED:
            return
        if worker.exit_reason is not None and worker.terminate_sent_at is not None:
            return  # killed already: asking again (each drain tick does) must not restart the grace of a task ignoring SIGTERM
        worker.kill_grace = grace
        worker.refuse_submits()
        if worker.state is not WorkerState.STOPPING:
            worker.move_to(WorkerState.STOPPING)
        worker.exit_reason = worker.exit_reason or reason
        worker.terminate_sent_at = self.clock()
        self.launcher.terminate(worker.pid)

    # -- jobs -------------------------------------------------------------

    def assign(self, worker: Worker, jobs: list[tuple[Job, float]]) -> bool:
        """Hand ``worker`` these (job, timeout) pairs in one write; it runs them after those it holds.

        False if the worker is gone (its pipe is closed) or has just taken a
        submit's job (``jobd.handoff``): it got none of them, and the caller keeps
        them for another worker.
        """
        if not jobs:
            return True
        frame = protocol.encode([protocol.RunJob(job.id, job.attempts, job.task, job.args, job.checkpoint) for job, _ in jobs])
        if worker.assignments and unread_bytes(worker) + len(frame) > MAX_UNREAD_BYTES:
            return False  # a busy worker does not read its pipe: the write could block the master (see pipelining)
        if worker.channel is not None and not worker.channel.gate.take(MASTER):
            return False
        if not self._write_frame(worker, frame):
            if self.launcher.reap(worker.spawned) is None:  # alive, yet its pipe is closed: stop it
                self.kill(worker, "its pipe closed")  # reap() replaces it
            return False  # already dead: reap() says how (a crash, a kill -9), which is the job's reason
        now = self.clock()
        if worker.state is WorkerState.IDLE:
            worker.move_to(WorkerState.BUSY)
            worker.current_progress = None
        share = len(frame) // len(jobs) + 1
        worker.assignments.extend(Assignment(job=job, timeout=timeout, started_at=now, frame_bytes=share) for job, timeout in jobs)
        return True

    def took_handoff(self, worker: Worker, job: Job, timeout: float) -> None:
        """``worker`` started a job a submit handed it directly (``jobd.handoff``): it is its running job now.

        It goes first: the worker could take it only while the master held
        nothing of it, so any job this master handed it since (if it heard of
        this one late) was sent after, and waits behind it in the pipe.
        """
        if worker.state is WorkerState.IDLE:
            worker.move_to(WorkerState.BUSY)
        elif worker.state is WorkerState.STOPPING and not worker.assignments:
            worker.terminate_sent_at = None  # retired in the meantime: it exits once this job ends
        worker.current_progress = None
        worker.assignments.appendleft(Assignment(job=job, timeout=timeout, started_at=self.clock()))

    def cancel(self, job_id: int) -> bool:
        """Cancel ``job_id`` in its worker: SIGUSR1 (→ ``ctx.cancelled``) if it runs, else a message not to start it."""
        for worker in self.busy_workers():
            for position, assignment in enumerate(worker.assignments):
                if assignment.job.id != job_id or assignment.cancel_sent_at is not None:
                    continue
                assignment.cancel_sent_at = self.clock()
                if position == 0:
                    self.launcher.send_signal(worker.pid, signal.SIGUSR1)
                else:
                    self._write(worker, [protocol.CancelJob(job_id)])  # if the worker is gone, reap() says so
                return True
        return False

    @staticmethod
    def _write(worker: Worker, messages: list[protocol.Message]) -> bool:
        """Send ``messages`` to ``worker`` in one frame; False if its pipe is closed."""
        try:
            protocol.send(worker.connection.fileno(), messages)  # OSError once closed: never a reused fd
        except (OSError, ValueError):
            return False
        return True

    @staticmethod
    def _write_frame(worker: Worker, frame: bytes) -> bool:
        """Send an encoded frame to ``worker``; False if its pipe is closed."""
        try:
            protocol.send_frame(worker.connection.fileno(), frame)  # OSError once closed: never a reused fd
        except (OSError, ValueError):
            return False
        return True

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
            worker.current_progress = cap_progress(message.progress, self.settings.output_caps())  # the worker capped it already
            return None
        if isinstance(message, protocol.JobFinished):
            return self._on_finished(worker, message)
        return None

    def _on_finished(self, worker: Worker, message: protocol.JobFinished) -> tuple[Assignment, protocol.JobFinished] | None:
        """A worker ends its jobs in the order it was handed them: the first one ended, the next one starts."""
        if not worker.assignments or worker.assignments[0].job.id != message.job_id:
            log.warning("daemon %s: worker %s reported job %s, which it was not running", self.daemon, worker.pid, message.job_id)
            return None
        assignment = worker.assignments.popleft()
        worker.current_progress = None
        worker.jobs_done += 1
        self.pipeline.record(assignment.job.task, message.duration)
        if worker.assignments:
            following = worker.assignments[0]
            following.started_at = self.clock()
            if following.cancel_sent_at is not None:
                following.cancel_sent_at = following.started_at  # its grace counts from its start
        elif worker.state is WorkerState.BUSY:
            worker.move_to(WorkerState.IDLE)
        if not worker.assignments and worker.channel is not None:
            worker.channel.gate.release(MASTER)  # submits may hand it jobs again
        if worker.state is WorkerState.STOPPING and worker.terminate_sent_at is None:
            worker.terminate_sent_at = self.clock()  # retired while busy: it exits now
        if worker.state in (WorkerState.IDLE, WorkerState.BUSY):
            self._recycle_if_due(worker)
            if worker.outdated and not worker.assignments:
                self.retire(worker)
        return assignment, message

    def _recycle_if_due(self, worker: Worker) -> None:
        """Between jobs: stop handing jobs to a worker that did its share or grew; it is retired once it holds none."""
        if worker.outdated:
            return
        limit = self.settings.max_tasks_per_worker
        if limit and worker.jobs_done >= limit:
            log.info("daemon %s: recycling worker %s after %s jobs", self.daemon, worker.pid, worker.jobs_done)
            self.recycles[Recycle.MAX_TASKS] += 1
            worker.outdate()
        elif self._grown(worker):
            self.recycles[Recycle.MAX_MEMORY] += 1
            worker.outdate()

    def _grown(self, worker: Worker) -> bool:
        """Whether the worker's RSS passed ``max_memory_mb`` (no job is interrupted for it)."""
        if not self.settings.max_memory_mb:
            return False
        worker.rss_bytes = self.launcher.rss_bytes(worker.pid)
        if not memory.over_limit(worker.rss_bytes, self.settings.max_memory_mb):
            return False
        assert worker.rss_bytes is not None
        log.warning(
            "daemon %s: recycling worker %s after %s jobs: %s", self.daemon, worker.pid, worker.jobs_done,
            memory.describe(worker.rss_bytes, self.settings.max_memory_mb, "max_memory_mb"),
        )
        return True

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
            was_ready = worker.state is not WorkerState.STARTING
            held = list(worker.assignments)
            worker.assignments.clear()
            worker.move_to(WorkerState.EXITED)
            worker.connection.close()
            reason = worker.exit_reason or _describe_exit(code)
            if worker.exit_reason is None and held and not expected:
                reason += " while running the job"  # the task ended its own process (os._exit, a crash) or was killed from outside
            if not expected:
                self._note_crash(WorkerDeath(now - worker.started_at, was_ready, bool(held or worker.jobs_done), code), now)
                log.warning("daemon %s: worker %s exited: %s", self.daemon, worker.pid, reason)
            # A worker told to stop reports its running job before it exits: what
            # it still holds then, it never started. Otherwise the first was running.
            running = None if (expected and code == 0) or not held else held.pop(0)
            exits.append(WorkerExit(worker, code, running, reason, tuple(held)))
        self.workers = [worker for worker in self.workers if worker.state is not WorkerState.EXITED]
        return exits

    def _note_crash(self, death: WorkerDeath, now: float) -> None:
        """Replace at once, or back off (``restarts.after_death``: only workers that never get going back off)."""
        self.restarts += 1
        state = after_death(RestartState(self.crash_streak, self.next_spawn_at), death, now)
        self.crash_streak, self.next_spawn_at = state.crash_streak, state.spawn_at

    def check_timeouts(self) -> None:
        """Kill workers whose job outran its timeout, its memory or ignored a cancel; SIGKILL after the grace."""
        self.check_memory()
        now = self.clock()
        for worker in self.live_workers():
            assignment = worker.assignment
            if assignment is not None and worker.exit_reason is None and worker.state in (WorkerState.BUSY, WorkerState.STOPPING):
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
                and now - worker.terminate_sent_at > worker.kill_grace
            ):
                self.launcher.kill(worker.pid)

    def stop_all(self, *, kill: bool) -> None:
        for worker in self.live_workers():
            if kill or worker.state is WorkerState.BUSY:
                self.kill(worker, "master stopping", grace=defaults.DRAIN_KILL_GRACE_SECONDS)
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
                    "attempt": worker.assignment.job.attempts if worker.assignment else None,
                    "progress": worker.current_progress,
                    "running_for": round(now - worker.assignment.started_at, 1) if worker.assignment else None,
                    "waiting": max(0, len(worker.assignments) - 1),
                    "rss_mb": round(worker.rss_bytes / memory.MB, 1) if worker.rss_bytes else None,
                }
                for worker in self.live_workers()
            ],
            "restarts": self.restarts,
            "recycles": {str(reason): count for reason, count in self.recycles.items()},
            "error": self.fatal_error,
        }


def unread_bytes(worker: Worker) -> int:
    """At most how many bytes of jobs handed to ``worker`` wait unread in its pipe.

    The running job's frame was read whole; the jobs waiting behind it may
    not have been (counted in full: a bound, not a measure).
    """
    waiting = list(worker.assignments)[1:]
    return sum(assignment.frame_bytes for assignment in waiting)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker killed by {name}"
    return f"worker exited with code {code}"
