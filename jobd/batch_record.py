"""A batch as it crosses boundaries (store → API, CLI, status), and the rules of its life.

A batch is a group of jobs with a name and counters. Its members are added
while it is open and unsealed (the block that creates it), or by a running
member (a fan-out from a task); once sealed and every member has finished,
it is ``complete`` and its ``on_complete`` callback job is queued, once. The
first member that dies queues its ``on_failure`` callback, once. Cancelling
it cancels its waiting members and queues neither callback.

Pure: the store (``store.batches``) applies these rules inside the
transactions that write members' endings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import InvalidTransition
from .states import JobState


class BatchState(StrEnum):
    OPEN = "open"  # members run; more may be added
    COMPLETE = "complete"  # sealed and every member finished: on_complete queued; counters frozen
    CANCELLED = "cancelled"  # an operator or the application cancelled it: no callback


_ALLOWED = {
    BatchState.OPEN: frozenset({BatchState.COMPLETE, BatchState.CANCELLED}),
    BatchState.COMPLETE: frozenset(),
    BatchState.CANCELLED: frozenset(),
}

#: The member states a batch counts, each in its own column.
COUNTED = (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)


def batch_transition(current: BatchState | str, target: BatchState) -> BatchState:
    """Validate a batch's move; ``InvalidTransition`` names the batch's state otherwise."""
    current = BatchState(current)
    if target not in _ALLOWED[current]:
        raise InvalidTransition(f"a batch that is {current} cannot become {target}")
    return target


@dataclass(frozen=True)
class Callback:
    """A job a batch queues when it completes or a member dies; ``args`` get a ``batch`` key with the counts."""

    daemon: str
    task: str
    args: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"daemon": self.daemon, "task": self.task, "args": self.args}

    @classmethod
    def from_dict(cls, value: Any) -> "Callback | None":
        if not isinstance(value, dict):
            return None
        return cls(str(value["daemon"]), str(value["task"]), dict(value.get("args") or {}))


@dataclass(frozen=True)
class Batch:
    """One batch row, decoded."""

    id: int
    name: str
    state: BatchState
    sealed: bool
    total: int
    succeeded: int
    dead: int
    cancelled: int
    on_complete: Callback | None = None
    on_failure: Callback | None = None
    complete_job_id: int | None = None
    failure_job_id: int | None = None
    created_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None

    @property
    def finished(self) -> int:
        return self.succeeded + self.dead + self.cancelled

    @property
    def pending(self) -> int:
        return max(0, self.total - self.finished)

    @property
    def percent(self) -> float | None:
        return None if not self.total else min(100.0, 100.0 * self.finished / self.total)

    def summary(self) -> dict[str, Any]:
        """What a callback job receives as its ``batch`` argument."""
        return {
            "id": self.id, "name": self.name, "total": self.total,
            "succeeded": self.succeeded, "dead": self.dead, "cancelled": self.cancelled,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` and ``status --json`` (docs/status-json.md)."""
        return {
            **self.summary(),
            "state": str(self.state), "sealed": self.sealed, "finished": self.finished, "pending": self.pending,
            "percent": None if self.percent is None else round(self.percent, 1),
            "on_complete": self.on_complete.to_dict() if self.on_complete else None,
            "on_failure": self.on_failure.to_dict() if self.on_failure else None,
            "complete_job_id": self.complete_job_id, "failure_job_id": self.failure_job_id,
            "created_at": self.created_at, "finished_at": self.finished_at,
        }


def is_complete(state: BatchState, sealed: bool, total: int, finished: int) -> bool:
    """Whether a batch should complete now: open, sealed, and every member finished."""
    return state is BatchState.OPEN and sealed and finished >= total


def callback_args(callback: Callback, batch: Batch) -> dict[str, Any]:
    """The callback job's args: its own, plus ``batch`` (the counts when it was queued)."""
    return {**callback.args, "batch": batch.summary()}


def row_to_batch(row: Any) -> Batch:
    return Batch(
        id=int(row["id"]), name=str(row["name"]), state=BatchState(row["state"]), sealed=bool(row["sealed"]),
        total=int(row["total"]), succeeded=int(row["succeeded"]), dead=int(row["dead"]), cancelled=int(row["cancelled"]),
        on_complete=Callback.from_dict(json.loads(row["on_complete"])) if row["on_complete"] else None,
        on_failure=Callback.from_dict(json.loads(row["on_failure"])) if row["on_failure"] else None,
        complete_job_id=_id(row["complete_job_id"]), failure_job_id=_id(row["failure_job_id"]),
        created_at=row["created_at"], finished_at=row["finished_at"], updated_at=row["updated_at"],
    )


def _id(value: Any) -> int | None:
    return int(value) if value is not None and int(value) > 0 else None
