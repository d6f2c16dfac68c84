"""How an attempt ended (``Ending``) and what that leads to (``plan_outcome``): pure decisions.

Every way a job the master holds can end is one ``Ending``: the worker
reported success, failure or a cancel; the worker died (a crash) or was
killed for its timeout; the job could never run; or it goes back to the
queue unrun (a drain, a refused hand-off). ``plan_outcome`` turns one into
the state and values the store must hold, and ``outcome_writer`` writes
them: the one path every ending takes.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .backoff import backoff_delay
from .config import DaemonConfig
from .inventory import TaskInfo
from .job import Job
from .observability.job_logs import job_extra
from .output_caps import DEFAULT_CAPS, OutputCaps, OutputRejected, cap_error, cap_traceback, encode_result
from .states import JobState
from .store.jobs import Outcome
from .workers.protocol import JobFinished

log = logging.getLogger("jobd.outcomes")

CANCELLED_BY_OPERATOR = "cancelled by an operator"


class EndingKind(StrEnum):
    SUCCEEDED = "succeeded"  # the task returned
    FAILED = "failed"  # the task raised
    CANCELLED = "cancelled"  # an operator cancelled it
    CRASHED = "crashed"  # its worker died under it
    TIMED_OUT = "timed_out"  # its worker was killed for the job's timeout
    UNRUNNABLE = "unrunnable"  # it can never run (unknown task, a row jobd cannot read, attempts used up)
    RETURNED = "returned"  # back to the queue unrun or interrupted by a stop, its attempt refunded


@dataclass(frozen=True)
class Ending:
    """How one attempt ended, with what the master knows of it."""

    kind: EndingKind
    error: str | None = None
    traceback: str | None = None
    result: Any = None
    permanent: bool = False  # a failure no retry can fix
    duration: float | None = None  # seconds it ran, if it ran
    charged: bool = True  # whether the claim's attempt counts (not for a job whose attempts were used up already)

    @classmethod
    def reported(cls, finished: JobFinished, *, cancel_requested: bool = False) -> "Ending":
        """What a worker reported; a job an operator cancelled that did not succeed counts as cancelled."""
        if cancel_requested and finished.outcome != "succeeded":
            return cls(EndingKind.CANCELLED, error=CANCELLED_BY_OPERATOR, duration=finished.duration)
        kind = EndingKind(finished.outcome)
        return cls(kind, finished.error, finished.traceback, finished.result, finished.permanent, finished.duration)


@dataclass(frozen=True)
class Limits:
    """The limits in force for one job: the job's own, else its task's, else its daemon's."""

    timeout: float
    max_attempts: int
    backoff_base: float
    backoff_max: float
    caps: OutputCaps = DEFAULT_CAPS  # on what the task produced: checked again before the store sees it

    @classmethod
    def for_job(cls, job: Job, daemon: DaemonConfig, task: TaskInfo | None) -> "Limits":
        options = task.options if task else None
        return cls(
            timeout=(options.timeout if options and options.timeout else daemon.timeout),
            max_attempts=job.max_attempts or (options.max_attempts if options and options.max_attempts else daemon.max_attempts),
            backoff_base=daemon.backoff_base,
            backoff_max=daemon.backoff_max,
            caps=daemon.output_caps(),
        )


def retry_at(attempt: int, limits: Limits, now: float, *, permanent: bool = False, rng: random.Random | None = None) -> float | None:
    """When to try again after failed ``attempt``, or None: the job is dead."""
    if permanent or attempt >= limits.max_attempts:
        return None
    return now + backoff_delay(attempt, base=limits.backoff_base, maximum=limits.backoff_max, jitter=0.2, rng=rng)


def plan_outcome(job: Job, ending: Ending, limits: Limits, now: float) -> Outcome:
    """The state and stored values ``ending`` leads to for ``job``'s running attempt (pure).

    What the task produced is capped here too (the worker did it already): a
    result too large or not JSON fails the attempt, text is cut.
    """
    kind = ending.kind
    if kind is EndingKind.RETURNED:
        return Outcome(job.id, job.attempts, JobState.QUEUED, {"owner": None, "attempts": max(0, job.attempts - 1)}, job.batch_id)
    caps = limits.caps
    error = cap_error(ending.error, caps)
    if kind is EndingKind.UNRUNNABLE:
        values: dict[str, Any] = {"error": error or "cannot run", "traceback": None, "run_at": None}
        if not ending.charged:
            values["attempts"] = max(0, job.attempts - 1)  # never past max_attempts
        return Outcome(job.id, job.attempts, JobState.DEAD, values, job.batch_id)
    traceback = cap_traceback(ending.traceback, caps)
    if kind is EndingKind.SUCCEEDED:
        try:
            return Outcome(job.id, job.attempts, JobState.SUCCEEDED, {"result": encode_result(ending.result, caps)}, job.batch_id)
        except OutputRejected as rejected:
            error, traceback = str(rejected), None
    elif kind is EndingKind.CANCELLED:
        return Outcome(job.id, job.attempts, JobState.CANCELLED, {"error": error or "cancelled"}, job.batch_id)
    when = retry_at(job.attempts, limits, now, permanent=ending.permanent)
    values = {"error": error or "failed", "traceback": traceback, "run_at": when}
    return Outcome(job.id, job.attempts, JobState.RETRYING if when is not None else JobState.DEAD, values, job.batch_id)


def log_outcome(job: Job, ending: Ending, outcome: Outcome, now: float) -> None:
    """The master's line about an attempt that did not succeed (it lands in the job's own log too)."""
    extra = job_extra(job.id, job.attempts, daemon=job.daemon, task=job.task)
    error = outcome.values.get("error")
    if ending.kind is EndingKind.UNRUNNABLE:
        log.error("job %s cannot run: %s", job.id, error, extra=extra)
    elif outcome.state is JobState.DEAD:
        log.error("job %s (%s) is dead after %s attempt(s): %s", job.id, job.task, job.attempts, error, extra=extra)
    elif outcome.state is JobState.RETRYING:
        delay = (outcome.values["run_at"] or now) - now
        log.warning("job %s (%s) attempt %s failed: %s; retrying in %.1fs", job.id, job.task, job.attempts, error, delay, extra=extra)
    # a success says nothing here: one line per job would cost the master more than the job
