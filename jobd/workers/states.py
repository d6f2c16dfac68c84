"""Worker states and the only function allowed to change them."""

from __future__ import annotations

from enum import StrEnum

from ..errors import InvalidTransition


class WorkerState(StrEnum):
    STARTING = "starting"  # spawned; importing task code
    IDLE = "idle"  # ready for a job
    BUSY = "busy"  # running a job
    STOPPING = "stopping"  # told to stop (or being killed); no more jobs
    EXITED = "exited"  # process gone; reaped


_ALLOWED: dict[WorkerState, frozenset[WorkerState]] = {
    WorkerState.STARTING: frozenset({WorkerState.IDLE, WorkerState.STOPPING, WorkerState.EXITED}),
    WorkerState.IDLE: frozenset({WorkerState.BUSY, WorkerState.STOPPING, WorkerState.EXITED}),
    WorkerState.BUSY: frozenset({WorkerState.IDLE, WorkerState.STOPPING, WorkerState.EXITED}),
    WorkerState.STOPPING: frozenset({WorkerState.EXITED}),
    WorkerState.EXITED: frozenset(),
}


def change_worker_state(current: WorkerState, target: WorkerState) -> WorkerState:
    if target not in _ALLOWED[current]:
        raise InvalidTransition(f"a worker cannot go from {current} to {target}")
    return target
