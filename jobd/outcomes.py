"""What happens to a job after an attempt: the pure decision, then the store write."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from .backoff import backoff_delay
from .output_caps import DEFAULT_CAPS, OutputCaps, OutputRejected, cap_error, cap_traceback, encode_result
from .config import DaemonConfig
from .inventory import TaskInfo
from .job import Job
from .observability.job_logs import job_extra
from .outcome_writer import write_failure
from .states import JobState
from .store.jobs import JobQueue, Outcome
from .workers.protocol import JobFinished

log = logging.getLogger("jobd.outcomes")


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


def plan_outcome(job: Job, finished: JobFinished, limits: Limits, now: float) -> Outcome:
    """The state and stored values an attempt's end leads to (pure).

    What the task produced is capped here too (the worker did it already): a
    result too large or not JSON fails the attempt, text is cut.
    """
    caps = limits.caps
    error = cap_error(finished.error, caps)
    traceback = cap_traceback(finished.traceback, caps)
    if finished.outcome == "succeeded":
        try:
            return Outcome(job.id, job.attempts, JobState.SUCCEEDED, {"result": encode_result(finished.result, caps)})
        except OutputRejected as rejected:
            error, traceback = str(rejected), None
    elif finished.outcome == "cancelled":
        return Outcome(job.id, job.attempts, JobState.CANCELLED, {"error": error or "cancelled"})
    when = retry_at(job.attempts, limits, now, permanent=finished.permanent)
    values = {"error": error or "failed", "traceback": traceback, "run_at": when}
    return Outcome(job.id, job.attempts, JobState.RETRYING if when is not None else JobState.DEAD, values)


def log_outcome(job: Job, outcome: Outcome, now: float) -> None:
    """The master's line about a failed attempt (it lands in the job's own log too)."""
    if outcome.state is not JobState.DEAD and outcome.state is not JobState.RETRYING:
        return  # a success says nothing here: one line per job would cost the master more than the job
    extra = job_extra(job.id, job.attempts, daemon=job.daemon, task=job.task)
    error = outcome.values.get("error")
    if outcome.state is JobState.DEAD:
        log.error("job %s (%s) is dead after %s attempt(s): %s", job.id, job.task, job.attempts, error, extra=extra)
    elif outcome.state is JobState.RETRYING:
        delay = (outcome.values["run_at"] or now) - now
        log.warning("job %s (%s) attempt %s failed: %s; retrying in %.1fs", job.id, job.task, job.attempts, error, delay, extra=extra)


def record_failure(
    queue: JobQueue, owner: str, job: Job, error: str, traceback: str | None, limits: Limits, now: float, *, permanent: bool = False
) -> str:
    when = retry_at(job.attempts, limits, now, permanent=permanent)
    error = write_failure(
        lambda text, trace: queue.fail(job.id, job.attempts, owner, error=text, traceback=trace, retry_at=when, now=now),
        job.id, cap_error(error, limits.caps) or "failed", cap_traceback(traceback, limits.caps),
    )
    extra = job_extra(job.id, job.attempts, daemon=job.daemon, task=job.task)  # lands in the job's own log
    if when is None:
        log.error("job %s (%s) is dead after %s attempt(s): %s", job.id, job.task, job.attempts, error, extra=extra)
        return "dead"
    log.warning(
        "job %s (%s) attempt %s failed: %s; retrying in %.1fs", job.id, job.task, job.attempts, error, when - now, extra=extra
    )
    return "retrying"
