"""The master's view of one worker process: what it was handed, how it is doing, how it ended.

Plain records the pool keeps and the master reads; the process itself is
behind ``processes.ProcessLauncher``.
"""

from __future__ import annotations

import select
import signal
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from .. import defaults
from ..job import Job
from ..handoff.channel import Channel
from . import memory, protocol
from .processes import SpawnedProcess
from .states import WorkerState, change_worker_state


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
    stopping_signalled: bool = False  # its running task was told (``ctx.stopping``): once per worker
    rss_bytes: int | None = None  # last measured resident set size
    pipe_closed: bool = False  # the worker's end is closed: nothing more to read
    wall_started_at: float = field(default_factory=time.time)
    reader: protocol.FrameReader = field(init=False)  # the master reads this worker's frames through it
    channel: Channel | None = None  # its own hand-off socket and gate (``jobd.handoff``)
    timed_out: bool = False  # killed because its running job outran its timeout

    def __post_init__(self) -> None:
        self.reader = protocol.FrameReader(self.spawned.connection.fileno())

    @property
    def pid(self) -> int:
        return self.spawned.pid

    @property
    def assignment(self) -> Assignment | None:
        """The job the worker is running now, if any."""
        return self.assignments[0] if self.assignments else None

    def jumped_ahead(self, job_id: int, now: float) -> None:
        """The worker started ``job_id`` before jobs handed to it earlier: it is the running one now."""
        for index, held in enumerate(self.assignments):
            if held.job.id == job_id and index > 0:
                del self.assignments[index]
                held.started_at = now
                self.assignments.appendleft(held)
                return

    @property
    def connection(self) -> Connection:
        return self.spawned.connection

    @property
    def sentinel(self) -> int:
        """A descriptor that becomes readable when the process ends."""
        return int(self.spawned.process.sentinel)

    def watched(self) -> dict[int, int]:
        """The descriptors the master waits on for this worker (pipe, sentinel), each to its pid.

        Its hand-off socket is watched by the master's hand-off desk, and only while busy (``busy_channel``).
        """
        watched: dict[int, int] = {}
        if not self.pipe_closed:
            watched[self.reader.fd] = self.pid
        watched[self.sentinel] = self.pid
        return watched

    def read_remaining(self) -> list[bytes]:
        """Once its process ended: every frame still in its pipe (it may have reported a job just before it exited)."""
        frames: list[bytes] = []
        while not self.pipe_closed and select.select([self.reader.fd], [], [], 0)[0]:
            frames.extend(self.read())  # an end of file marks the pipe closed
        return frames

    def read(self) -> list[bytes]:
        """The frames the worker wrote since the last read (its pipe is readable); none once it closed."""
        try:
            return self.reader.read()
        except (EOFError, OSError):
            self.pipe_closed = True  # its exit is noticed through its sentinel
            return []

    def wrote(self, ready: set[int]) -> bool:
        """Whether the worker's pipe is among the ``ready`` descriptors."""
        return not self.pipe_closed and self.reader.fd in ready

    def busy_channel(self) -> Channel | None:
        """Its hand-off socket while it cannot read it (not idle): the master reads what submits send there."""
        return self.channel if self.state is not WorkerState.IDLE else None

    def detach_channel(self) -> Channel | None:
        """Forget the hand-off socket of a worker that exited; the caller reads what is left and closes it."""
        channel, self.channel = self.channel, None
        return channel

    def send(self, messages: list[protocol.Message]) -> bool:
        """Send ``messages`` in one frame; False if the pipe is closed."""
        try:
            protocol.send(self.connection.fileno(), messages)  # OSError once closed: never a reused fd
        except (OSError, ValueError):
            return False
        return True

    def send_frame(self, frame: bytes) -> bool:
        """Send an encoded frame; False if the pipe is closed."""
        try:
            protocol.send_frame(self.connection.fileno(), frame)  # OSError once closed: never a reused fd
        except (OSError, ValueError):
            return False
        return True

    def snapshot(self, now: float) -> dict[str, Any]:
        """Plain data for `jobd status` (``now`` on the monotonic clock)."""
        running = self.assignment
        return {
            "pid": self.pid,
            "state": str(self.state),
            "uptime": round(now - self.started_at, 1),
            "jobs_done": self.jobs_done,
            "job_id": running.job.id if running else None,
            "task": running.job.task if running else None,
            "attempt": running.job.attempts if running else None,
            "progress": self.current_progress,
            "running_for": round(now - running.started_at, 1) if running else None,
            "waiting": max(0, len(self.assignments) - 1),
            "rss_mb": round(self.rss_bytes / memory.MB, 1) if self.rss_bytes else None,
        }

    def move_to(self, target: WorkerState) -> None:
        self.state = change_worker_state(self.state, target)

    def offered_socket(self) -> str | None:
        """The suffix of this worker's socket if submits may hand it jobs straight (``jobd.handoff``): not retiring."""
        if self.channel is None or self.outdated or self.state not in (WorkerState.IDLE, WorkerState.BUSY):
            return None
        return self.channel.suffix

    def hears_stopping(self) -> bool:
        """True once, for a retiring worker that holds a job: time to tell its task (``ctx.stopping``).

        Only a worker that holds a job said it was ready, so its handler is
        installed (before that, the signal's default action would kill it).
        """
        if self.stopping_signalled or self.state is not WorkerState.STOPPING or not self.assignments:
            return False
        self.stopping_signalled = True
        return True

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
    reported: tuple[tuple[Assignment, protocol.JobFinished], ...] = ()  # jobs it reported ended just before it exited



def held_priority(worker: Worker) -> int | None:
    """The highest priority among the jobs ``worker`` holds; None if it holds none."""
    return max((assignment.job.priority for assignment in worker.assignments), default=None)


def lowest_waiting_priority(backlog_lowest: int | None, workers: Iterable[Worker]) -> int | None:
    """The lowest priority of the jobs that wait: ``backlog_lowest`` or one behind a worker's running job."""
    unstarted = (assignment.job.priority for worker in workers for assignment in list(worker.assignments)[1:])
    return min((priority for priority in (backlog_lowest, *unstarted) if priority is not None), default=None)


def unread_bytes(worker: Worker) -> int:
    """At most how many bytes of jobs handed to ``worker`` wait unread in its pipe.

    The running job's frame was read whole; the jobs waiting behind it may
    not have been (counted in full: a bound, not a measure).
    """
    waiting = list(worker.assignments)[1:]
    return sum(assignment.frame_bytes for assignment in waiting)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker killed by {name}"
    return f"worker exited with code {code}"
