"""When a pool replaces a worker that died: at once, or after a growing delay.

Backoff is there for one failure: workers that cannot get going — a task
module that fails to import, a crash at start, a worker that exits on its
own before it runs anything. Restarting those at once would spin the CPU
without running a single job, so after one quick retry (a start can be
unlucky: an outside kill while it imports) each such death in a row doubles
the wait before the next start (``backoff_delay``).

Every other death is a job's or the outside world's doing, and the daemon
must not be left without workers for it: a worker that had become ready and
ran (or was running) a job when it died — a task that segfaults or calls
``os._exit``, a job killed at its timeout — and a ready worker killed by a
signal from outside (an operator's ``kill -9``, the OOM killer) are replaced
at once. Such a death also proves that workers can start, so it ends a
crash streak and cancels a pending backoff. A task that crashes its worker
on every run is paced by its own retry backoff and ``max_attempts``: each
replacement serves a job attempt.

The decision is a pure function of the pool's restart state, what is known
of the death and ``now``, so it is tested on an injected clock.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from .. import defaults
from ..backoff import backoff_delay

#: Signals another process sends to end a worker; a crash of its own raises others (SEGV, ABRT, BUS, ILL, FPE).
EXTERNAL_KILLS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT})


@dataclass(frozen=True)
class WorkerDeath:
    """What the pool knows of a worker that died without being asked to."""

    lived: float  # seconds from its start to its exit
    ready: bool  # it had said it was ready to run jobs
    ran_jobs: bool  # it finished, or was running, at least one job
    exit_code: int | None  # negative: the signal that ended it (as multiprocessing reports it)

    @property
    def killed_from_outside(self) -> bool:
        return self.exit_code is not None and self.exit_code < 0 and -self.exit_code in EXTERNAL_KILLS

    @property
    def made_progress(self) -> bool:
        """Whether this death says nothing against starting workers."""
        return self.ready and (self.ran_jobs or self.killed_from_outside)


@dataclass(frozen=True)
class RestartState:
    """A pool's memory of its recent worker deaths."""

    crash_streak: int = 0  # deaths in a row of workers that never got going
    spawn_at: float = 0.0  # no worker is started before this (monotonic seconds)


def after_death(
    state: RestartState,
    death: WorkerDeath,
    now: float,
    *,
    base: float = defaults.WORKER_RESTART_BACKOFF_BASE_SECONDS,
    maximum: float = defaults.WORKER_RESTART_BACKOFF_MAX_SECONDS,
    stable_after: float = defaults.WORKER_STABLE_AFTER_SECONDS,
) -> RestartState:
    """The pool's restart state once ``death`` happened at ``now``."""
    if death.made_progress:
        return RestartState(crash_streak=0, spawn_at=min(state.spawn_at, now))
    streak = 1 if death.lived >= stable_after else state.crash_streak + 1
    delay = backoff_delay(streak - 1, base=base, maximum=maximum) if streak > 1 else 0.0  # one quick retry: a start can be unlucky
    return RestartState(crash_streak=streak, spawn_at=max(state.spawn_at, now + delay))
