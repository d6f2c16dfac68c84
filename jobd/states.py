"""The job state machine: the states a job can be in and the moves between them.

This module depends on nothing. Every state change in jobd goes through
``transition``; the store only writes states this module allowed, so a job
can never jump from ``dead`` back to ``running`` through a stray assignment.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import InvalidTransition


class JobState(StrEnum):
    """Where a job is in its life. Stored as the lower-case string."""

    SCHEDULED = "scheduled"  # waiting for its run_at in the future
    QUEUED = "queued"  # due; waiting for a free worker
    RUNNING = "running"  # claimed by a master and handed to a worker
    RETRYING = "retrying"  # an attempt failed; waiting for its backoff to pass
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # failed on its last allowed attempt; error kept
    CANCELLED = "cancelled"


#: States from which a worker may be given the job.
CLAIMABLE = frozenset({JobState.SCHEDULED, JobState.QUEUED, JobState.RETRYING})
#: States that end a job for good.
#: Every state name jobd knows; ``jobd jobs --state`` also takes others (rows written by applications).
STATE_NAMES = frozenset(str(state) for state in JobState)

FINAL = frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED})
#: States that count as "not finished" (for overlap rules and unique keys).
ACTIVE = frozenset(JobState) - FINAL

_ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.SCHEDULED: frozenset({JobState.QUEUED, JobState.RUNNING, JobState.CANCELLED}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.DEAD}),
    JobState.RETRYING: frozenset({JobState.QUEUED, JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {
            JobState.SUCCEEDED,
            JobState.RETRYING,
            JobState.DEAD,
            JobState.CANCELLED,
            JobState.QUEUED,  # returned by a drain or recovered from a dead master
        }
    ),
    JobState.SUCCEEDED: frozenset(),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),  # `jobd retry`
    JobState.DEAD: frozenset({JobState.QUEUED}),  # `jobd retry`
}


def can_transition(current: JobState, target: JobState) -> bool:
    """Whether a job in ``current`` may move to ``target``."""
    return target in _ALLOWED[current]


def transition(current: JobState | str, target: JobState | str) -> JobState:
    """Validate a move and return the new state, or raise ``InvalidTransition``."""
    try:
        current, target = JobState(current), JobState(target)
    except ValueError:  # a state an application stored (before the schema's CHECK): no move is known
        raise InvalidTransition(f"a job cannot go from {current} to {target}") from None
    if not can_transition(current, target):
        raise InvalidTransition(f"a job cannot go from {current} to {target}")
    return target


def sources_of(target: JobState) -> frozenset[JobState]:
    """Every state from which ``target`` can be reached (used in guarded UPDATEs)."""
    return frozenset(state for state, targets in _ALLOWED.items() if target in targets)


_PHRASES = {
    JobState.SCHEDULED: "is scheduled",
    JobState.QUEUED: "is queued",
    JobState.RUNNING: "is running",
    JobState.RETRYING: "is waiting to be retried",
    JobState.SUCCEEDED: "has succeeded",
    JobState.DEAD: "is dead",
    JobState.CANCELLED: "was cancelled",
}


def phrase(state: JobState | str) -> str:
    """``job 7 has succeeded``, not ``job 7 is succeeded``: a state as the end of a sentence."""
    try:
        return _PHRASES[JobState(state)]
    except ValueError:
        return f"is in state {state!r}"
