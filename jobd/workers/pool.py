"""A daemon's pool of long-running workers, supervised by the master.

The pool keeps ``size`` workers alive, hands jobs to workers with room
(short jobs several at a time, see ``pipelining``), notices workers that exit
or hang, restarts them (with backoff if they never get going), and recycles
workers. It knows nothing of the store: the master records what it reports.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable
from typing import Any

from .. import defaults
from ..output_caps import cap_progress
from ..config import DaemonConfig
from ..handoff.channel import open_channel
from ..handoff.gate import DIRECT, MASTER
from ..job import Job
from . import protocol
from .backlog import Backlog
from .feeding import Admit, plan_feed
from .recycling import Recycling
from .pipelining import MAX_UNREAD_BYTES, Pipeline
from .processes import ProcessLauncher
from .restarts import RestartState, WorkerDeath, after_death
from .states import WorkerState
from .supervised import Assignment, Worker, WorkerExit, describe_exit, held_priority, lowest_waiting_priority, unread_bytes
from .spec import WorkerSpec

__all__ = ["Admit", "Assignment", "Pool", "Worker", "WorkerExit", "unread_bytes"]

log = logging.getLogger("jobd.pool")


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
        self.recycling = Recycling(daemon, launcher, clock)
        self.recycles = self.recycling.counts  # by reason (a metric)
        self.fatal_error: str | None = None
        self._backlog = Backlog()  # claimed ahead of free workers, owned by the master (see jobd.master.dispatch)
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

    def room(self) -> int:
        """How many more jobs the pool's workers may be handed now, all together."""
        depth = self.depth()
        return sum(self.free_slots(worker, depth) for worker in self.workers)

    def busy_workers(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.state is WorkerState.BUSY]

    def maintain(self) -> None:
        """Start workers up to the pool size (respecting restart backoff); retire extras."""
        now = self.clock()
        serving = self.serving_workers()
        while len(serving) < self.size and now >= self.next_spawn_at:
            serving.append(self._spawn())
        extra = len(serving) - self.size
        for worker in sorted(serving, key=lambda w: w.state is WorkerState.BUSY):  # idle ones first
            if extra <= 0:
                break
            self.retire(worker)  # a busy one ends its running job first (told by ``ctx.stopping``)
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
        if not worker.send([protocol.StopWorker()]):
            self.launcher.kill(worker.pid)
        if not worker.assignments:
            worker.terminate_sent_at = self.clock()  # else: once its running job ends (see _on_finished)
        elif worker.hears_stopping():  # its running task should save and yield (``ctx.stopping``)
            self.launcher.send_signal(worker.pid, protocol.STOPPING_SIGNAL)

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

        False if the worker is gone (its pipe is closed) or has just taken a submit's job
        (``jobd.handoff``): it got none of them, and the caller keeps them for another worker.
        """
        if not jobs:
            return True
        frame = protocol.encode([protocol.RunJob.of(job) for job, _ in jobs])
        if worker.assignments and unread_bytes(worker) + len(frame) > MAX_UNREAD_BYTES:
            return False  # a busy worker does not read its pipe: the write could block the master (see pipelining)
        if worker.channel is not None and not worker.channel.gate.take(MASTER):
            return False
        if not worker.send_frame(frame):
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
        if worker.hears_stopping():  # retired while it took the job: the job hears of it at once
            self.launcher.send_signal(worker.pid, protocol.STOPPING_SIGNAL)

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
                    worker.send([protocol.CancelJob(job_id)])  # if the worker is gone, reap() says so
                return True
        return False

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
        if isinstance(message, protocol.JobJumpedAhead):
            worker.jumped_ahead(message.job_id, self.clock())
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
            self.recycling.between_jobs(worker, self.settings)
            if worker.outdated and not worker.assignments:
                self.retire(worker)
        return assignment, message

    def check_memory(self) -> None:
        """During jobs: kill a worker past ``max_memory_hard_mb``; its job is retried like after a crash."""
        for worker, reason in self.recycling.over_hard_limit(self.busy_workers(), self.settings.max_memory_hard_mb):
            self.kill(worker, reason)

    # -- the backlog: claimed jobs waiting for a worker ---------------------

    @property
    def waiting(self) -> int:
        """How many claimed jobs wait in the backlog."""
        return len(self._backlog)

    def hold(self, jobs: Iterable[Job]) -> None:
        """Keep claimed jobs until a worker has room (after those of their priority already waiting)."""
        self._backlog.extend(jobs)

    def lowest_waiting_priority(self) -> int | None:  # in the backlog or in a pipe: a job above it should not wait
        return lowest_waiting_priority(self._backlog.lowest_priority(), self.workers)

    def give_back(self) -> list[Job]:
        """Empty the backlog and return what waited in it (the caller returns or abandons those jobs)."""
        return self._backlog.take_all()

    def withdraw(self, job_id: int) -> Job | None:
        """Take one job out of the backlog (an operator cancelled it); None if it does not wait here."""
        return self._backlog.remove(job_id)

    def held_job_ids(self) -> set[int]:
        """Every job this pool holds: waiting in the backlog or handed to a worker."""
        held = {job.id for job in self._backlog}
        held.update(assignment.job.id for worker in self.workers for assignment in worker.assignments)
        return held

    def feed(self, admit: Admit) -> list[tuple[Worker, Job]]:
        """Give workers with room the backlog's jobs, the least loaded worker first; return what each got.

        Each worker gets its share in one write (see ``depth``: one job at a
        time unless the pool's jobs are short). A job ``admit`` refuses is
        dropped (the caller ended it); jobs a worker could not take wait for
        the next one with room.
        """
        if not self._backlog:
            return []
        depth = self.depth()
        slots = [self.free_slots(worker, depth) for worker in self.workers]  # read once per feed
        loads = [len(worker.assignments) for worker in self.workers]
        jump_above = [held_priority(worker) if not free and depth > 1 and self.free_slots(worker, depth + 1) else None
                      for worker, free in zip(self.workers, slots)]  # full workers an urgent job may still go to
        handed = plan_feed(self._backlog, loads, slots, self.pipeline.is_short, admit, jump_above)
        started: list[tuple[Worker, Job]] = []
        for index, jobs in handed.items():
            worker = self.workers[index]
            if not self.assign(worker, jobs):
                self._backlog.put_back(job for job, _timeout in jobs)  # for the next worker with room
                continue
            started.extend((worker, job) for job, _timeout in jobs)
        return started

    # -- reading workers ----------------------------------------------------

    def sentinels(self) -> set[int]:
        """The descriptors that become readable when one of the live workers ends."""
        return {worker.sentinel for worker in self.live_workers()}

    def messages(self, worker: Worker, frames: list[bytes] | None = None) -> list[protocol.Message]:
        """The messages in what ``worker`` wrote since the last read (or in ``frames``); a worker that writes garbage is stopped."""
        messages: list[protocol.Message] = []
        for frame in worker.read() if frames is None else frames:
            try:
                messages.extend(protocol.decode(frame))
            except ValueError as error:
                log.error("daemon %s: worker %s sent an unreadable message (%s); stopping it", self.daemon, worker.pid, error)
                self.kill(worker, f"unreadable message from the worker: {error}")
                break
        return messages

    def progress_by_job(self) -> dict[int, dict[str, Any]]:
        """The latest progress each running job reported."""
        return {
            worker.assignment.job.id: worker.current_progress
            for worker in self.busy_workers()
            if worker.assignment and worker.current_progress
        }

    # -- stopping -----------------------------------------------------------

    def refuse_submits(self) -> None:
        """No submit's job reaches a worker of this pool from now on (a drain): they go back to the queue."""
        for worker in self.live_workers():
            worker.refuse_submits()

    def retire_idle(self) -> None:
        """Retire every worker that runs nothing now."""
        for worker in self.live_workers():
            if worker.assignment is None:
                self.retire(worker)

    def wind_down(self, *, kill_running: bool) -> None:
        """Retire every worker; with ``kill_running``, kill those whose job outlived the drain timeout."""
        for worker in self.live_workers():
            if kill_running and worker.assignment is not None:
                self.kill(worker, "drain timeout", grace=defaults.DRAIN_KILL_GRACE_SECONDS)
            else:
                self.retire(worker)  # a busy one ends its running job first and starts none it holds

    # -- supervision ------------------------------------------------------

    def reap(self) -> list[WorkerExit]:
        """Collect workers whose process ended; schedule their replacement with backoff."""
        exits = []
        now = self.clock()
        for worker in self.live_workers():
            code = self.launcher.reap(worker.spawned)
            if code is None:
                continue
            # What it wrote between the last read and its exit: read before its jobs are judged by what it held.
            reported = [ended for m in self.messages(worker, worker.read_remaining()) if (ended := self.on_message(worker, m))]
            expected = worker.state is WorkerState.STOPPING and worker.exit_reason is None
            was_ready = worker.state is not WorkerState.STARTING
            held = list(worker.assignments)
            worker.assignments.clear()
            worker.move_to(WorkerState.EXITED)
            worker.connection.close()
            reason = worker.exit_reason or describe_exit(code)
            if worker.exit_reason is None and held and not expected:
                reason += " while running the job"  # the task ended its own process (os._exit, a crash) or was killed from outside
            if not expected:
                self._note_crash(WorkerDeath(now - worker.started_at, was_ready, bool(held or worker.jobs_done), code), now)
                log.warning("daemon %s: worker %s exited: %s", self.daemon, worker.pid, reason)
            # A worker told to stop reports its running job before it exits: what
            # it still holds then, it never started. Otherwise the first was running.
            running = None if (expected and code == 0) or not held else held.pop(0)
            exits.append(WorkerExit(worker, code, running, reason, tuple(held), tuple(reported)))
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
                    worker.timed_out = True
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
            "workers": [worker.snapshot(now) for worker in self.live_workers()],
            "restarts": self.restarts,
            "recycles": {str(reason): count for reason, count in self.recycles.items()},
            "error": self.fatal_error,
        }
