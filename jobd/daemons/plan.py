"""A daemon's life on a running master: what the operator wants, and the steps to get there.

Operators manage daemons one by one (``jobd start/stop/restart/scale
DAEMON``). What they asked for is the *desired state* — running or not, and
how many workers — persisted per host so that it outlives the master. The
*run state* is where the daemon actually is on this master: started,
stopping (draining its running jobs), or stopped. A rolling restart is a
sequence of pure decisions over the pool's workers.

Everything here is pure: no processes, no store, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ..errors import InvalidTransition
from ..workers.states import WorkerState


class DaemonSizing(Protocol):
    """What a desired state needs of a daemon's config: a ``DaemonConfig``, or a config digest's facts
    (``jobd status`` with no master builds no config models)."""

    @property
    def workers(self) -> int: ...

    @property
    def enabled(self) -> bool: ...


class DaemonState(StrEnum):
    """Where a daemon is on this master."""

    STARTED = "started"  # its pool is kept at the desired size and claims jobs
    STOPPING = "stopping"  # no new claims; running jobs finish up to its drain timeout
    STOPPED = "stopped"  # no workers; its jobs wait in the queue


_ALLOWED: dict[DaemonState, frozenset[DaemonState]] = {
    DaemonState.STARTED: frozenset({DaemonState.STOPPING}),
    DaemonState.STOPPING: frozenset({DaemonState.STOPPED, DaemonState.STARTED}),
    DaemonState.STOPPED: frozenset({DaemonState.STARTED}),
}


def change_daemon_state(current: DaemonState, target: DaemonState) -> DaemonState:
    """The only way a daemon's run state changes; a move the machine does not allow raises."""
    if target not in _ALLOWED[current]:
        raise InvalidTransition(f"a daemon cannot go from {current} to {target}")
    return target


@dataclass(frozen=True)
class Desired:
    """What the operator asked for one daemon on one host.

    ``workers`` is an override set by ``jobd scale``; ``None`` follows the
    config's ``workers`` (so a reload that changes it still applies).
    """

    running: bool
    workers: int | None = None

    def size(self, settings: DaemonSizing) -> int:
        """The number of workers the pool should have."""
        if not self.running:
            return 0
        return settings.workers if self.workers is None else self.workers

    def to_dict(self, settings: DaemonSizing | None = None) -> dict[str, object]:
        """Plain data in the run states' words ("started"/"stopped"), as status shows it."""
        state = DaemonState.STARTED if self.running else DaemonState.STOPPED
        data: dict[str, object] = {"state": str(state), "workers": self.workers}
        if settings is not None:
            data["size"] = self.size(settings)
        return data


def default_desired(settings: DaemonSizing) -> Desired:
    """Before any operator command, a daemon runs if the config enables it."""
    return Desired(running=settings.enabled)


# -- rolling restart ----------------------------------------------------------

SERVING = frozenset({WorkerState.STARTING, WorkerState.IDLE, WorkerState.BUSY})
READY = frozenset({WorkerState.IDLE, WorkerState.BUSY})


@dataclass(frozen=True)
class WorkerView:
    """What a rolling restart needs to know of a worker."""

    pid: int
    state: WorkerState


@dataclass(frozen=True)
class RollStep:
    """One decision of a rolling restart.

    ``pool_size``: the size the pool is kept at (one above the target while
    old workers remain: the surge slot a new worker starts in);
    ``retire``: old idle workers to retire now; ``done``: no old worker serves.
    """

    pool_size: int
    retire: tuple[int, ...] = ()
    done: bool = False


def rolling_step(workers: Sequence[WorkerView], old_pids: frozenset[int], target: int) -> RollStep:
    """Decide the next move of a rolling restart (surge one, never below ``target`` ready).

    A new worker starts in the surge slot; only once it is ready (its task
    code imported, so a broken deploy stalls the restart instead of taking
    the daemon down) is one *idle* old worker retired, which frees the slot
    for the next new worker. A busy old worker is never interrupted: it is
    retired when its job ends and it turns idle. So the number of ready
    workers never drops below ``target`` and no job is cut short.
    """
    if target <= 0:
        return RollStep(pool_size=0, done=True)
    serving = [worker for worker in workers if worker.state in SERVING]
    old = [worker for worker in serving if worker.pid in old_pids]
    if not old:
        return RollStep(pool_size=target, done=True)
    ready = sum(1 for worker in serving if worker.state in READY)
    spare = ready - target
    idle_old = [worker.pid for worker in old if worker.state is WorkerState.IDLE]
    return RollStep(pool_size=target + 1, retire=tuple(idle_old[: max(0, spare)]))
