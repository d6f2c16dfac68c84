"""How many jobs a worker may be handed ahead: none behind a long job, a few milliseconds' worth of short ones.

A worker that finishes a job and then waits for the master to send the next
one idles for a round trip (the master reads the result, maybe claims, then
writes). For a 30 µs job that round trip costs more than the job; for a
10-minute job it is nothing, and a job queued behind it in that worker would
wait minutes while another worker may be free (Celery's prefetch trap). So:

* a job may wait in a worker only behind jobs of *short* tasks: tasks whose
  recent runs all ended within ``SHORT_JOB_SECONDS`` (a task never seen yet
  is not short, so nothing waits behind it);
* a worker holds at most enough jobs to stay busy for ``AHEAD_SECONDS`` at
  the pool's mean job duration, at least 2 (the next job is there when the
  current one ends) and at most ``MAX_DEPTH``.

A task's recent maximum decays by ``MAX_DECAY`` per finished job of that
task, so one slow run stops jobs from queueing behind that task at once,
and they queue again only after many short runs. What is left is a surprise:
a task that was always short and runs long this once holds the few
milliseconds' worth of jobs queued behind it (``prefetch = 0`` turns
pipelining off for a daemon).
Bytes matter too. A job handed to a *busy* worker waits in the pipe, unread,
while the worker runs; if it does not fit in the kernel's buffer the
master's write blocks until the worker reads, and a worker that is itself
blocked writing a large result back to the master never does: both wait
forever. So a busy worker is handed only what keeps the bytes it may not
have read yet within ``MAX_UNREAD_BYTES``, far below the smallest buffer a
pipe or socket pair has (64 KB), and a job with large args waits for a
worker that is reading (an idle one reads its whole frame before starting).
The master never blocks on a worker, and a worker's large result is read
a chunk per turn.
"""

from __future__ import annotations

SHORT_JOB_SECONDS = 0.05
MAX_UNREAD_BYTES = 32 * 1024
AHEAD_SECONDS = 0.005
MAX_DEPTH = 128
MEAN_WEIGHT = 0.1  # exponential moving average: the newest duration's weight
MAX_DECAY = 0.95


class JobDurations:
    """Recent durations of some jobs: their moving mean and a decaying maximum."""

    def __init__(self) -> None:
        self.mean: float | None = None
        self.recent_max = 0.0

    def record(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.mean = seconds if self.mean is None else self.mean + MEAN_WEIGHT * (seconds - self.mean)
        self.recent_max = max(seconds, self.recent_max * MAX_DECAY)

    @property
    def short(self) -> bool:
        return self.mean is not None and self.recent_max <= SHORT_JOB_SECONDS


class Pipeline:
    """What one pool has learnt of its jobs' durations, and the depth it allows."""

    def __init__(self) -> None:
        self.all_jobs = JobDurations()
        self.tasks: dict[str, JobDurations] = {}

    def record(self, task: str, seconds: float) -> None:
        self.all_jobs.record(seconds)
        durations = self.tasks.get(task)
        if durations is None:
            durations = self.tasks[task] = JobDurations()
        durations.record(seconds)

    def is_short(self, task: str) -> bool:
        """Whether another job may wait behind a job of ``task``."""
        durations = self.tasks.get(task)
        return durations is not None and durations.short

    def depth(self) -> int:
        """Jobs a worker may hold at once (the running one included)."""
        mean = self.all_jobs.mean
        if mean is None or not any(durations.short for durations in self.tasks.values()):
            return 1
        ahead = int(AHEAD_SECONDS / max(mean, 1e-6))
        return 1 + min(MAX_DEPTH - 1, max(1, ahead))

    def room(self, held_tasks: list[str], depth: int) -> int:
        """How many more jobs a worker holding jobs of ``held_tasks`` (in order) may take."""
        if held_tasks and not all(self.is_short(task) for task in held_tasks):
            return 0
        return max(0, depth - len(held_tasks))
